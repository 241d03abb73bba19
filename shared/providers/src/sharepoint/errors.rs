//! Classification of Graph answers (provider-apis.md §2.6) into [`ProviderError`], by HTTP
//! status and the error codes of the body — the top-level `code` and every nested
//! `innerError.code` — never by message.
//!
//! | HTTP | codes (any level) | → |
//! |---|---|---|
//! | any | `resyncRequired`, `resyncChangesApplyDifferences`, `resyncChangesUploadDifferences`, `syncStateNotFound` | `CursorReset` |
//! | any | `malwareDetected` | `NotImportable{malware_detected}` |
//! | 401 | any (`InvalidAuthenticationToken`, `unauthenticated`) | `Unauthorized` |
//! | 403 | `activityLimitReached` | `RateLimited{Request}` |
//! | 403 | anything else (`accessDenied`, `notAllowed`) | `Forbidden` |
//! | 404 | any (`itemNotFound`) | `NotFound` |
//! | 410 | any (an expired delta token) | `CursorReset` |
//! | 416 | `invalidRange` | `Integrity` (the resumed offset is past the file: start over) |
//! | 429 | any | `RateLimited{Request}` (`Retry-After`) |
//! | 503 | any | `RateLimited{Request}` (`Retry-After`) |
//! | 509 | `bandwidthLimitExceeded` | `RateLimited{Request}` (`Retry-After`) |
//! | 501 | `notSupported` (delta on a non-root folder) | `Permanent` |
//! | 400 | `cannotSnapshotTree` | `Transient` |
//! | 408, other 5xx | `generalException`, … | `Transient` |
//! | other | | `Permanent` (codes and message) |

use std::time::SystemTime;

use extconn_core::ports::ProviderError;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wire::ErrorBody;
use crate::http::{classify_common, retry_after_header, snippet};

/// Classifies a non-2xx answer of a Graph route. `body` may be truncated.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now: SystemTime) -> ProviderError {
    let parsed = ErrorBody::parse(body);
    let codes = parsed.as_ref().map(ErrorBody::codes).unwrap_or_default();
    let has = |names: &[&str]| codes.iter().any(|c| names.contains(c));
    let describe = || match &parsed {
        Some(b) => b.describe(),
        None => snippet(body),
    };
    let limited = || ProviderError::rate_limited(retry_after_header(headers, now));
    if has(&[
        "resyncRequired",
        "resyncChangesApplyDifferences",
        "resyncChangesUploadDifferences",
        "syncStateNotFound",
    ]) {
        return ProviderError::CursorReset;
    }
    if has(&["malwareDetected"]) {
        return ProviderError::NotImportable { reason: "malware_detected".into() };
    }
    match status.as_u16() {
        401 => ProviderError::Unauthorized,
        403 if has(&["activityLimitReached"]) => limited(),
        403 => ProviderError::Forbidden(format!("HTTP 403: {}", describe())),
        404 => ProviderError::NotFound,
        410 => ProviderError::CursorReset,
        416 => ProviderError::Integrity(format!("HTTP 416: {}", describe())),
        509 => limited(),
        // Not a passing failure: delta asked of a non-root folder of a business drive.
        501 => ProviderError::Permanent(format!("HTTP 501: {}", describe())),
        400 if has(&["cannotSnapshotTree"]) => ProviderError::Transient(format!("HTTP 400: {}", describe())),
        _ => classify_common(status, headers, now)
            .unwrap_or_else(|| ProviderError::Permanent(format!("HTTP {status}: {}", describe()))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn body(code: &str, inner: &str) -> String {
        format!(
            r#"{{"error":{{"code":"{code}","message":"m","innerError":{{"code":"{inner}","date":"2026-05-01T10:00:00","request-id":"r","client-request-id":"c"}}}}}}"#
        )
    }

    fn run_h(status: u16, headers: &HeaderMap, body: &str) -> ProviderError {
        classify(
            StatusCode::from_u16(status).unwrap_or_default(),
            headers,
            body.as_bytes(),
            SystemTime::now(),
        )
    }

    fn run(status: u16, body: &str) -> ProviderError {
        run_h(status, &HeaderMap::new(), body)
    }

    #[test]
    fn the_table() {
        let table: Vec<(u16, String, ProviderError)> = vec![
            (401, body("InvalidAuthenticationToken", "x"), ProviderError::Unauthorized),
            (401, body("unauthenticated", "x"), ProviderError::Unauthorized),
            (401, String::new(), ProviderError::Unauthorized),
            (404, body("itemNotFound", "x"), ProviderError::NotFound),
            (404, "<html>".into(), ProviderError::NotFound),
            (410, body("resyncChangesApplyDifferences", "x"), ProviderError::CursorReset),
            (410, String::new(), ProviderError::CursorReset),
            (400, body("invalidRequest", "resyncRequired"), ProviderError::CursorReset),
            (400, body("syncStateNotFound", "x"), ProviderError::CursorReset),
            (
                403,
                body("accessDenied", "malwareDetected"),
                ProviderError::NotImportable { reason: "malware_detected".into() },
            ),
            (429, body("activityLimitReached", "throttledRequest"), ProviderError::rate_limited(None)),
            (403, body("activityLimitReached", "x"), ProviderError::rate_limited(None)),
            (503, body("serviceNotAvailable", "x"), ProviderError::rate_limited(None)),
            (509, body("bandwidthLimitExceeded", "x"), ProviderError::rate_limited(None)),
        ];
        for (status, b, want) in table {
            assert_eq!(run(status, &b), want, "{status} {b}");
        }
        let e = run(403, &body("accessDenied", "notAllowed"));
        assert!(matches!(&e, ProviderError::Forbidden(m) if m.contains("accessDenied/notAllowed")), "{e:?}");
        let e = run(501, &body("notSupported", "x"));
        assert!(matches!(&e, ProviderError::Permanent(m) if m.contains("notSupported")), "{e:?}");
        assert!(!e.is_retryable());
        assert!(matches!(run(400, &body("invalidRequest", "x")), ProviderError::Permanent(_)));
        assert!(matches!(
            run(400, &body("invalidRequest", "cannotSnapshotTree")),
            ProviderError::Transient(_)
        ));
        assert!(matches!(run(416, &body("invalidRange", "x")), ProviderError::Integrity(_)));
        for s in [500u16, 502, 504, 408] {
            assert!(matches!(run(s, &body("generalException", "x")), ProviderError::Transient(_)), "{s}");
        }
        assert!(matches!(run(403, "<html>denied</html>"), ProviderError::Forbidden(_)));
    }

    #[test]
    fn the_message_never_decides() {
        // A message mentioning a code is not that code.
        let b =
            r#"{"error":{"code":"accessDenied","message":"resyncRequired itemNotFound malwareDetected"}}"#;
        assert!(matches!(run(403, b), ProviderError::Forbidden(_)));
    }

    #[test]
    fn retry_after_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let seven = ProviderError::rate_limited(Some(Duration::from_secs(7)));
        assert_eq!(run_h(429, &h, &body("activityLimitReached", "x")), seven);
        assert_eq!(run_h(503, &h, "busy"), seven);
        assert_eq!(run_h(509, &h, ""), seven);
    }
}
