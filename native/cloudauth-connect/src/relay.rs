//! Forwards one request at a time over a kept connection, with the retry
//! rule below; every failure becomes the configured trouble reply.
//!
//! # When a request is sent a second time
//!
//! At most once, on a fresh connection, and only when **both** hold:
//!
//! 1. the connection was reused, i.e. it was opened for an earlier request
//!    and has been sitting idle since (a fresh connection that fails means
//!    the server is in trouble now; trying again would only add delay);
//! 2. writing the request failed, or the connection ended (EOF or reset)
//!    before **any** byte of the reply arrived.
//!
//! Why that is safe: cloudauth closes a connection without answering only
//! when it has not read a request from it. Its idle close fires only with
//! nothing pending, and its shutdown answers every request it has read. So
//! "closed before the first reply byte" on an idle connection is the idle
//! close (or shutdown) racing our request, and the request was not decided.
//! The one case in which it was read is a server crash between reading and
//! answering; a second send is still harmless there, because what cloudauth
//! acts on (`auth`, `isuser`) only reads, and the writing commands
//! (`setpass`, `tryregister`, `removeuser`) are refused whatever happens.
//!
//! Never re-sent: after a timeout (the server may still be deciding it, and
//! a second wait would run into ejabberd's own 30 s limit), after part of a
//! reply (the server did answer), and after an invalid reply (the server is
//! not speaking the protocol). The connection is dropped after every failure,
//! so a late or stray reply can never be taken for the next request's answer.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::target::{Connector, Stream, Target};
use crate::wire::{is_valid, Reply};

/// Why a request got the trouble reply. Carries no request content.
#[derive(Debug)]
pub enum RelayError {
    /// No connection (refused, no such socket, timed out, ...).
    Connect(io::Error),
    /// Writing the request failed.
    Send(io::Error),
    /// The connection ended before any byte of the reply.
    Closed(Option<io::Error>),
    /// The connection ended after this many bytes of the reply.
    Partial(usize),
    /// No complete reply before the deadline.
    Timeout(Duration),
    /// The server sent something that is not a reply.
    BadReply(Reply),
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayError::Connect(e) if is_timeout(e) => write!(f, "cannot connect: timed out"),
            RelayError::Connect(e) => write!(f, "cannot connect: {e}"),
            RelayError::Send(e) => write!(f, "cannot send the request: {e}"),
            RelayError::Closed(None) => write!(f, "connection closed without a reply"),
            RelayError::Closed(Some(e)) => write!(f, "connection lost without a reply: {e}"),
            RelayError::Partial(n) => write!(f, "connection closed after {n} of 4 reply bytes"),
            RelayError::Timeout(t) => write!(f, "no reply within {} s", t.as_secs_f64()),
            RelayError::BadReply(r) => write!(
                f,
                "invalid reply {:02x} {:02x} {:02x} {:02x}",
                r[0], r[1], r[2], r[3]
            ),
        }
    }
}

impl std::error::Error for RelayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RelayError::Connect(e) | RelayError::Send(e) | RelayError::Closed(Some(e)) => Some(e),
            _ => None,
        }
    }
}

impl RelayError {
    /// The server certainly sent nothing back: the request may go out again
    /// (on a fresh connection, if the failed one had been reused).
    fn unanswered(&self) -> bool {
        matches!(self, RelayError::Send(_) | RelayError::Closed(_))
    }
}

/// A relay to one cloudauth socket.
#[derive(Debug)]
pub struct Relay {
    connector: Connector,
    timeout: Duration,
    conn: Option<Stream>,
}

impl Relay {
    /// A relay that connects on its first request.
    pub fn new(target: Target, timeout: Duration) -> Self {
        Relay {
            connector: Connector::new(target),
            timeout,
            conn: None,
        }
    }

    /// Sends one whole frame (length prefix included) and returns the valid
    /// reply, all within the timeout. On error the connection is dropped.
    pub fn forward(&mut self, frame: &[u8]) -> Result<Reply, RelayError> {
        let deadline = Instant::now() + self.timeout;
        let result = self.exchange(frame, deadline);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(&mut self, frame: &[u8], deadline: Instant) -> Result<Reply, RelayError> {
        if let Some(conn) = self.conn.as_mut() {
            match ask(conn, frame, deadline, self.timeout) {
                Err(e) if e.unanswered() => self.conn = None, // see the module doc
                done => return done,
            }
        }
        let mut conn = self
            .connector
            .connect(deadline)
            .map_err(RelayError::Connect)?;
        let reply = ask(&mut conn, frame, deadline, self.timeout)?;
        self.conn = Some(conn);
        Ok(reply)
    }
}

/// One request/reply exchange on `conn`.
fn ask(
    conn: &mut Stream,
    frame: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<Reply, RelayError> {
    let timed_out = |e: &io::Error| is_timeout(e).then_some(RelayError::Timeout(timeout));
    let mut sent = 0;
    while sent < frame.len() {
        conn.limit_writes(deadline)
            .map_err(|e| timed_out(&e).unwrap_or(RelayError::Send(e)))?;
        match conn.write(&frame[sent..]) {
            Ok(0) => return Err(RelayError::Send(io::ErrorKind::WriteZero.into())),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timed_out(&e).unwrap_or(RelayError::Send(e))),
        }
    }
    let mut reply: Reply = [0; 4];
    let mut got = 0;
    while got < reply.len() {
        let ended = |e: Option<io::Error>| match got {
            0 => RelayError::Closed(e),
            n => RelayError::Partial(n),
        };
        conn.limit_reads(deadline)
            .map_err(|e| timed_out(&e).unwrap_or_else(|| ended(Some(e))))?;
        match conn.read(&mut reply[got..]) {
            Ok(0) => return Err(ended(None)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timed_out(&e).unwrap_or_else(|| ended(Some(e)))),
        }
    }
    if is_valid(&reply) {
        Ok(reply)
    } else {
        Err(RelayError::BadReply(reply))
    }
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Unix, `TimedOut` elsewhere.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unanswered_failures_are_retried() {
        assert!(RelayError::Send(io::ErrorKind::BrokenPipe.into()).unanswered());
        assert!(RelayError::Closed(None).unanswered());
        assert!(RelayError::Closed(Some(io::ErrorKind::ConnectionReset.into())).unanswered());
        assert!(!RelayError::Partial(2).unanswered());
        assert!(!RelayError::Timeout(Duration::from_secs(1)).unanswered());
        assert!(!RelayError::BadReply([0, 2, 0, 9]).unanswered());
        assert!(!RelayError::Connect(io::ErrorKind::NotFound.into()).unanswered());
    }

    #[test]
    fn messages_carry_no_request() {
        let e = RelayError::BadReply([0, 2, 0, 7]);
        assert_eq!(e.to_string(), "invalid reply 00 02 00 07");
        let e = RelayError::Timeout(Duration::from_millis(1500));
        assert_eq!(e.to_string(), "no reply within 1.5 s");
    }
}
