//! Token formats: passwords that prove themselves, checked locally before
//! any backend is asked.
//!
//! Each format is one file here implementing [`TokenFormat`], plus one line
//! in `crate::catalogue::TOKEN_FORMATS`. A domain tries its configured formats in order
//! (the `tokens` setting); the first that recognises the password decides.

pub mod jsxc;
pub mod replay;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use crate::settings::schema::Spec;
use crate::settings::values::{SettingsError, Values};

pub use jsxc::{mint, verify, TokenKey, TokenVerdict};
pub use replay::{Claim, ClaimReplayGuard, MemoryReplayGuard, ReplayGuard, SqliteReplayGuard, Use};

/// What a format made of a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Not a token of this format: try the next format, then the backend.
    NotToken,
    /// A valid token for this JID: the user is in.
    Valid,
    /// A token of this format that must be refused (expired, another
    /// user's, forged, replayed), with the reason for the log. The backend
    /// is not asked: it could not accept it either.
    Refused(&'static str),
    /// A token of this format whose fate cannot be told now (the replay
    /// guard's storage failed): neither yes nor no.
    Unknown(&'static str),
    /// A valid one-time token, new on this node: valid only if the
    /// cluster's shared table takes the claim (else refused as replayed).
    Claim(Claim),
}

/// One token format, configured for one domain.
pub trait TokenFormat: Send + Sync {
    /// The registry name (`jsxc`, `totp`).
    fn name(&self) -> &'static str;

    /// Reads `password` as a token for `user@domain` at `now` (Unix seconds).
    fn check(&self, user: &str, domain: &str, password: &str, now: u64) -> TokenCheck;

    /// A new token for `user@domain`, valid from `now` for about `ttl` (a
    /// format whose lifetime is fixed ignores `ttl`).
    fn mint(&self, user: &str, domain: &str, now: u64, ttl: Duration) -> String;
}

/// What a format may need beyond its settings.
#[derive(Clone)]
pub struct TokenContext {
    /// Remembers one-time tokens already used.
    pub replay: Arc<dyn ReplayGuard>,
}

/// Builds a token format from a domain's settings.
pub type BuildTokenFormat =
    fn(&Values, &TokenContext) -> Result<Arc<dyn TokenFormat>, SettingsError>;

/// How to build one token format.
pub struct TokenEntry {
    /// Name in the `tokens` setting.
    pub name: &'static str,
    /// One line for `--help` and the docs.
    pub summary: &'static str,
    /// Settings only this format reads.
    pub settings: &'static [Spec],
    /// Builds it.
    pub build: BuildTokenFormat,
}
