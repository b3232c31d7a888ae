//! The program's vocabulary: words its layers share (what a listener
//! serves, what to answer on trouble, where logs go, how a connection ended, the
//! socket limits), with nothing of the layers that use them.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::wire::registry::Protocol;
use crate::wire::registry::WIRE_PROTOCOLS;

/// What to answer when the backend cannot say yes or no: a choice of the
/// core's settings vocabulary (its words are the schema's).
pub use cloudauth_core::settings::TroublePolicy;

/// What a listener serves: one of the wire protocols (the registry,
/// `cloudauth::wire::registry`), or the metrics page (`--listen
/// metrics=ADDR`), which is no request protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Authentication requests in a wire protocol.
    Auth(Protocol),
    /// OpenMetrics text over HTTP.
    Metrics,
}

impl ListenerKind {
    /// The name a listener spec or a systemd socket gives the metrics page.
    const METRICS: &'static str = "metrics";

    /// Every kind: the protocols in the registry's order, then metrics.
    pub fn all() -> impl Iterator<Item = ListenerKind> {
        Protocol::all()
            .map(ListenerKind::Auth)
            .chain(std::iter::once(ListenerKind::Metrics))
    }

    /// How many kinds there are: [`ListenerKind::index`] is below it.
    pub fn count() -> usize {
        WIRE_PROTOCOLS.len() + 1
    }

    /// Its place in [`ListenerKind::all`] (per-kind counters are indexed so).
    pub fn index(self) -> usize {
        match self {
            ListenerKind::Auth(p) => p.index(),
            ListenerKind::Metrics => WIRE_PROTOCOLS.len(),
        }
    }

    /// The kind called `name`: a protocol's name or alias, or `metrics`.
    pub fn named(name: &str) -> Option<ListenerKind> {
        if name.trim().eq_ignore_ascii_case(Self::METRICS) {
            return Some(ListenerKind::Metrics);
        }
        Protocol::named(name).map(ListenerKind::Auth)
    }

    /// Its name, for metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::Auth(p) => p.label(),
            ListenerKind::Metrics => Self::METRICS,
        }
    }
}

impl std::fmt::Debug for ListenerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenerKind::Auth(p) => p.fmt(f),
            ListenerKind::Metrics => f.write_str("Metrics"),
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (`-i`, one-shot checks).
    Stderr,
    /// Standard error connected to systemd's journal, with priority prefixes.
    Journal,
    /// `<dir>/cloudauth.log`.
    Dir(PathBuf),
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed its side.
    Eof,
    /// Nothing arrived within the idle timeout (socket connections only).
    Idle,
    /// The peer sent `quit` or `exit`.
    Quit,
    /// The process is shutting down; requests already read were answered.
    Shutdown,
    /// Closed to make room for a new connection (the listener or the
    /// peer's share was full and this one was idle longest).
    Evicted,
    /// The peer did not read a reply within the write timeout; requests
    /// not answered yet are dropped with the connection.
    Unread,
}

/// Limits of socket mode (`--max-connections`, `--max-connections-per-peer`,
/// `--idle-timeout`, `--write-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Open connections per listener. Per listener, so that a flood on one
    /// (say the loopback Postfix port) cannot starve the others.
    pub per_listener: usize,
    /// Open connections per peer (TCP: its address, on loopback the
    /// connecting socket's owner; unix socket: its user id); 0: no limit.
    pub per_peer: usize,
    /// A connection without a request for this long is closed.
    pub idle: Duration,
    /// A connection whose peer does not read a reply for this long is closed.
    pub write: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_in_order_and_named() {
        for (i, k) in ListenerKind::all().enumerate() {
            assert_eq!(k.index(), i, "{k:?}");
            assert_eq!(ListenerKind::named(k.label()), Some(k));
        }
        assert_eq!(ListenerKind::all().count(), ListenerKind::count());
        assert_eq!(ListenerKind::named("Metrics"), Some(ListenerKind::Metrics));
        assert_eq!(format!("{:?}", ListenerKind::Metrics), "Metrics");
    }
}
