//! Wire shapes of Dropbox API v2 (provider-apis.md §3.2, §3.6): metadata unions,
//! error bodies and the HTTP-header-safe JSON used in `Dropbox-API-Result`.
//!
//! Error conventions reproduced here:
//! - 400: **plain text** (`text/plain; charset=utf-8`), usually
//!   `Error in call to API function "<route>": <detail>`;
//! - 401: JSON `{"error_summary":"<tag>/..","error":{".tag":"<tag>"}}`;
//! - 409: JSON with a nested `.tag` union and an `error_summary` built from the tags,
//!   e.g. `path/not_found/..`;
//! - 429: JSON `{"error_summary":"too_many_requests/..","error":{"reason":{".tag":
//!   "too_many_requests"},"retry_after":N}}` **and** a `Retry-After: N` header;
//! - token endpoint errors: OAuth JSON `{"error":"invalid_grant","error_description":..}`.
//!
//! Every API response (JSON, plain text or bytes) carries `X-Dropbox-Request-Id` (32 random
//! lowercase hex chars), as Dropbox's do; the official SDKs put it in their exceptions.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// `.tag`-discriminated metadata union (`Metadata` in the Stone spec).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = ".tag", rename_all = "lowercase")]
pub(crate) enum Metadata {
    File(FileMetadata),
    Folder(FolderMetadata),
    Deleted(DeletedMetadata),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct FileMetadata {
    pub name: String,
    pub path_lower: String,
    pub path_display: String,
    pub id: String,
    pub client_modified: String,
    pub server_modified: String,
    pub rev: String,
    pub size: u64,
    pub is_downloadable: bool,
    pub content_hash: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct FolderMetadata {
    pub name: String,
    pub path_lower: String,
    pub path_display: String,
    pub id: String,
}

/// Deleted entries carry a path but **no id** (spec `DeletedMetadata`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct DeletedMetadata {
    pub name: String,
    pub path_lower: String,
    pub path_display: String,
}

impl Metadata {
    pub(crate) fn deleted(path_lower: &str, path_display: &str) -> Metadata {
        let name = path_display.rsplit('/').next().unwrap_or_default().to_string();
        Metadata::Deleted(DeletedMetadata {
            name,
            path_lower: path_lower.to_string(),
            path_display: path_display.to_string(),
        })
    }
}

/// 200 with a JSON body.
pub(crate) fn json_ok<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_response(StatusCode::OK, bytes),
        Err(e) => server_error(500, &format!("serialisation failed: {e}")),
    }
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_request_id(r)
}

/// Adds `X-Dropbox-Request-Id`.
fn with_request_id(mut r: Response) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    if let Ok(v) = HeaderValue::from_str(&id) {
        r.headers_mut().insert("x-dropbox-request-id", v);
    }
    r
}

/// 400 plain text, as Dropbox answers malformed requests.
pub(crate) fn bad_request(msg: impl Into<String>) -> Response {
    plain(StatusCode::BAD_REQUEST, msg.into())
}

/// 400 plain text in Dropbox's usual wording for a given route.
pub(crate) fn route_error(route: &str, detail: &str) -> Response {
    bad_request(format!("Error in call to API function \"{route}\": {detail}"))
}

fn plain(status: StatusCode, msg: String) -> Response {
    let mut r = (status, msg).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    with_request_id(r)
}

/// 409 endpoint-specific error. `error` is the union value; the summary is derived
/// from its `.tag` chain (`path/not_found/..`).
pub(crate) fn endpoint_error(error: Value) -> Response {
    let summary = format!("{}/..", tag_chain(&error));
    let body = json!({ "error_summary": summary, "error": error });
    json_response(StatusCode::CONFLICT, body.to_string().into_bytes())
}

/// `a/b/c` from `{".tag":"a","a":{".tag":"b","b":{".tag":"c"}}}`.
fn tag_chain(v: &Value) -> String {
    let mut parts = Vec::new();
    let mut cur = v;
    while let Some(tag) = cur.get(".tag").and_then(Value::as_str) {
        parts.push(tag.to_string());
        match cur.get(tag) {
            Some(next) if next.is_object() => cur = next,
            _ => break,
        }
    }
    parts.join("/")
}

/// 409 `{"error":{".tag":"path","path":{".tag":<lookup_tag>}}}` (LookupError).
pub(crate) fn path_error(lookup_tag: &str) -> Response {
    endpoint_error(json!({ ".tag": "path", "path": { ".tag": lookup_tag } }))
}

/// 409 `reset` (ListFolderContinueError / ListFolderLongpollError).
pub(crate) fn reset_error() -> Response {
    endpoint_error(json!({ ".tag": "reset" }))
}

/// 401 AuthError with the given tag (`invalid_access_token`, `expired_access_token`).
pub(crate) fn auth_error(tag: &str) -> Response {
    let body = json!({ "error_summary": format!("{tag}/.."), "error": { ".tag": tag } });
    json_response(StatusCode::UNAUTHORIZED, body.to_string().into_bytes())
}

/// 401 `missing_scope` with the scope the route needs.
pub(crate) fn missing_scope(scope: &str) -> Response {
    let body = json!({
        "error_summary": "missing_scope/..",
        "error": { ".tag": "missing_scope", "required_scope": scope }
    });
    json_response(StatusCode::UNAUTHORIZED, body.to_string().into_bytes())
}

/// 429 with both `Retry-After` header and `error.retry_after` body.
pub(crate) fn rate_limited(retry_after_secs: u64) -> Response {
    let body = json!({
        "error_summary": "too_many_requests/..",
        "error": { "reason": { ".tag": "too_many_requests" }, "retry_after": retry_after_secs }
    });
    let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, body.to_string().into_bytes());
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

/// A 5xx (or any given status) with a plain-text body, like Dropbox's error pages.
pub(crate) fn server_error(status: u16, detail: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    plain(status, format!("{} {reason}: {detail}", status.as_u16()))
}

/// OAuth token-endpoint error (`invalid_grant`, `invalid_request`, ...).
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    json_response(status, body.to_string().into_bytes())
}

/// JSON whose every char ≥ U+007F is escaped as `\uXXXX` (UTF-16, surrogate pairs for
/// astral chars), so it can travel in an HTTP header (SDK `HTTPHeaderSafeJSON`).
pub(crate) fn header_safe_json<T: Serialize>(v: &T) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".to_string());
    escape_non_ascii(&s)
}

fn escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c as u32) < 0x7F {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// An empty 200 body of `null`, as Dropbox answers routes with a void result.
pub(crate) fn null_ok() -> Response {
    json_response(StatusCode::OK, b"null".to_vec())
}

/// A streaming body response helper used by downloads.
pub(crate) fn with_body(status: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    with_request_id(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_json_escapes_everything_from_del_up() {
        let v = json!({ "name": "café \u{7f} 😀 a\"b" });
        let s = header_safe_json(&v);
        assert!(s.is_ascii(), "{s}");
        assert_eq!(s, r#"{"name":"caf\u00e9 \u007f \ud83d\ude00 a\"b"}"#);
        let back: Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(back, v);
    }

    #[test]
    fn summary_follows_tag_chain() {
        assert_eq!(tag_chain(&json!({".tag":"path","path":{".tag":"not_found"}})), "path/not_found");
        assert_eq!(tag_chain(&json!({".tag":"reset"})), "reset");
    }

    #[test]
    fn deleted_metadata_has_no_id() {
        let v = serde_json::to_value(Metadata::deleted("/a/b.txt", "/A/b.txt")).expect("json");
        assert_eq!(
            v,
            json!({".tag":"deleted","name":"b.txt","path_lower":"/a/b.txt","path_display":"/A/b.txt"})
        );
    }
}
