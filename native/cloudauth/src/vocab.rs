//! The program's vocabulary: words its layers share (the wire protocols,
//! what to answer on trouble, where logs go, how a connection ended, the
//! socket limits), with nothing of the layers that use them.

use std::path::PathBuf;
use std::time::Duration;

/// What to answer when the backend cannot say yes or no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TroublePolicy {
    /// Answer "no", like xcauth.
    Fail,
    /// Answer something ejabberd takes neither as yes nor as no: the request
    /// fails and nothing is cached (ejabberd's auth cache would otherwise
    /// remember the user as non-existent after an outage).
    TempFail,
}

/// The wire protocol spoken on stdin/stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// ejabberd extauth: 2-byte length prefix.
    Ejabberd,
    /// One request per line (Prosody's mod_auth_external "generic").
    Generic,
    /// saslauthd's length-prefixed fields (Cyrus SASL, Postfix SMTP auth).
    Saslauthd,
    /// Postfix tcp_table lookups (`get user@domain`).
    Postfix,
    /// OpenMetrics text over HTTP (`--listen metrics=ADDR` only).
    Metrics,
}

impl Protocol {
    /// Every protocol, in declaration order: `protocol as usize` is its
    /// place here (per-protocol counters are indexed so).
    pub const ALL: [Protocol; 5] = [
        Protocol::Ejabberd,
        Protocol::Generic,
        Protocol::Saslauthd,
        Protocol::Postfix,
        Protocol::Metrics,
    ];

    /// Its name, for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Protocol::Ejabberd => "ejabberd",
            Protocol::Generic => "generic",
            Protocol::Saslauthd => "saslauthd",
            Protocol::Postfix => "postfix",
            Protocol::Metrics => "metrics",
        }
    }

    /// Its request syntax.
    pub fn dialect(&self) -> crate::request::Dialect {
        use crate::request::Dialect;
        match self {
            Protocol::Ejabberd | Protocol::Generic | Protocol::Metrics => Dialect::Colon,
            Protocol::Saslauthd => Dialect::Saslauthd,
            Protocol::Postfix => Dialect::Postfix,
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
    fn all_protocols_in_declaration_order() {
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "{p:?}");
        }
    }
}
