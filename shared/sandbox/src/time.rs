//! Time helpers: the Dropbox timestamp format and a manual (virtual) clock for tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::TimeSource;

/// Formats a time as Dropbox does: `%Y-%m-%dT%H:%M:%SZ` (UTC, whole seconds; times
/// before 1970 are clamped to the epoch).
pub fn format_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A virtual clock for tests: starts at a given time and only moves when told.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let clock = extconn_sandbox::ManualClock::new(SystemTime::UNIX_EPOCH);
/// let source = clock.source(); // put this in SandboxConfig::now
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(source(), SystemTime::UNIX_EPOCH + Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock { now: Arc::new(Mutex::new(start)) }
    }

    /// Current virtual time.
    pub fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut g = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *g += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }

    /// The clock as a [`TimeSource`] for [`crate::SandboxConfig::now`].
    pub fn source(&self) -> TimeSource {
        let c = self.clone();
        Arc::new(move || c.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dropbox_timestamps() {
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2015-05-12T15:50:38Z, the example of provider-apis.md §3.2.
        let t = UNIX_EPOCH + Duration::from_secs(1_431_445_838);
        assert_eq!(format_timestamp(t), "2015-05-12T15:50:38Z");
        // Leap day, and sub-second precision is dropped.
        let t = UNIX_EPOCH + Duration::from_millis(1_709_164_800_999);
        assert_eq!(format_timestamp(t), "2024-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(format_timestamp(t), "2099-12-31T23:59:59Z");
    }
}
