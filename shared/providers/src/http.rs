//! HTTP plumbing shared by the connectors: the client, bounded body reads, and the part of
//! error classification every provider shares (rate limits, server errors, network failures).
//!
//! Error strings built here never contain request headers, and callers pass the secrets they
//! sent through [`redact`] before an error leaves the connector.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use extconn_core::ports::ProviderError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::retry::parse_retry_after;

/// Transport settings of a connector's `reqwest::Client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// TCP (+TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response (headers or any body chunk). This, not a total
    /// deadline, bounds downloads: a large file may stream for a long time, a stalled one may not.
    pub read_timeout: Duration,
    /// Whole-request deadline for RPC calls (never applied to content downloads).
    pub rpc_timeout: Duration,
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            rpc_timeout: Duration::from_secs(120),
            user_agent: concat!("extconn/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Builds the client: timeouts, user agent, and **no automatic redirects** (a connector that
/// needs one follows it explicitly, so credentials are never forwarded to another host).
pub fn build_client(cfg: &HttpConfig) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(cfg.user_agent.clone())
        .build()
        .map_err(|e| {
            ProviderError::Permanent(format!("cannot build the HTTP client: {}", chain(&e.without_url())))
        })
}

/// The `Authorization: Bearer` value, marked sensitive so `http` never prints it. A token that
/// cannot be a header value is refused like a rejected one.
pub fn bearer(access: &extconn_core::Secret) -> Result<reqwest::header::HeaderValue, ProviderError> {
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", access.expose()))
        .map_err(|_| ProviderError::Unauthorized)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Drops trailing slashes from configured base URLs (paths are appended with a leading `/`).
pub fn trim_bases<'a>(bases: impl IntoIterator<Item = &'a mut String>) {
    for base in bases {
        while base.ends_with('/') {
            base.pop();
        }
    }
}

/// A download resumed from a non-zero offset must be answered `206 Partial Content`: a `200`
/// would be the whole file, appended after the bytes already stored.
pub fn require_partial(offset: u64, status: StatusCode) -> Result<(), ProviderError> {
    if offset > 0 && status != StatusCode::PARTIAL_CONTENT {
        return Err(ProviderError::Transient(format!("a ranged download was answered {status}, not 206")));
    }
    Ok(())
}

/// Largest JSON body a connector accepts (a 2000-entry listing page is ~1 MB).
pub const MAX_JSON_BODY: usize = 32 * 1024 * 1024;
/// How much of an error body is read for classification; the rest is dropped.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// A network-level failure (connect, timeout, reset, truncated body): always transient. The
/// message names the kind and the source chain, never the URL or headers.
pub fn transport_error(e: reqwest::Error) -> ProviderError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "response body error"
    } else if e.is_request() {
        "request error"
    } else {
        "network error"
    };
    ProviderError::Transient(format!("{kind}: {}", chain(&e.without_url())))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// The `Retry-After` header, if present and parseable.
pub fn retry_after_header(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now))
}

/// The classification every provider shares: 429 and 503 → `RateLimited` (with `Retry-After`),
/// 408 and other 5xx → `Transient`. `None` for statuses whose meaning is provider-specific.
pub fn classify_common(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<ProviderError> {
    match status.as_u16() {
        429 | 503 => Some(ProviderError::rate_limited(retry_after_header(headers, now))),
        408 | 500..=599 => Some(ProviderError::Transient(format!("HTTP {status}"))),
        _ => None,
    }
}

/// Reads a whole body, failing (transiently) beyond `limit` bytes.
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, ProviderError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if buf.len() + chunk.len() > limit {
            return Err(ProviderError::Transient(format!("response body larger than {limit} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads at most `limit` bytes of an error body; a failure to read yields what was read.
pub async fn read_error_body(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    buf.freeze()
}

/// A short, single-line, printable excerpt of a body for an error message.
pub fn snippet(body: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut out: String =
        text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_CHARS).collect();
    if text.trim().chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

/// Replaces every occurrence of the given secret values in the error's message by `***`:
/// the last line of defence against a server echoing a token or code back in an error body.
pub fn redact(err: ProviderError, secrets: &[&str]) -> ProviderError {
    let clean = |s: String| secrets.iter().filter(|x| !x.is_empty()).fold(s, |acc, x| acc.replace(x, "***"));
    match err {
        ProviderError::Transient(s) => ProviderError::Transient(clean(s)),
        ProviderError::Reauth(s) => ProviderError::Reauth(clean(s)),
        ProviderError::Integrity(s) => ProviderError::Integrity(clean(s)),
        ProviderError::Permanent(s) => ProviderError::Permanent(clean(s)),
        ProviderError::Forbidden(s) => ProviderError::Forbidden(clean(s)),
        ProviderError::Config(s) => ProviderError::Config(clean(s)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn common_statuses() {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify_common(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(ProviderError::rate_limited(Some(Duration::from_secs(7))))
        );
        assert_eq!(
            classify_common(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), now),
            Some(ProviderError::rate_limited(None))
        );
        for s in [408u16, 500, 502, 504, 599] {
            let got = classify_common(StatusCode::from_u16(s).unwrap_or_default(), &h, now);
            assert!(matches!(got, Some(ProviderError::Transient(_))), "{s}: {got:?}");
        }
        for s in [200u16, 400, 401, 403, 404, 409] {
            assert_eq!(classify_common(StatusCode::from_u16(s).unwrap_or_default(), &h, now), None, "{s}");
        }
    }

    #[test]
    fn snippet_is_short_and_single_line() {
        assert_eq!(snippet(b"  bad\r\ninput\t "), "bad  input");
        let long = "x".repeat(500);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), 201);
        assert!(s.ends_with('…'));
        assert_eq!(snippet(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn redact_removes_secrets_from_messages() {
        let e = ProviderError::Permanent("token sl.SECRET-1 rejected; sl.SECRET-1 again".into());
        assert_eq!(
            redact(e, &["sl.SECRET-1", ""]),
            ProviderError::Permanent("token *** rejected; *** again".into())
        );
        assert_eq!(redact(ProviderError::NotFound, &["x"]), ProviderError::NotFound);
    }

    #[tokio::test]
    async fn unreachable_host_is_transient_and_names_no_url() {
        let client = build_client(&HttpConfig {
            connect_timeout: Duration::from_millis(500),
            ..HttpConfig::default()
        })
        .unwrap_or_default();
        // Port 9 on localhost: nothing listens (connection refused).
        let err = client
            .post("http://127.0.0.1:9/secret-path?token=abc")
            .send()
            .await
            .map_err(transport_error)
            .err();
        let Some(ProviderError::Transient(msg)) = err else { panic!("expected Transient, got {err:?}") };
        assert!(!msg.contains("secret-path") && !msg.contains("token=abc"), "{msg}");
    }
}
