//! Durations as admins write them in xcauth configuration: `30`, `90s`,
//! `15m`, `1h`, `1d`, `1w`.

use std::time::Duration;
use thiserror::Error;

/// A duration string that could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: expected a number with an optional suffix s, m, h, d or w")]
pub struct DurationError(pub String);

/// Parses a number of seconds with an optional unit suffix (s, m, h, d, w).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let err = || DurationError(text.to_string());
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        Some(_) => (t, 's'),
        None => return Err(err()),
    };
    let n: u64 = digits.trim().parse().map_err(|_| err())?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(err()),
    };
    n.checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 2D "), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "h", "1x", "-1", "1.5h", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
