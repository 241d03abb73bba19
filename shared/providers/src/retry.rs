//! `Retry-After` (RFC 9110 §10.2.3): either delta-seconds or an HTTP-date.

use std::time::{Duration, SystemTime};

/// The longest wait a provider can impose through `Retry-After`. Larger values (including
/// delta-seconds that overflow `u64`) are capped here: a day is far beyond any documented
/// provider back-off, and the engine turns a long wait into a delayed continuation anyway, so a
/// hostile or buggy header cannot park a connection for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a `Retry-After` value relative to `now`.
///
/// - delta-seconds (`"120"`, surrounding whitespace allowed) → that many seconds;
/// - HTTP-date in IMF-fixdate (`"Sun, 06 Nov 1994 08:49:37 GMT"`) or the obsolete RFC 850
///   (`"Sunday, 06-Nov-94 08:49:37 GMT"`) and asctime (`"Sun Nov  6 08:49:37 1994"`) forms →
///   the time until then, `Duration::ZERO` if it is already past;
/// - anything else (negative or fractional numbers, empty, other date formats) → `None`;
/// - every result is capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(header_value: &str, now: SystemTime) -> Option<Duration> {
    let v = header_value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can fail, which saturates.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// A `retry_after` number of seconds from a JSON body (Dropbox `error.retry_after`), capped the
/// same way as the header.
pub fn retry_after_secs(secs: u64) -> Duration {
    Duration::from_secs(secs).min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, the RFC's example instant.
    fn rfc_instant() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("  300 ", now), Some(Duration::from_secs(300)));
        assert_eq!(parse_retry_after("007", now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn huge_values_are_capped() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("86401", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", rfc_instant()), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_secs(u64::MAX), MAX_RETRY_AFTER);
        assert_eq!(retry_after_secs(300), Duration::from_secs(300));
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let now = rfc_instant() - Duration::from_secs(90);
        let expect = Some(Duration::from_secs(90));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), expect);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), expect);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), expect);
    }

    #[test]
    fn past_dates_mean_now() {
        let now = rfc_instant() + Duration::from_secs(3600);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_instant()), Some(Duration::ZERO));
    }

    #[test]
    fn garbage_is_none() {
        let now = SystemTime::now();
        for v in [
            "",
            "   ",
            "-1",
            "+5",
            "1.5",
            "1e3",
            "soon",
            "12 s",
            "0x10",
            "2024-01-01T00:00:00Z",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(v, now), None, "{v:?}");
        }
    }
}
