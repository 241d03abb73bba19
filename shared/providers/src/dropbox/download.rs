//! `POST {content_base}/2/files/download`: the argument in `Dropbox-API-Arg`, the served
//! metadata in `Dropbox-API-Result`, the bytes streamed and verified on the fly.

use bytes::Bytes;
use extconn_core::Secret;
use extconn_core::ports::{Download, ProviderError, RemoteItem};
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};

use super::Dropbox;
use super::errors;
use super::wire::{FileMetadata, PathArg};
use crate::hash::DropboxContentHasher;
use crate::http::{MAX_ERROR_BODY, read_error_body, redact, snippet, transport_error};

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
    item: &RemoteItem,
) -> Result<Download, ProviderError> {
    start(dbx, access, item).await.map_err(|e| redact(e, &[access.expose()]))
}

async fn start(dbx: &Dropbox, access: &Secret, item: &RemoteItem) -> Result<Download, ProviderError> {
    let arg = header_safe_json(&PathArg { path: &item.id })
        .map_err(|e| ProviderError::Permanent(format!("cannot encode the download argument: {e}")))?;
    let url = format!("{}/2/files/download", dbx.cfg.content_base);
    let resp = dbx
        .http
        .post(url)
        .header(AUTHORIZATION, super::bearer(access)?)
        .header(API_ARG, arg)
        .send()
        .await
        .map_err(transport_error)?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = read_error_body(resp, MAX_ERROR_BODY).await;
        return Err(errors::classify(status, &headers, &body, dbx.now()));
    }
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
    let expected_size = item.size.unwrap_or(0);
    if item.content_hash.is_none() {
        tracing::warn!(id = %item.id, "Dropbox served a file without content_hash: checking its size only");
    }
    let stream = verified(resp.bytes_stream().boxed(), expected_size, item.content_hash.clone());
    Ok(Download { item, content_type, stream })
}

struct Verifier {
    inner: BoxStream<'static, Result<Bytes, ProviderError>>,
    hasher: DropboxContentHasher,
    expected_size: u64,
    expected_hash: Option<String>,
}

/// Passes the body through, hashing and counting it. Ends with a final `Err` instead of a clean
/// end when the body is shorter or longer than announced or its hash differs (`Integrity`), or
/// when the connection fails (`Transient`). Memory: one chunk at a time.
pub(crate) fn verified(
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    expected_size: u64,
    expected_hash: Option<String>,
) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    verified_stream(inner.map(|r| r.map_err(transport_error)).boxed(), expected_size, expected_hash)
}

pub(crate) fn verified_stream(
    inner: BoxStream<'static, Result<Bytes, ProviderError>>,
    expected_size: u64,
    expected_hash: Option<String>,
) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    let state = Verifier { inner, hasher: DropboxContentHasher::new(), expected_size, expected_hash };
    futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            match st.inner.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    st.hasher.update(&chunk);
                    if st.hasher.bytes_hashed() > st.expected_size {
                        let err = ProviderError::Integrity(format!(
                            "body longer than the announced {} bytes",
                            st.expected_size
                        ));
                        return Some((Err(err), None));
                    }
                    return Some((Ok(chunk), Some(st)));
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let got = st.hasher.bytes_hashed();
                    if got != st.expected_size {
                        let err = ProviderError::Integrity(format!(
                            "short body: {got} of {} bytes",
                            st.expected_size
                        ));
                        return Some((Err(err), None));
                    }
                    let hash = st.hasher.finalize();
                    return match st.expected_hash {
                        Some(expected) if !expected.eq_ignore_ascii_case(&hash) => Some((
                            Err(ProviderError::Integrity(format!(
                                "content_hash mismatch: served {expected}, computed {hash}"
                            ))),
                            None,
                        )),
                        _ => None,
                    };
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

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

    fn chunks(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, ProviderError>> {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()).boxed()
    }

    async fn collect(
        s: BoxStream<'static, Result<Bytes, ProviderError>>,
    ) -> Vec<Result<Bytes, ProviderError>> {
        s.collect().await
    }

    const HELLO_HASH: &str = "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423";

    #[tokio::test]
    async fn good_body_ends_cleanly() {
        let out =
            collect(verified_stream(chunks(&[b"hello", b"", b" world"]), 11, Some(HELLO_HASH.into()))).await;
        let bytes: Vec<u8> =
            out.iter().flat_map(|r| r.as_ref().map(|b| b.to_vec()).unwrap_or_default()).collect();
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        assert_eq!(bytes, b"hello world");
        // Uppercase hex from a server is the same hash.
        let out =
            collect(verified_stream(chunks(&[b"hello world"]), 11, Some(HELLO_HASH.to_uppercase()))).await;
        assert!(out.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn short_body_ends_with_integrity_error() {
        let out = collect(verified_stream(chunks(&[b"hello"]), 11, Some(HELLO_HASH.into()))).await;
        assert!(
            matches!(out.last(), Some(Err(ProviderError::Integrity(m))) if m.contains("short")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn long_body_ends_with_integrity_error() {
        let out = collect(verified_stream(chunks(&[b"hello world", b"!"]), 11, None)).await;
        assert!(matches!(out.last(), Some(Err(ProviderError::Integrity(_)))), "{out:?}");
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn same_length_corruption_ends_with_integrity_error() {
        let out = collect(verified_stream(chunks(&[b"hellO world"]), 11, Some(HELLO_HASH.into()))).await;
        assert!(
            matches!(out.last(), Some(Err(ProviderError::Integrity(m))) if m.contains("content_hash")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn transport_failure_is_final_and_transient() {
        let inner = stream::iter(vec![
            Ok(Bytes::from_static(b"hello")),
            Err(ProviderError::Transient("connection reset".into())),
            Ok(Bytes::from_static(b" world")),
        ])
        .boxed();
        let out = collect(verified_stream(inner, 11, Some(HELLO_HASH.into()))).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(out[1], Err(ProviderError::Transient(_))));
    }

    #[tokio::test]
    async fn missing_hash_checks_size_only() {
        let out = collect(verified_stream(chunks(&[b"abc"]), 3, None)).await;
        assert!(out.iter().all(Result::is_ok));
        let out = collect(verified_stream(chunks(&[b"ab"]), 3, None)).await;
        assert!(matches!(out.last(), Some(Err(ProviderError::Integrity(_)))));
    }
}
