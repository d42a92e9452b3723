//! Instants as Unix milliseconds. The domain never reads a clock: callers pass `now`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Converts a wall-clock reading taken by the caller; instants before 1970 clamp to it.
    pub fn from_system_time(at: SystemTime) -> Self {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self(millis)
    }

    /// `self + d`, or `None` past the representable range (a nonsense TTL).
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        let millis = u64::try_from(d.as_millis()).ok()?;
        self.0.checked_add(millis).map(Timestamp)
    }

    pub const fn saturating_sub(self, d: Duration) -> Timestamp {
        // `as_millis` is u128; clamp before narrowing.
        let millis = d.as_millis();
        let millis = if millis > u64::MAX as u128 {
            u64::MAX
        } else {
            millis as u64
        };
        Timestamp(self.0.saturating_sub(millis))
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-27T09:00:00.000Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let millis = self.0 % 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339_utc() {
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_millis(1_795_770_000_123).to_string(),
            "2026-11-27T09:00:00.123Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn huge_durations_do_not_wrap() {
        assert_eq!(Timestamp::from_millis(5).checked_add(Duration::MAX), None);
        assert_eq!(
            Timestamp::from_millis(5).saturating_sub(Duration::MAX),
            Timestamp::EPOCH
        );
    }
}
