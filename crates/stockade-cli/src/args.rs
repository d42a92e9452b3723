//! Parsers for command-line values that several commands take, and the SplitMix64 mix
//! both simulations draw their repeatable randomness from.

use std::time::Duration;

use stockade_domain::{OrderId, Sku};

/// `90`, `90s`, `500ms`, `15m`, `1h`: a number and an optional unit (seconds without).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 15m or 24h"))?;
    let millis = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    }
    .ok_or_else(|| format!("{s:?} is too long"))?;
    if millis == 0 {
        return Err("must be more than zero".into());
    }
    Ok(Duration::from_millis(millis))
}

/// A share or rate, from 0 to 1.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".into())
    }
}

/// An amount of money: finite, zero or more.
pub fn parse_money(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be zero or more".into())
    }
}

pub fn parse_sku(s: &str) -> Result<Sku, String> {
    Sku::new(s).map_err(|e| e.to_string())
}

pub fn parse_order(s: &str) -> Result<OrderId, String> {
    OrderId::new(s).map_err(|e| e.to_string())
}

/// The SplitMix64 finaliser: a well-mixed 64-bit hash of `z`.
pub fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's increment (the golden ratio in 64 bits).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused() {
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("x").is_err());
        assert_eq!(parse_share("0.5"), Ok(0.5));
        assert!(parse_money("-3").is_err());
        assert!(parse_money("inf").is_err());
        assert_eq!(parse_money("1500"), Ok(1500.0));
    }
}
