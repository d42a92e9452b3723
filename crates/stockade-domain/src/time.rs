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

/// Day count since 1970-01-01 of a Gregorian date (Howard Hinnant's `days_from_civil`),
/// for years from 1970 on.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a UTC RFC 3339 time like 2026-11-27T09:00:00Z or 2026-11-27T09:00:00.123Z")]
pub struct InvalidTimestamp(pub String);

/// Reads what `Display` writes: RFC 3339 in UTC (`Z`), seconds, optional fraction (kept to
/// milliseconds), from 1970 on.
impl std::str::FromStr for Timestamp {
    type Err = InvalidTimestamp;

    /// RFC 3339: `Z` or a numeric offset (`+01:00`, `-05:30`), any number of fraction
    /// digits (kept to the millisecond, rounded down), a leap second (`:60`, read as the
    /// next minute's start). The result is the UTC instant meant.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidTimestamp(s.chars().take(80).collect());
        let (rest, offset_secs) = match s.strip_suffix(['Z', 'z']) {
            Some(rest) => (rest, 0i64),
            None => {
                let at = s.len().checked_sub(6).ok_or_else(bad)?;
                let (rest, offset) = (s.get(..at).ok_or_else(bad)?, s.get(at..).ok_or_else(bad)?);
                let b = offset.as_bytes();
                let sign = match b[0] {
                    b'+' => 1i64,
                    b'-' => -1,
                    _ => return Err(bad()),
                };
                let digits = |r: std::ops::Range<usize>| -> Result<i64, InvalidTimestamp> {
                    let part = offset.get(r).ok_or_else(bad)?;
                    if !part.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(bad());
                    }
                    part.parse().map_err(|_| bad())
                };
                let (h, m) = (digits(1..3)?, digits(4..6)?);
                if b[3] != b':' || h > 23 || m > 59 {
                    return Err(bad());
                }
                (rest, sign * (h * 3600 + m * 60))
            }
        };
        let (date, time) = rest.split_once(['T', 't', ' ']).ok_or_else(bad)?;
        let number = |part: &str, len: usize| -> Result<u64, InvalidTimestamp> {
            if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let mut ymd = date.split('-');
        let (y, m, d) = match (ymd.next(), ymd.next(), ymd.next(), ymd.next()) {
            (Some(y), Some(m), Some(d), None) => (number(y, 4)?, number(m, 2)?, number(d, 2)?),
            _ => return Err(bad()),
        };
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut hms = clock.split(':');
        let (hh, mm, ss) = match (hms.next(), hms.next(), hms.next(), hms.next()) {
            (Some(h), Some(m), Some(s), None) => (number(h, 2)?, number(m, 2)?, number(s, 2)?),
            _ => return Err(bad()),
        };
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if y < 1970
            || !(1..=12).contains(&m)
            || d == 0
            || d > month_days[(m - 1) as usize]
            || hh > 23
            || mm > 59
            || ss > 60
        {
            return Err(bad());
        }
        if time.ends_with('.') {
            return Err(bad()); // a decimal point needs digits after it
        }
        let millis = if fraction.is_empty() {
            0
        } else {
            if !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let padded = format!("{fraction:0<3}");
            padded[..3].parse::<u64>().map_err(|_| bad())?
        };
        let local = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
        // The offset says how far local time is ahead of UTC.
        let secs = i64::try_from(local)
            .ok()
            .and_then(|l| l.checked_sub(offset_secs))
            .and_then(|u| u64::try_from(u).ok())
            .ok_or_else(bad)?;
        secs.checked_mul(1000)
            .and_then(|ms| ms.checked_add(millis))
            .map(Timestamp)
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_renders_and_refuses_the_rest() {
        for millis in [0, 951_782_400_000, 1_795_770_000_123, 4_102_444_799_999] {
            let t = Timestamp::from_millis(millis);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
        assert_eq!(
            "2026-11-27T09:00:00Z".parse::<Timestamp>(),
            Ok(Timestamp::from_millis(1_795_770_000_000))
        );
        assert_eq!(
            "2026-11-27T09:00:00.5Z".parse::<Timestamp>(),
            Ok(Timestamp::from_millis(1_795_770_000_500))
        );
        // Offsets, long fractions and leap seconds, as RFC 3339 allows: the UTC instant.
        let nine = Timestamp::from_millis(1_795_770_000_000);
        assert_eq!("2026-11-27T10:00:00+01:00".parse::<Timestamp>(), Ok(nine));
        assert_eq!("2026-11-27T03:30:00-05:30".parse::<Timestamp>(), Ok(nine));
        assert_eq!("2026-11-27T09:00:00+00:00".parse::<Timestamp>(), Ok(nine));
        assert_eq!(
            "2026-11-27T09:00:00.123456789Z".parse::<Timestamp>(),
            Ok(Timestamp::from_millis(1_795_770_000_123))
        );
        assert_eq!(
            "2026-11-27T08:59:60Z".parse::<Timestamp>(),
            Ok(nine),
            "a leap second reads as the next minute's start"
        );
        for bad in [
            "2026-11-27T09:00:00",
            "2026-11-27T09:00:00+0100",
            "2026-11-27T09:00:00+24:00",
            "2026-11-27T09:00:00.Z",
            "1970-01-01T00:30:00+01:00",
            "2026-02-30T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-27T24:00:00Z",
            "yesterday",
            "2026-1-27T09:00:00Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

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
