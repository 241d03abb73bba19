//! Classification of Dropbox API answers (provider-apis.md §3.6) into [`ProviderError`].
//!
//! | HTTP | Dropbox meaning | → |
//! |---|---|---|
//! | 400 | bad input, **plain text** | `Permanent` |
//! | 401 | `expired_access_token`, `invalid_access_token` (or no readable body) | `Unauthorized` |
//! | 401 | `missing_scope`, `user_suspended` (the grant itself is unusable) | `Reauth` |
//! | 401 | other tags (`route_access_denied`, `invalid_select_user`, …) | `Permanent` |
//! | 403 | `AccessError` | `Forbidden` |
//! | 409 | `reset` | `CursorReset` |
//! | 409 | `path/not_found` (`path_lookup/not_found`) | `NotFound` |
//! | 409 | anything else (`path/restricted_content`, `unsupported_file`, `path/not_folder`, …) | `Permanent` |
//! | 429 | `error.retry_after` and/or `Retry-After` (the longer wins) | `RateLimited` |
//! | 503 | `Retry-After` | `RateLimited` |
//! | 408, other 5xx | | `Transient` |
//! | other | | `Permanent` |

use std::time::SystemTime;

use extconn_core::ports::ProviderError;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wire::ErrorEnvelope;
use crate::http::{classify_common, retry_after_header, snippet};
use crate::retry::retry_after_secs;

/// Classifies a non-2xx answer of an RPC or content route. `body` may be truncated.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now: SystemTime) -> ProviderError {
    let env = ErrorEnvelope::parse(body);
    let describe = || match &env {
        Some(e) => e.describe(),
        None => snippet(body),
    };
    match status.as_u16() {
        400 => ProviderError::Permanent(format!("HTTP 400 bad request: {}", snippet(body))),
        401 => {
            let tag = env.as_ref().and_then(|e| e.tags().first().map(|t| t.to_string()));
            match tag.as_deref() {
                None | Some("expired_access_token" | "invalid_access_token") => ProviderError::Unauthorized,
                Some(t @ ("missing_scope" | "user_suspended")) => ProviderError::Reauth(t.to_owned()),
                Some(_) => ProviderError::Permanent(format!("HTTP 401: {}", describe())),
            }
        }
        403 => ProviderError::Forbidden(format!("HTTP 403: {}", describe())),
        409 => {
            let tags = env.as_ref().map(|e| e.tags()).unwrap_or_default();
            match tags.as_slice() {
                ["reset", ..] => ProviderError::CursorReset,
                ["path" | "path_lookup", "not_found", ..] => ProviderError::NotFound,
                _ => ProviderError::Permanent(format!("HTTP 409: {}", describe())),
            }
        }
        429 => {
            let header = retry_after_header(headers, now);
            let body = env.as_ref().and_then(|e| e.retry_after()).map(retry_after_secs);
            ProviderError::rate_limited(header.max(body))
        }
        _ => classify_common(status, headers, now)
            .unwrap_or_else(|| ProviderError::Permanent(format!("HTTP {status}: {}", describe()))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn run(status: u16, body: &str) -> ProviderError {
        run_h(status, &HeaderMap::new(), body)
    }

    fn run_h(status: u16, headers: &HeaderMap, body: &str) -> ProviderError {
        let status = StatusCode::from_u16(status).unwrap_or_default();
        classify(status, headers, body.as_bytes(), SystemTime::now())
    }

    fn retry_after(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn unauthorized_tags() {
        assert_eq!(
            run(
                401,
                r#"{"error_summary":"expired_access_token/..","error":{".tag":"expired_access_token"}}"#
            ),
            ProviderError::Unauthorized
        );
        assert_eq!(
            run(
                401,
                r#"{"error_summary":"invalid_access_token/...","error":{".tag":"invalid_access_token"}}"#
            ),
            ProviderError::Unauthorized
        );
        assert_eq!(run(401, "unreadable"), ProviderError::Unauthorized);
        assert_eq!(
            run(
                401,
                r#"{"error_summary":"missing_scope/.","error":{".tag":"missing_scope","required_scope":"files.content.read"}}"#
            ),
            ProviderError::Reauth("missing_scope".into())
        );
        assert!(matches!(
            run(401, r#"{"error_summary":"route_access_denied/..","error":{".tag":"route_access_denied"}}"#),
            ProviderError::Permanent(m) if m.contains("route_access_denied")
        ));
    }

    #[test]
    fn conflicts() {
        assert_eq!(
            run(409, r#"{"error_summary":"reset/..","error":{".tag":"reset"}}"#),
            ProviderError::CursorReset
        );
        assert_eq!(
            run(
                409,
                r#"{"error_summary":"path/not_found/..","error":{".tag":"path","path":{".tag":"not_found"}}}"#
            ),
            ProviderError::NotFound
        );
        assert_eq!(
            run(
                409,
                r#"{"error_summary":"path_lookup/not_found/","error":{".tag":"path_lookup","path_lookup":{".tag":"not_found"}}}"#
            ),
            ProviderError::NotFound
        );
        for (body, needle) in [
            (
                r#"{"error_summary":"path/restricted_content/.","error":{".tag":"path","path":{".tag":"restricted_content"}}}"#,
                "restricted_content",
            ),
            (
                r#"{"error_summary":"unsupported_file/..","error":{".tag":"unsupported_file"}}"#,
                "unsupported_file",
            ),
            (
                r#"{"error_summary":"path/not_folder/..","error":{".tag":"path","path":{".tag":"not_folder"}}}"#,
                "not_folder",
            ),
            (r#"{"error":{".tag":"path","path":{".tag":"malformed_path"}}}"#, "path/malformed_path"),
        ] {
            let e = run(409, body);
            assert!(matches!(&e, ProviderError::Permanent(m) if m.contains(needle)), "{body}: {e:?}");
            assert!(!e.is_retryable());
        }
        // A 409 with no readable envelope is not mistaken for a reset or a not-found.
        assert!(matches!(run(409, "conflict"), ProviderError::Permanent(_)));
    }

    #[test]
    fn rate_limits() {
        let body = r#"{"error_summary":"too_many_requests/..","error":{"reason":{".tag":"too_many_requests"},"retry_after":300}}"#;
        assert_eq!(run(429, body), ProviderError::rate_limited(Some(Duration::from_secs(300))));
        assert_eq!(
            run_h(429, &retry_after("12"), "Too many requests"),
            ProviderError::rate_limited(Some(Duration::from_secs(12)))
        );
        // Both: the longer wait wins.
        assert_eq!(
            run_h(429, &retry_after("12"), body),
            ProviderError::rate_limited(Some(Duration::from_secs(300)))
        );
        assert_eq!(
            run_h(429, &retry_after("900"), body),
            ProviderError::rate_limited(Some(Duration::from_secs(900)))
        );
        assert_eq!(run(429, ""), ProviderError::rate_limited(None));
        assert_eq!(
            run_h(503, &retry_after("5"), "<html>busy</html>"),
            ProviderError::rate_limited(Some(Duration::from_secs(5)))
        );
    }

    #[test]
    fn plain_text_400_and_server_errors() {
        let e = run(
            400,
            "Error in call to API function \"files/list_folder\": Specify the root folder as an empty string rather than as \"/\".",
        );
        assert!(matches!(&e, ProviderError::Permanent(m) if m.contains("Specify the root folder")), "{e:?}");
        assert!(matches!(run(500, "oops"), ProviderError::Transient(_)));
        assert!(matches!(run(502, ""), ProviderError::Transient(_)));
        assert!(matches!(run(408, ""), ProviderError::Transient(_)));
        assert!(matches!(
            run(403, r#"{"error_summary":"no_permission/..","error":{".tag":"no_permission"}}"#),
            ProviderError::Forbidden(m) if m.contains("no_permission")
        ));
        assert!(matches!(run(422, "{}"), ProviderError::Permanent(_)));
        assert!(matches!(run(404, "nope"), ProviderError::Permanent(_)));
    }
}
