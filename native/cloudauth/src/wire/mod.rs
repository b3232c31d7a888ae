//! Wire protocols: framing only, no decisions.
//!
//! A protocol is one file here: a codec implementing tokio-util's
//! [`Decoder`] (yielding [`Incoming`] frames: a complete payload, or a
//! framing problem that still deserves a failure answer; I/O errors end the
//! stream) and [`Encoder`] of [`Reply`], plus [`WireProtocol::parse`]
//! (a frame → a typed [`Request`]), and a [`WireEntry`] naming it, listed
//! once in [`registry::WIRE_PROTOCOLS`]. Everything else (`-t`, `--listen`,
//! systemd socket names, the monitor's counters, stdio and socket mode)
//! reads the registry. Framing two protocols share lives in a file of its
//! own ([`lines`]).

pub mod ejabberd;
pub mod generic;
pub mod lines;
pub mod postfix;
pub mod registry;
pub mod saslauthd;

use std::io;

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

use crate::request::{Request, RequestError};

/// One wire protocol's codec: its framing (tokio-util's traits, so that
/// `FramedRead`/`FramedWrite` drive it) and its request syntax. One codec
/// value serves one direction of one connection: state such as a
/// negotiated feature lives in it.
pub trait WireProtocol:
    Decoder<Item = Incoming, Error = io::Error> + Encoder<Reply, Error = io::Error> + Send + 'static
{
    /// The request a decoded frame spells in this protocol.
    fn parse(&self, frame: Incoming) -> Result<Request, BadInput>;
}

/// [`WireProtocol::parse`] of a protocol whose decoder yields whole
/// payloads: the payload read by the protocol's request `syntax`; any other
/// frame is one the decoder never yields (`protocol` names it in the error).
pub(crate) fn parse_payload(
    frame: Incoming,
    protocol: &'static str,
    syntax: fn(&[u8]) -> Result<Request, RequestError>,
) -> Result<Request, BadInput> {
    match frame {
        Incoming::Payload(p) => Ok(syntax(&p)?),
        _ => Err(BadInput::Shape(protocol)),
    }
}

/// What a protocol answers besides `auth` and `isuser` (and `quit`);
/// the rest is answered as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answers {
    /// `roster:` requests (mod_auth_cloudauth's shared roster).
    pub roster: bool,
    /// `hello:` negotiation (the third answer, "cannot tell").
    pub hello: bool,
    /// `departed:` requests (mod_auth_cloudauth's poll for the accounts the
    /// sweep found gone).
    pub departed: bool,
}

impl Answers {
    /// `auth`, `isuser` and `quit` only (ejabberd, Postfix, saslauthd).
    pub const NONE: Answers = Answers {
        roster: false,
        hello: false,
        departed: false,
    };
}

/// A protocol as the registry lists it.
#[derive(Debug)]
pub struct WireEntry {
    /// Its name: `-t NAME`, `--listen NAME=ADDR`, systemd's
    /// `FileDescriptorName=`, the metrics' `protocol` label.
    pub name: &'static str,
    /// Other names accepted for it (`prosody` for `generic`).
    pub aliases: &'static [&'static str],
    /// What it answers besides `auth` and `isuser`.
    pub answers: Answers,
    /// A fresh codec (one per direction of each connection).
    pub codec: fn() -> Box<dyn WireProtocol>,
}

/// Input that is no request, answered with a failure. Safe to log: it
/// carries no request content.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BadInput {
    /// The framing failed.
    #[error("bad input: {0}")]
    Frame(#[from] FrameProblem),
    /// A frame of a shape this protocol's decoder never yields.
    #[error("bad input: frame does not fit the {0} protocol")]
    Shape(&'static str),
    /// The frame is no request of this protocol.
    #[error("bad request: {0}")]
    Request(#[from] RequestError),
}

/// A protocol's codec yielding typed requests: what serving a connection
/// reads and writes.
pub struct Requests(Box<dyn WireProtocol>);

impl Requests {
    /// Over `codec`.
    pub fn new(codec: Box<dyn WireProtocol>) -> Self {
        Requests(codec)
    }

    fn parsed(&self, frame: Option<Incoming>) -> Option<Result<Request, BadInput>> {
        frame.map(|f| match f {
            Incoming::Bad(problem) => Err(BadInput::Frame(problem)),
            f => self.0.parse(f),
        })
    }
}

impl Decoder for Requests {
    type Item = Result<Request, BadInput>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        let frame = self.0.decode(src)?;
        Ok(self.parsed(frame))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        let frame = self.0.decode_eof(src)?;
        Ok(self.parsed(frame))
    }
}

impl Encoder<Reply> for Requests {
    type Error = io::Error;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> io::Result<()> {
        self.0.encode(item, dst)
    }
}

/// Everything `codec` decodes from `chunks` read one after another, then
/// at the end of input: the codecs' tests share it.
#[cfg(test)]
pub(crate) fn decode_chunks<D>(mut codec: D, chunks: &[&[u8]]) -> Vec<Incoming>
where
    D: Decoder<Item = Incoming, Error = io::Error>,
{
    let mut buf = BytesMut::new();
    let mut out = vec![];
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(i) = codec.decode(&mut buf).unwrap() {
            out.push(i);
        }
    }
    while let Some(i) = codec.decode_eof(&mut buf).unwrap() {
        out.push(i);
    }
    out
}

/// Largest request payload accepted; longer frames are skipped and answered "no".
pub const MAX_REQUEST: usize = 8 * 1024;

/// A framing problem. Safe to log: it carries no request content.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FrameProblem {
    /// The length prefix announced more than [`MAX_REQUEST`] bytes; they were skipped.
    #[error("oversized frame of {0} bytes skipped")]
    Oversized(usize),
    /// The stream ended after only some fields of a multi-field request.
    #[error("incomplete request at end of input ({0} of 4 fields)")]
    IncompleteFields(usize),
    /// The stream ended inside a frame.
    #[error("truncated frame at end of input ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
}

/// One decoded unit of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A complete request payload.
    Payload(Bytes),
    /// A request made of separately framed fields (saslauthd).
    Fields(Vec<Bytes>),
    /// Input that cannot be a request, answered with a failure.
    Bad(FrameProblem),
}

/// A reply in protocol-neutral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success / the user exists.
    Yes,
    /// Failure / no such user.
    No,
    /// Neither: the cloud could not be asked (ejabberd reports an internal
    /// error and caches nothing; protocols without such an answer say no).
    TempFail,
    /// The answer to a `roster` request (generic protocol only; the
    /// others answer it as a failure).
    Roster(RosterReply),
    /// The answer to a `hello` request (generic protocol only; the others
    /// answer it as a failure): whether "cannot tell" gets its own answer
    /// on this connection from now on.
    Hello {
        /// Both sides speak `tristate`.
        tristate: bool,
        /// Both sides speak `client-address` (`authfrom` requests).
        client_address: bool,
        /// The client may poll `departed` (the account sweep is on).
        departed: bool,
    },
    /// The answer to a `departed` request (generic protocol only):
    /// `None` when the account sweep is off (nothing to poll for).
    Departed(Option<cloudauth_core::departures::Departed>),
}

/// A user's shared roster, as answered to a `roster` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterReply {
    /// Every bucket is still the one of the version the client has.
    Unchanged,
    /// The cloud could not be asked: the client keeps what it has.
    Unknown,
    /// The buckets that changed since the client's version, each whole.
    Changes {
        /// The bucket the user himself is in (in his contacts' rosters).
        own_bucket: usize,
        /// The user's own display name (for his contacts' side), maybe empty.
        own_name: String,
        /// The version the client holds once it applied every bucket.
        version: cloudauth_core::roster::RosterVersion,
        /// The changed buckets, each whole.
        buckets: Vec<cloudauth_core::roster::BucketChange>,
    },
}
