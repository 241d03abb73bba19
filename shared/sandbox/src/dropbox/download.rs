//! `POST /2/files/download` on the content host (provider-apis.md §3.4).
//!
//! - Argument in the `Dropbox-API-Arg` header (JSON, `{"path": "/p" | "id:…" |
//!   "rev:…" | "ns:…"}`); raw non-ASCII bytes in it are a 400 plain-text error (the
//!   client must escape them as `\uXXXX`). The body must be empty; the request
//!   Content-Type must be absent, `application/octet-stream` or the CORS hack.
//! - 200 with the bytes streamed in 256 KiB chunks (generated content is produced on
//!   the fly, never materialised), `Content-Length`, `Content-Type:
//!   application/octet-stream`, `Accept-Ranges: bytes`, and `Dropbox-API-Result` = the
//!   file's metadata as HTTP-header-safe JSON.
//! - `Range: bytes=a-b`, `bytes=a-`, `bytes=-n` → 206 with `Content-Range`; a start
//!   past the end → 416 with `Content-Range: bytes */size`; malformed or multi-range
//!   headers are ignored (200 full body), as HTTP allows.
//! - Errors: 409 `path/not_found`; a folder → 409 `path/not_file`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::endpoints::Endpoint;
use super::model::Target;
use super::oauth::authenticate;
use super::rpc::{PathKind, lookup};
use super::{DropboxState, wire};
use crate::content::stream_range;

const ROUTE: &str = "files/download";

#[derive(Debug, Deserialize)]
struct DownloadArg {
    path: String,
}

/// A parsed `Range` header against a known size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    Full,
    /// Inclusive byte range.
    Part(u64, u64),
    Unsatisfiable,
}

pub(crate) fn parse_range(value: Option<&str>, size: u64) -> RangeSpec {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => {
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(start, end.min(size - 1))
            }
        }
        (Ok(start), Err(_)) if b.is_empty() => {
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(start, size - 1)
            }
        }
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 || size == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(size.saturating_sub(n), size - 1)
            }
        }
        _ => RangeSpec::Full,
    }
}

fn check_request_content_type(headers: &HeaderMap) -> Result<(), Response> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or_default().trim().to_ascii_lowercase();
    if ct.is_empty()
        || ct.starts_with("application/octet-stream")
        || ct.replace(' ', "") == "text/plain;charset=dropbox-cors-hack"
    {
        return Ok(());
    }
    Err(wire::route_error(
        ROUTE,
        &format!(
            "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \"application/octet-stream\", \
             \"text/plain; charset=dropbox-cors-hack\"."
        ),
    ))
}

fn parse_arg(headers: &HeaderMap) -> Result<DownloadArg, Response> {
    let Some(raw) = headers.get("dropbox-api-arg") else {
        return Err(wire::route_error(
            ROUTE,
            "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
        ));
    };
    let bytes = raw.as_bytes();
    if !bytes.is_ascii() {
        return Err(wire::route_error(
            ROUTE,
            "HTTP header \"Dropbox-API-Arg\": could not decode input as JSON: non-ASCII bytes must be escaped as \\uXXXX",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            wire::route_error(ROUTE, "HTTP header \"Dropbox-API-Arg\": could not decode input as JSON")
        } else {
            wire::route_error(ROUTE, &format!("HTTP header \"Dropbox-API-Arg\": {e}"))
        }
    })
}

/// `POST /2/files/download`.
pub(crate) async fn download(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let st2 = Arc::clone(&st);
    st.faults.guarded(Endpoint::Download, async move { download_inner(&st2, &headers, &body).await }).await
}

async fn download_inner(st: &DropboxState, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(r) = check_request_content_type(headers) {
        return r;
    }
    if !body.is_empty() {
        return wire::route_error(
            ROUTE,
            "This function requires its argument in the HTTP header \"Dropbox-API-Arg\"; the request body must be empty.",
        );
    }
    let arg = match parse_arg(headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let account = match authenticate(st, headers, Some("files.content.read")) {
        Ok((a, _)) => a,
        Err(r) => return r,
    };
    let node = {
        let inner = st.lock();
        let Some(acct) = inner.account(&account.0) else {
            return wire::auth_error("invalid_access_token");
        };
        match lookup(acct, ROUTE, &arg.path, PathKind::Download) {
            Ok(Target::Root) => return wire::path_error("not_file"),
            Ok(Target::Node(id)) => match acct.tree.node(&id) {
                Some(n) => n.clone(),
                None => return wire::path_error("not_found"),
            },
            Err(r) => return r,
        }
    };
    let Some(file) = node.file() else {
        return wire::path_error("not_file");
    };
    let blob = Arc::clone(&file.blob);
    blob.native_hash_async().await;
    let size = blob.content.len();
    let result = wire::header_safe_json(&node.metadata());

    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let (status, start, end_excl) = match range {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        RangeSpec::Unsatisfiable => {
            let mut r = wire::with_body(StatusCode::RANGE_NOT_SATISFIABLE, Body::empty());
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut resp = wire::with_body(status, Body::from_stream(stream_range(blob, start, end_excl)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end_excl - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&result) {
        h.insert(HeaderName::from_static("dropbox-api-result"), v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end_excl - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeSpec::Full);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), RangeSpec::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=5-"), 10), RangeSpec::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), RangeSpec::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), RangeSpec::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), RangeSpec::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=3-1"), 10), RangeSpec::Full);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeSpec::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeSpec::Full);
        assert_eq!(parse_range(Some("bytes=x-y"), 10), RangeSpec::Full);
    }
}
