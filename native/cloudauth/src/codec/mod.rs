//! Wire framings of the supported protocols: framing only, no decisions.
//!
//! Each decoder yields [`Incoming`] items: a complete payload, or a framing
//! problem that still deserves a failure answer. I/O errors end the stream.

pub mod ejabberd;
pub mod generic;
pub mod postfix;
pub mod saslauthd;

use bytes::Bytes;
use thiserror::Error;

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
    },
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
