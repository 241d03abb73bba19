//! `POST {content_base}/2/files/download`: the argument in `Dropbox-API-Arg`, the served
//! metadata in `Dropbox-API-Result`, the bytes streamed and verified on the fly.

use extconn_core::Secret;
use extconn_core::ports::{Download, DownloadRequest, ProviderError};
use futures::stream::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, RANGE};

use super::Dropbox;
use super::errors;
use super::wire::{FileMetadata, PathArg};
use crate::hash::DropboxContentHasher;
use crate::http::{MAX_ERROR_BODY, read_error_body, redact, snippet, transport_error};
use crate::verify::{Expect, resumed_hash, verified};

const API_ARG: HeaderName = HeaderName::from_static("dropbox-api-arg");
const API_RESULT: HeaderName = HeaderName::from_static("dropbox-api-result");

/// JSON made "HTTP-header-safe" as the Dropbox SDKs do: every char ≥ U+007F is written as a
/// `\uXXXX` escape (UTF-16, so astral chars become a surrogate pair). The result is ASCII and
/// still valid JSON, since such chars can only occur inside strings.
pub fn header_safe_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if (c as u32) < 0x7f {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    Ok(out)
}

pub(super) async fn download(
    dbx: &Dropbox,
    access: &Secret,
    req: &DownloadRequest,
) -> Result<Download, ProviderError> {
    start(dbx, access, req).await.map_err(|e| redact(e, &[access.expose()]))
}

/// From a non-zero offset the request carries `Range: bytes=offset-` and expects a 206; the
/// served metadata still describes the whole file, so only the rest's size can be checked.
async fn start(dbx: &Dropbox, access: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError> {
    let arg = header_safe_json(&PathArg { path: &req.item.id })
        .map_err(|e| ProviderError::Permanent(format!("cannot encode the download argument: {e}")))?;
    let url = format!("{}/2/files/download", dbx.cfg.content_base);
    let mut request = dbx.http.post(url).header(AUTHORIZATION, super::bearer(access)?).header(API_ARG, arg);
    if req.offset > 0 {
        request = request.header(RANGE, format!("bytes={}-", req.offset));
    }
    let resp = request.send().await.map_err(transport_error)?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = read_error_body(resp, MAX_ERROR_BODY).await;
        return Err(errors::classify(status, &headers, &body, dbx.now()));
    }
    crate::http::require_partial(req.offset, status)?;
    let served: FileMetadata = match resp.headers().get(API_RESULT) {
        Some(v) => serde_json::from_slice(v.as_bytes()).map_err(|e| {
            ProviderError::Transient(format!(
                "unreadable Dropbox-API-Result header: {e}: {}",
                snippet(v.as_bytes())
            ))
        })?,
        None => {
            return Err(ProviderError::Transient("download answered without Dropbox-API-Result".into()));
        }
    };
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let item = served.into_item();
    let size = item.size.unwrap_or(0);
    if req.offset > size {
        return Err(ProviderError::Integrity(format!(
            "offset {} beyond the file's {size} bytes",
            req.offset
        )));
    }
    if item.content_hash.is_none() {
        tracing::warn!(id = %item.id, "Dropbox served a file without content_hash: checking its size only");
    }
    let hash = resumed_hash::<DropboxContentHasher>(req, item.content_hash.clone())?;
    let expect = Expect::for_request(req, Some(size - req.offset), hash);
    let marks = expect.marks.clone();
    let stream = verified(resp.bytes_stream().boxed(), expect);
    Ok(Download { item, content_type, file_name: None, stream, warning: Default::default(), marks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_escapes_everything_non_ascii() {
        let s = header_safe_json(&PathArg { path: "/Ünïcødé/日本/😀\u{7f}x\"q\\" }).unwrap_or_default();
        assert_eq!(s, r#"{"path":"/\u00dcn\u00efc\u00f8d\u00e9/\u65e5\u672c/\ud83d\ude00\u007fx\"q\\"}"#);
        assert!(s.is_ascii());
        // Still the same JSON value.
        let back: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(back["path"], "/Ünïcødé/日本/😀\u{7f}x\"q\\");
        assert_eq!(header_safe_json(&PathArg { path: "id:abc" }).unwrap_or_default(), r#"{"path":"id:abc"}"#);
    }
}
