//! The two deadlines of a request.

use std::time::Duration;

/// Connect and total deadlines for one request (xcauth's `--timeout C,T`).
/// `Default` (no time at all) only lets `setting` read `timeout`, whose
/// default is the schema's (tests check it is never reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Deadline for the TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// Deadline for the whole request, connection included.
    pub total: Duration,
}
