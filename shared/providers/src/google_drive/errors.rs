//! Classification of Drive API answers (provider-apis.md §1.6) into [`ProviderError`], by HTTP
//! status and the first `error.errors[].reason` of the two-level error body.
//!
//! | HTTP | `reason` | → |
//! |---|---|---|
//! | 400 | an invalid `pageToken` (`location: pageToken`) | `CursorReset` |
//! | 400 | anything else (`badRequest`, `invalid`, …) | `Permanent` |
//! | 401 | any (`authError`) | `Unauthorized` |
//! | 403 | `userRateLimitExceeded`, `rateLimitExceeded` | `RateLimited{Request}` |
//! | 403 | `downloadQuotaExceeded` (this file was downloaded too often) | `RateLimited{File}` |
//! | 403 | `quotaExceeded` (the account's quota) | `RateLimited{Grant}` |
//! | 403 | `exportSizeLimitExceeded` | `NotImportable{export_too_large}` |
//! | 403 | `fileNotDownloadable` | `NotImportable{not_downloadable}` |
//! | 403 | `cannotDownloadAbusiveFile` | `NotImportable{abusive_file}` |
//! | 403 | `insufficientFilePermissions`, `domainPolicy`, any other | `Forbidden` (with the reason) |
//! | 404 | `notFound` | `NotFound` |
//! | 410 | (an expired change token) | `CursorReset` |
//! | 429 | any | `RateLimited{Request}` (`Retry-After` when sent) |
//! | 503 | | `RateLimited{Request}` (`Retry-After`) |
//! | 408, other 5xx | `backendError`, … | `Transient` |
//! | other | | `Permanent` |

use std::time::SystemTime;

use extconn_core::ports::{ProviderError, RateScope};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wire::ErrorBody;
use crate::http::{classify_common, retry_after_header, snippet};

/// Classifies a non-2xx answer of an API or content route. `body` may be truncated.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now: SystemTime) -> ProviderError {
    let parsed = ErrorBody::parse(body);
    let reason = parsed.as_ref().and_then(|b| b.reason());
    let describe = || match &parsed {
        Some(b) => b.describe(),
        None => snippet(body),
    };
    let limited = |scope| ProviderError::RateLimited { retry_after: retry_after_header(headers, now), scope };
    let not_importable = |reason: &str| ProviderError::NotImportable { reason: reason.to_owned() };
    match status.as_u16() {
        400 if parsed.as_ref().and_then(|b| b.location()) == Some("pageToken") => ProviderError::CursorReset,
        400 => ProviderError::Permanent(format!("HTTP 400 bad request: {}", describe())),
        401 => ProviderError::Unauthorized,
        403 => match reason {
            Some("userRateLimitExceeded" | "rateLimitExceeded") => limited(RateScope::Request),
            Some("downloadQuotaExceeded") => limited(RateScope::File),
            Some("quotaExceeded") => limited(RateScope::Grant),
            Some("exportSizeLimitExceeded") => not_importable("export_too_large"),
            Some("fileNotDownloadable") => not_importable("not_downloadable"),
            Some("cannotDownloadAbusiveFile") => not_importable("abusive_file"),
            _ => ProviderError::Forbidden(format!("HTTP 403: {}", describe())),
        },
        404 => ProviderError::NotFound,
        410 => ProviderError::CursorReset,
        _ => classify_common(status, headers, now)
            .unwrap_or_else(|| ProviderError::Permanent(format!("HTTP {status}: {}", describe()))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn body(code: u16, reason: &str) -> String {
        format!(
            r#"{{"error":{{"code":{code},"message":"m","errors":[{{"domain":"global","reason":"{reason}","message":"m"}}]}}}}"#
        )
    }

    fn run_h(status: u16, headers: &HeaderMap, body: &str) -> ProviderError {
        let status = StatusCode::from_u16(status).unwrap_or_default();
        classify(status, headers, body.as_bytes(), SystemTime::now())
    }

    fn run(status: u16, body: &str) -> ProviderError {
        run_h(status, &HeaderMap::new(), body)
    }

    fn rate(scope: RateScope) -> ProviderError {
        ProviderError::RateLimited { retry_after: None, scope }
    }

    #[test]
    fn the_table_of_provider_apis_1_6() {
        let ni = |r: &str| ProviderError::NotImportable { reason: r.into() };
        let table: Vec<(u16, &str, ProviderError)> = vec![
            (403, "userRateLimitExceeded", rate(RateScope::Request)),
            (403, "rateLimitExceeded", rate(RateScope::Request)),
            (429, "rateLimitExceeded", rate(RateScope::Request)),
            (403, "downloadQuotaExceeded", rate(RateScope::File)),
            (403, "quotaExceeded", rate(RateScope::Grant)),
            (403, "exportSizeLimitExceeded", ni("export_too_large")),
            (403, "fileNotDownloadable", ni("not_downloadable")),
            (403, "cannotDownloadAbusiveFile", ni("abusive_file")),
            (404, "notFound", ProviderError::NotFound),
            (401, "authError", ProviderError::Unauthorized),
            (410, "deleted", ProviderError::CursorReset),
        ];
        for (status, reason, want) in table {
            assert_eq!(run(status, &body(status, reason)), want, "{status} {reason}");
        }
        for reason in ["insufficientFilePermissions", "domainPolicy", "somethingNew"] {
            let e = run(403, &body(403, reason));
            assert!(matches!(&e, ProviderError::Forbidden(m) if m.contains(reason)), "{reason}: {e:?}");
            assert_eq!(e.reason_code(), "access_denied");
        }
        let e = run(400, &body(400, "badRequest"));
        assert!(matches!(&e, ProviderError::Permanent(m) if m.contains("badRequest")), "{e:?}");
        for s in [500u16, 502, 504, 408] {
            assert!(matches!(run(s, &body(s, "backendError")), ProviderError::Transient(_)), "{s}");
        }
        // Unreadable bodies: the status decides.
        assert_eq!(run(401, ""), ProviderError::Unauthorized);
        assert_eq!(run(404, "<html>Not Found</html>"), ProviderError::NotFound);
        assert!(matches!(run(403, "<html>denied</html>"), ProviderError::Forbidden(_)));
    }

    #[test]
    fn an_invalid_page_token_resets_the_cursor() {
        let invalid = r#"{"error":{"errors":[{"domain":"global","reason":"invalid","message":"Invalid Value",
            "locationType":"parameter","location":"pageToken"}],"code":400,"message":"Invalid Value"}}"#;
        assert_eq!(run(400, invalid), ProviderError::CursorReset);
        let other = r#"{"error":{"errors":[{"domain":"global","reason":"invalid","message":"Invalid Value",
            "locationType":"parameter","location":"q"}],"code":400,"message":"Invalid Value"}}"#;
        assert!(matches!(run(400, other), ProviderError::Permanent(_)));
    }

    #[test]
    fn retry_after_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let seven = Some(Duration::from_secs(7));
        assert_eq!(
            run_h(403, &h, &body(403, "userRateLimitExceeded")),
            ProviderError::RateLimited { retry_after: seven, scope: RateScope::Request }
        );
        assert_eq!(run_h(429, &h, ""), ProviderError::rate_limited(seven));
        assert_eq!(run_h(503, &h, "busy"), ProviderError::rate_limited(seven));
        assert_eq!(
            run_h(403, &h, &body(403, "quotaExceeded")),
            ProviderError::RateLimited { retry_after: seven, scope: RateScope::Grant }
        );
    }
}
