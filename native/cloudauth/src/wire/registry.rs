//! The wire protocols cloudauth speaks: one line each in
//! [`WIRE_PROTOCOLS`]. Names for `-t` and `--listen`, systemd's socket
//! names, the monitor's per-protocol counters and serving a stream all
//! read this list, so a protocol added here is known everywhere.

use std::fmt;

use super::{ejabberd, generic, postfix, saslauthd, Answers, Requests, WireEntry};

/// Every wire protocol, in the order the metrics list them.
pub static WIRE_PROTOCOLS: &[&WireEntry] = &[
    &ejabberd::ENTRY,
    &generic::ENTRY,
    &saslauthd::ENTRY,
    &postfix::ENTRY,
];

/// One of [`WIRE_PROTOCOLS`]: its place in the list, so that per-protocol
/// counters are a slice of `WIRE_PROTOCOLS.len()` indexed by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protocol(usize);

impl Protocol {
    /// Every protocol, in the registry's order.
    pub fn all() -> impl Iterator<Item = Protocol> {
        (0..WIRE_PROTOCOLS.len()).map(Protocol)
    }

    /// The protocol called `name` (or one of its aliases), in any case.
    pub fn named(name: &str) -> Option<Protocol> {
        let name = name.trim();
        WIRE_PROTOCOLS
            .iter()
            .position(|e| {
                e.name.eq_ignore_ascii_case(name)
                    || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
            })
            .map(Protocol)
    }

    /// Every name [`Protocol::named`] takes, for messages:
    /// `ejabberd, generic, prosody, saslauthd or postfix`.
    pub fn names() -> String {
        let all: Vec<&str> = WIRE_PROTOCOLS
            .iter()
            .flat_map(|e| std::iter::once(e.name).chain(e.aliases.iter().copied()))
            .collect();
        match all.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// Its place in [`WIRE_PROTOCOLS`] (below `WIRE_PROTOCOLS.len()`).
    pub fn index(self) -> usize {
        self.0
    }

    fn entry(self) -> &'static WireEntry {
        // `Protocol` values are only made from places in the list.
        WIRE_PROTOCOLS[self.0]
    }

    /// Its name, for metrics labels and the request gate's front doors.
    pub fn label(self) -> &'static str {
        self.entry().name
    }

    /// What it answers besides `auth` and `isuser`.
    pub fn answers(self) -> Answers {
        self.entry().answers
    }

    /// A fresh codec yielding typed requests (one per direction of a stream).
    pub fn requests(self) -> Requests {
        Requests::new((self.entry().codec)())
    }
}

impl fmt::Debug for Protocol {
    /// Its name capitalised (`Ejabberd`), as log lines have always shown it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.label();
        let mut chars = name.chars();
        if let Some(first) = chars.next() {
            write!(f, "{}{}", first.to_ascii_uppercase(), chars.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        let p = |n| Protocol::named(n).map(Protocol::label);
        assert_eq!(p("prosody"), Some("generic"));
        assert_eq!(p(" Ejabberd"), Some("ejabberd"));
        assert_eq!(p("saslauthd"), Some("saslauthd"));
        assert_eq!(p("postfix"), Some("postfix"));
        assert_eq!(p("xmpp"), None);
        assert_eq!(p("metrics"), None, "metrics is a listener, not a protocol");
        assert_eq!(
            Protocol::names(),
            "ejabberd, generic, prosody, saslauthd or postfix"
        );
        assert_eq!(
            format!("{:?}", Protocol::named("generic").unwrap()),
            "Generic"
        );
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for e in WIRE_PROTOCOLS {
            for n in std::iter::once(e.name).chain(e.aliases.iter().copied()) {
                assert!(seen.insert(n), "{n} twice");
            }
        }
    }

    #[test]
    fn the_type_setting_is_the_registry_s() {
        // The core's schema holds no list of its own: `-t` is read through
        // this registry (the program's command line and configuration).
        use cloudauth_core::settings::keys::TYPE;
        use cloudauth_core::settings::schema::Kind;
        let spec = cloudauth_core::catalogue::find(TYPE).expect("the type setting");
        assert_eq!(spec.kind, Kind::Protocol);
    }
}
