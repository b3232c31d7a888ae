//! The authentication decision: token first, then the cloud.
//!
//! `auth` accepts a valid JSXC token for the JID without asking the cloud;
//! a password that is not a token of the domain's secret goes to the cloud.
//! `isuser` always asks the cloud. (The password cache of a later stage
//! slots in between the token check and the cloud.)

use std::sync::Arc;

use crate::backend::{BackendClient, BackendError};
use crate::clock::Clock;
use crate::settings::SettingsResolver;
use crate::token::{self, TokenVerdict};

/// The answer to one question: yes, no, or the cloud could not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated / the user exists.
    Yes,
    /// Refused / no such user.
    No,
    /// The cloud could not be asked or answered nonsense; the cause is kept for the log.
    Trouble(BackendError),
}

impl Verdict {
    /// True only for [`Verdict::Yes`].
    pub fn is_yes(&self) -> bool {
        matches!(self, Verdict::Yes)
    }

    /// A short word for logs: `yes`, `no`, `trouble`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Yes => "yes",
            Verdict::No => "no",
            Verdict::Trouble(_) => "trouble",
        }
    }
}

/// How a decision was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// From the JSXC token alone.
    Token,
    /// By asking the cloud.
    Backend,
    /// Refused before any check (empty field, domain not served).
    Refused,
}

impl Path {
    /// A short word for logs.
    pub fn word(&self) -> &'static str {
        match self {
            Path::Token => "token",
            Path::Backend => "backend",
            Path::Refused => "precheck",
        }
    }
}

/// A verdict with how it was reached and, where useful, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The answer.
    pub verdict: Verdict,
    /// Where it came from.
    pub path: Path,
    /// Extra detail for the log (never a password or token).
    pub reason: Option<&'static str>,
}

impl Decision {
    fn new(verdict: Verdict, path: Path, reason: Option<&'static str>) -> Self {
        Decision {
            verdict,
            path,
            reason,
        }
    }

    fn from_backend(r: Result<bool, BackendError>) -> Self {
        let verdict = match r {
            Ok(true) => Verdict::Yes,
            Ok(false) => Verdict::No,
            Err(e) => Verdict::Trouble(e),
        };
        Decision::new(verdict, Path::Backend, None)
    }
}

/// Answers `auth` and `isuser` questions for any served domain.
pub struct Authenticator {
    backend: BackendClient,
    settings: Arc<dyn SettingsResolver>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    /// Builds the decision maker from its parts.
    pub fn new(
        backend: BackendClient,
        settings: Arc<dyn SettingsResolver>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Authenticator {
            backend,
            settings,
            clock,
        }
    }

    /// The settings source (for adapters that need the same resolution, e.g. token minting).
    pub fn settings(&self) -> &Arc<dyn SettingsResolver> {
        &self.settings
    }

    /// The HTTP client for the cloud.
    pub fn backend(&self) -> &BackendClient {
        &self.backend
    }

    /// Checks only the token path; `None` when the password is not a token
    /// of this domain's secret (or the domain is not served).
    pub fn check_token(&self, user: &str, domain: &str, password: &str) -> Option<Decision> {
        let settings = self.settings.resolve(domain)?;
        let now = self.clock.now_unix();
        match token::verify(&settings.secret, user, domain, password, now) {
            TokenVerdict::Valid { .. } => Some(Decision::new(Verdict::Yes, Path::Token, None)),
            TokenVerdict::Expired { .. } => Some(Decision::new(
                Verdict::No,
                Path::Token,
                Some("token expired"),
            )),
            TokenVerdict::BadMac => Some(Decision::new(
                Verdict::No,
                Path::Token,
                Some("token not valid for this user"),
            )),
            TokenVerdict::NotAToken => None,
        }
    }

    /// Is `password` right for `user@domain`?
    ///
    /// A valid token answers at once; an expired token or one made for
    /// another JID is refused without asking the cloud (the cloud cannot
    /// accept it either); anything else is a password for the cloud.
    pub async fn auth(&self, user: &str, domain: &str, password: &str) -> Decision {
        if let Some(d) = self.check_token(user, domain, password) {
            return d;
        }
        self.auth_backend(user, domain, password).await
    }

    /// The cloud part of [`Authenticator::auth`], for callers that already
    /// ran [`Authenticator::check_token`] and got `None`.
    pub async fn auth_backend(&self, user: &str, domain: &str, password: &str) -> Decision {
        if user.is_empty() || domain.is_empty() || password.is_empty() {
            return Decision::new(Verdict::No, Path::Refused, Some("empty field"));
        }
        let Some(settings) = self.settings.resolve(domain) else {
            return Decision::new(Verdict::No, Path::Refused, Some("domain not served"));
        };
        let auth_domain = settings.auth_domain(domain);
        Decision::from_backend(
            self.backend
                .auth(&settings, user, auth_domain, password)
                .await,
        )
    }

    /// Does `user@domain` exist?
    pub async fn is_user(&self, user: &str, domain: &str) -> Decision {
        if user.is_empty() || domain.is_empty() {
            return Decision::new(Verdict::No, Path::Refused, Some("empty field"));
        }
        let Some(settings) = self.settings.resolve(domain) else {
            return Decision::new(Verdict::No, Path::Refused, Some("domain not served"));
        };
        let auth_domain = settings.auth_domain(domain);
        Decision::from_backend(self.backend.is_user(&settings, user, auth_domain).await)
    }
}
