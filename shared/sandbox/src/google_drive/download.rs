//! `files.get` (metadata, or the bytes with `alt=media`, honouring `Range`) and
//! `files.export` (native docs, 10 MB cap).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::model::{Body as FileBody, File, GOOGLE_APPS_PREFIX, export_formats};
use super::oauth::authenticate;
use super::{DriveState, EXPORT_LIMIT, Endpoint, FileError, flag, query, wire};
use crate::content::{Blob, stream_range};
use crate::dropbox::download::{RangeSpec, parse_range};

/// The file `id` as the caller may see it: `Err` is the 401/404 to send.
fn visible(
    st: &DriveState,
    headers: &HeaderMap,
    id: &str,
    all_drives: bool,
) -> Result<(File, serde_json::Value, Option<FileError>), Response> {
    let account = authenticate(st, headers)?;
    let inner = st.lock();
    let a = inner.account(&account).ok_or_else(wire::auth_error)?;
    let f = a.file(id).ok_or_else(|| wire::not_found(id))?;
    if f.drive_id.is_some() && !all_drives {
        return Err(wire::not_found(id));
    }
    Ok((f.clone(), wire::file_json(a, f), inner.file_errors.get(&f.id).cloned()))
}

fn file_error(e: &FileError) -> Response {
    let domain =
        if e.reason.contains("RateLimit") || e.reason.contains("uota") { "usageLimits" } else { "global" };
    let msg = match e.reason.as_str() {
        "insufficientFilePermissions" => "The user does not have sufficient permissions for this file.",
        "domainPolicy" => "The domain administrators have disabled Drive apps.",
        "downloadQuotaExceeded" => "The download quota for this file has been exceeded.",
        "quotaExceeded" => "The user has exceeded their Drive storage quota",
        _ => "Injected per-file error.",
    };
    let mut r = wire::error(e.status, domain, &e.reason, msg);
    if let Some(secs) = e.retry_after_secs {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// `GET /drive/v3/files/{id}`: metadata, or with `alt=media` the content.
pub(crate) async fn files_get(
    State(st): State<Arc<DriveState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(raw.as_deref());
    let all_drives = flag(&q, "supportsAllDrives");
    match q.get("alt").map(String::as_str) {
        Some("media") => st.faults.guarded(Endpoint::Download, media(&st, &id, &headers, all_drives)).await,
        None | Some("json") => {
            st.faults
                .guarded(Endpoint::FilesGet, async {
                    match visible(&st, &headers, &id, all_drives) {
                        Ok((_, json, _)) => wire::json_fields(json, wire::Schema::File, &q),
                        Err(r) => r,
                    }
                })
                .await
        }
        Some(other) => wire::bad_param(
            "alt",
            &format!(
                "Invalid value '{other}'. Values must match the following regular expression: 'json|media|proto'"
            ),
        ),
    }
}

async fn media(st: &DriveState, id: &str, headers: &HeaderMap, all_drives: bool) -> Response {
    let (file, _, err) = match visible(st, headers, id, all_drives) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(e) = err {
        return file_error(&e);
    }
    if file.mime_type.starts_with(GOOGLE_APPS_PREFIX) {
        let msg = "Only files with binary content can be downloaded. Use Export with Docs Editors files.";
        return wire::error_with(403, "global", "fileNotDownloadable", msg, Some(("parameter", "alt")));
    }
    if !file.can_download {
        return wire::error(
            403,
            "global",
            "cannotDownloadFile",
            "The user does not have permission to download this file.",
        );
    }
    let Some(blob) = file.blob().cloned() else {
        return wire::not_found(id);
    };
    // Drive serves the bytes as the file's own type (`text/plain`, `application/pdf`, …).
    serve(blob, headers, &file.mime_type, true)
}

/// Streams a blob; `ranged` honours `Range` (206 + `Content-Range`, 416 outside).
fn serve(blob: Arc<Blob<super::Md5Hex>>, headers: &HeaderMap, content_type: &str, ranged: bool) -> Response {
    let size = blob.content.len();
    let range = if ranged && size > 0 {
        parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size)
    } else {
        RangeSpec::Full
    };
    let (status, start, end_excl) = match range {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        RangeSpec::Unsatisfiable => {
            let mut r =
                wire::error(416, "global", "requestedRangeNotSatisfiable", "Request range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut resp = (status, Body::from_stream(stream_range(blob, start, end_excl))).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end_excl - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end_excl - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

/// `GET /drive/v3/files/{id}/export?mimeType=…`.
pub(crate) async fn export(
    State(st): State<Arc<DriveState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::Export, async {
            let q = query(raw.as_deref());
            let Some(mime) = q.get("mimeType").cloned() else {
                return wire::error_with(
                    400,
                    "global",
                    "required",
                    "Required parameter: mimeType",
                    Some(("parameter", "mimeType")),
                );
            };
            // files.export takes no supportsAllDrives (its only parameters are fileId and
            // mimeType, per the discovery document): shared-drive docs export without it.
            let (file, _, err) = match visible(&st, &headers, &id, true) {
                Ok(v) => v,
                Err(r) => return r,
            };
            if let Some(e) = err {
                return file_error(&e);
            }
            let FileBody::Native { export: Some(body) } = &file.body else {
                return wire::error(
                    403,
                    "global",
                    "fileNotExportable",
                    "Export only supports Docs Editors files.",
                );
            };
            if !export_formats(&file.mime_type).contains(&mime.as_str()) {
                return wire::error_with(
                    400,
                    "global",
                    "badRequest",
                    "The requested conversion is not supported.",
                    Some(("parameter", "convertTo")),
                );
            }
            if !file.can_download {
                return wire::error(
                    403,
                    "global",
                    "cannotDownloadFile",
                    "The user does not have permission to download this file.",
                );
            }
            if body.content.len() > EXPORT_LIMIT {
                return wire::error(
                    403,
                    "global",
                    "exportSizeLimitExceeded",
                    "This file is too large to be exported.",
                );
            }
            serve(Arc::clone(body), &headers, &mime, false)
        })
        .await
}
