//! Fault injection, switchable at run time.

use std::time::Duration;

/// How the API currently misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Normal operation.
    Ok,
    /// The API listener is closed: connection refused.
    Down,
    /// Every answer is delayed.
    Delay(Duration),
    /// HTTP 500 with an HTML body.
    Http500,
    /// HTTP 200 with an HTML body.
    NonJson,
    /// HTTP 302 to the https URL.
    Redirect,
    /// HTTP 200 with a 2 MiB body.
    Huge,
}

impl Fault {
    /// Reads `mode` (and `ms` for delay) from the control request.
    pub fn parse(mode: &str, ms: Option<u64>) -> Option<Fault> {
        Some(match mode {
            "ok" => Fault::Ok,
            "down" => Fault::Down,
            "delay" => Fault::Delay(Duration::from_millis(ms?)),
            "http500" => Fault::Http500,
            "nonjson" => Fault::NonJson,
            "redirect" => Fault::Redirect,
            "huge" => Fault::Huge,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(
            Fault::parse("delay", Some(5)),
            Some(Fault::Delay(Duration::from_millis(5)))
        );
        assert_eq!(Fault::parse("delay", None), None);
        assert_eq!(Fault::parse("down", None), Some(Fault::Down));
        assert_eq!(Fault::parse("explode", None), None);
    }
}
