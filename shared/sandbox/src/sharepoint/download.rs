//! Downloads (provider-apis.md §2.4): `/content` answers 302 with a pre-authenticated
//! URL on the download host (`{base}/sharepoint/download/{opaque}?…&tempauth=…`), which
//! needs no Authorization, honours `Range` and expires after [`DOWNLOAD_URL_TTL`] of
//! sandbox time. The URL is bound to the content at the time of the `/content` call.
//!
//! With `set_rewrites_office_files(true)`, `.docx`/`.xlsx`/`.pptx` files are served
//! with bytes that differ from the listed size and hash (SharePoint rewrites Office
//! documents' metadata on download).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{DriveRef, ItemRef, item_of, resolve_drive};
use super::model::SpBlob;
use super::{DOWNLOAD_URL_TTL, DownloadGrant, Endpoint, SpState, query, wire};
use crate::content::{Blob, Content, stream_range};
use crate::dropbox::download::{RangeSpec, parse_range};

/// What SharePoint appends, in spirit, when it rewrites an Office document.
const OFFICE_REWRITE: &[u8] =
    b"\n<!-- sandbox: SharePoint updated this document's properties on download -->\n";

/// Whether SharePoint may rewrite a file of this name on download.
fn is_rewritten_office(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".docx", ".xlsx", ".pptx"].iter().any(|e| lower.ends_with(e))
}

/// Bytes that differ from `blob`'s (in size and hash).
fn rewritten(blob: &SpBlob) -> Arc<SpBlob> {
    match &blob.content {
        Content::Bytes(b) => {
            let mut v = b.clone();
            v.extend_from_slice(OFFICE_REWRITE);
            Blob::new(Content::Bytes(v))
        }
        Content::Generated { size, seed } | Content::Repeating { size, seed } => {
            Blob::new(Content::generated(size + OFFICE_REWRITE.len() as u64, seed ^ 0x0FF1_CE00))
        }
    }
}

fn random_secret(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// `GET …/items/{id}/content`: 302 to a fresh download URL.
pub(crate) fn content(st: &SpState, account: &str, d: &DriveRef, i: &ItemRef, now: SystemTime) -> Response {
    let mut inner = st.lock();
    let (item_id, blob, mime, name) = {
        let drive = match resolve_drive(&inner, account, d, now) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let Some(item) = item_of(drive, i) else { return wire::not_found(now) };
        let Some(blob) = item.blob.clone() else {
            // Only items with the `file` facet can be downloaded.
            return wire::not_found(now);
        };
        (item.id.clone(), blob, item.mime_type.clone(), item.name.clone())
    };
    let blob = if inner.rewrites_office && is_rewritten_office(&name) { rewritten(&blob) } else { blob };
    let opaque = random_secret(24);
    let tempauth = format!("v1.CANARY-TEMPAUTH-{}", random_secret(40));
    st.oauth.record_canary(&tempauth);
    let location = format!(
        "{}/sharepoint/download/{opaque}?UniqueId={item_id}&Translate=false&tempauth={tempauth}&ApiVersion=2.0",
        st.link_base(&inner)
    );
    inner.downloads.insert(
        opaque,
        DownloadGrant { tempauth, blob, mime_type: mime, expires_at: now + DOWNLOAD_URL_TTL },
    );
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The download host's 401 (expired or wrong `tempauth`); says nothing about the URL.
fn denied() -> Response {
    let body = serde_json::json!({
        "error_description": "Invalid or expired tempauth token.",
    });
    let mut r = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /sharepoint/download/{opaque}?…&tempauth=…` (no Authorization needed).
pub(crate) async fn download(
    State(st): State<Arc<SpState>>,
    Path(opaque): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::Download, async {
            let q = query(raw.as_deref());
            let now = st.now();
            let grant = {
                let inner = st.lock();
                match inner.downloads.get(&opaque) {
                    Some(g) if Some(&g.tempauth) == q.get("tempauth") && now < g.expires_at => {
                        Some((Arc::clone(&g.blob), g.mime_type.clone()))
                    }
                    _ => None,
                }
            };
            let Some((blob, mime)) = grant else { return denied() };
            serve(blob, &headers, &mime)
        })
        .await
}

/// Streams a blob, honouring `Range` (206 + `Content-Range`; 416 outside).
fn serve(blob: Arc<SpBlob>, headers: &HeaderMap, content_type: &str) -> Response {
    let size = blob.content.len();
    let range = if size > 0 {
        parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size)
    } else {
        RangeSpec::Full
    };
    let (status, start, end_excl) = match range {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        RangeSpec::Unsatisfiable => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut resp = (status, Body::from_stream(stream_range(blob, start, end_excl))).into_response();
    let h = resp.headers_mut();
    let ct = if content_type.is_empty() { "application/octet-stream" } else { content_type };
    if let Ok(v) = HeaderValue::from_str(ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end_excl - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end_excl - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}
