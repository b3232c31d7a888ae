//! Check lines: what `cloudauth doctor` (and, in the VM, the ejabberd
//! command) prints, one line an admin can act on per [`Check`], naming what
//! is wrong and what to do. Vocabulary, because a backend writes its own
//! checks ([`crate::backend::Backend::doctor`]); running them in order is
//! `crate::doctor`'s.

use std::fmt;
use std::time::Duration;

/// An answer slower than this is worth a line: nothing but an overloaded
/// or throttling cloud takes that long for a lookup.
pub const SLOW: Duration = Duration::from_secs(2);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, but worth changing (plain http to another host, …); does not fail the run.
    Warn,
    /// Broken: the run fails.
    Fail,
}

/// One check's outcome, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`TLS`, `secret-file`, …).
    pub name: String,
    /// How it came out.
    pub status: Status,
    /// What was found (never a secret).
    pub detail: String,
    /// What to do (empty for a pass).
    pub fix: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    /// A warning: works, but should change.
    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    /// A failed check.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    /// False only for a failure.
    pub fn ok(&self) -> bool {
        self.status != Status::Fail
    }

    /// The mark printed before the line.
    pub(crate) fn mark(&self) -> &'static str {
        match self.status {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.mark(), self.name, self.detail)?;
        if !self.fix.is_empty() {
            write!(f, " — {}", self.fix)?;
        }
        Ok(())
    }
}

/// True when no check failed (warnings pass).
pub fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(Check::ok)
}

/// A few random hex digits, for names nobody has.
pub(crate) fn probe_suffix() -> String {
    let mut raw = [0u8; 6];
    if getrandom::fill(&mut raw).is_err() {
        // Without OS randomness the process id and time still make the
        // name unlikely to exist; it need not be unguessable.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        raw[..4].copy_from_slice(&n.to_le_bytes());
    }
    hex::encode(raw)
}

/// A user name that surely does not exist, for asking a backend without
/// touching a real account (nor a login throttle).
pub fn probe_user() -> String {
    format!("cloudauth-doctor-{}", probe_suffix())
}

/// What a backend's own checks found: their lines, and the `Date` of an
/// answer, for the clock check.
#[derive(Debug, Clone, Default)]
pub struct BackendReport {
    /// One line each.
    pub checks: Vec<Check>,
    /// The `Date` header of an answer, as Unix seconds.
    pub date: Option<u64>,
}

/// Time of an answer, worth saying when it was slow.
pub fn took(elapsed: Duration) -> String {
    format!("{} ms", elapsed.as_millis())
}
