//! Backends: the systems that can tell whether a password is right for a
//! user (and whether the user exists, and who shares a group with whom).
//!
//! Each backend is one file here implementing [`Backend`], plus one line in
//! `crate::catalogue::BACKENDS`: its name, its own settings (declared next to it, so the
//! command line, the config file and the ejabberd options pick them up) and
//! how to build it from a domain's settings. The decision layer
//! ([`crate::decision`]) talks to backends only through this trait.

mod error;
pub mod gate;
pub mod http;
pub mod json;
pub mod jsxc;
pub mod metered;
pub mod nextcloud;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::doctor::{self, BackendReport, Check};
use crate::roster::SharedRoster;
use crate::settings::schema::Spec;
use crate::settings::values::{SettingsError, Values};

pub use error::{body_shape, decode_json, BackendError, DecodeError, GateError};
pub use http::{HttpClient, Timeouts};
// Backends make their reply snippets with it (`super::printable_snippet`).
pub use crate::log_text::printable_snippet;

/// What a backend call returns, boxed so that backends can live behind `dyn`.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// What [`Backend::doctor`] returns.
pub type DoctorFuture<'a> = Pin<Box<dyn Future<Output = BackendReport> + Send + 'a>>;

/// Whom a question is about: the user's local part as the XMPP server sent
/// it and the domain as the backend knows it (the auth domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account<'a> {
    /// Local part.
    pub user: &'a str,
    /// Domain sent to the backend.
    pub domain: &'a str,
    /// The address the user's client connects from, when the XMPP server
    /// told it (Prosody's `authfrom`); `None` for the server's own
    /// questions and for servers that do not tell.
    pub client: Option<std::net::IpAddr>,
}

impl<'a> Account<'a> {
    /// `user` at `domain`, with no client address.
    pub const fn new(user: &'a str, domain: &'a str) -> Self {
        Account {
            user,
            domain,
            client: None,
        }
    }

    /// The same, from the client at `client`.
    pub const fn from_client(mut self, client: Option<std::net::IpAddr>) -> Self {
        self.client = client;
        self
    }
}

/// One backend, configured for one domain (or for all of them).
pub trait Backend: Send + Sync {
    /// The registry name (`jsxc`, `json`, `nextcloud`).
    fn name(&self) -> &'static str;

    /// Is `password` right? `Ok(false)` only when the backend said no.
    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool>;

    /// Does the user exist? `Ok(false)` only when the backend said no.
    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool>;

    /// The users sharing a group with `who` (and `who`), or `None` when this
    /// backend, as configured, cannot tell (shared roster sync is then off).
    fn shared_roster<'a>(&'a self, _who: Account<'a>) -> Option<BackendFuture<'a, SharedRoster>> {
        None
    }

    /// How long a wrong password for a user is answered "no" without asking
    /// again, when asking again would hurt (Nextcloud's brute-force throttle
    /// counts every failure against the XMPP server's address).
    fn repeat_refusal_window(&self) -> Option<Duration> {
        None
    }

    /// The budget of failed logins this backend may cause, when its
    /// service counts them against the server's address (Nextcloud's
    /// brute-force protection): the decision spends it on the password
    /// checks most likely to succeed ([`crate::bruteforce`]).
    fn failure_budget(&self) -> Option<&crate::bruteforce::FailureBudget> {
        None
    }

    /// Whether the answer for a user part can depend on the domain sent
    /// (the JSON API is asked about `user@domain`, JSXC tries `user@domain`
    /// before `user`). `false` for a backend that checks the user part
    /// alone (Nextcloud): then a wrong password is one wrong password at
    /// every domain the global settings serve, and is remembered so.
    fn answer_depends_on_domain(&self) -> bool {
        true
    }

    /// This backend's own checks for `cloudauth doctor`, asking as the
    /// server would for users of `domain` (the auth domain): does its API
    /// answer at the URL in the expected format, are the server's own
    /// credentials (secret, token, service account) accepted. Never with a
    /// real user's account, and never a failed login (a login throttle
    /// would count it). The default asks whether a user that surely does
    /// not exist exists, and tells only whether that worked.
    fn doctor<'a>(&'a self, domain: &'a str) -> DoctorFuture<'a> {
        Box::pin(generic_doctor(self, domain))
    }

    /// What this backend finds out once at start, before the first request
    /// needs it (Nextcloud: its brute-force state and whether it honours a
    /// forwarded client address); `None` for nothing. Never a login.
    fn start(&self) -> Option<StartFuture<'_>> {
        None
    }
}

/// What [`Backend::start`] returns.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// [`Backend::doctor`]'s default: one `is_user` for a name nobody has.
async fn generic_doctor<B: Backend + ?Sized>(backend: &B, domain: &str) -> BackendReport {
    let user = doctor::probe_user();
    let name = format!("{} API", backend.name());
    let started = std::time::Instant::now();
    let check = match backend.is_user(Account::new(&user, domain)).await {
        Ok(_) => Check::pass(
            name,
            format!(
                "answers (isuser of an unknown name) in {}",
                doctor::took(started.elapsed())
            ),
        ),
        Err(e) => Check::fail(
            name,
            e.to_string(),
            "check url and the backend's credentials",
        ),
    };
    BackendReport {
        checks: vec![check],
        date: None,
    }
}

/// Builds a backend from a domain's settings, sharing the process's HTTP client.
pub type BuildBackend = fn(&Values, &Arc<HttpClient>) -> Result<Arc<dyn Backend>, SettingsError>;

/// How to build one kind of backend.
pub struct BackendEntry {
    /// Value of the `backend` setting.
    pub name: &'static str,
    /// One line for `--help` and the docs.
    pub summary: &'static str,
    /// Settings only this backend reads.
    pub settings: &'static [Spec],
    /// Builds it.
    pub build: BuildBackend,
    /// How its requests reach the backend, which says where the request
    /// gate and the backend counters apply.
    pub transport: Transport,
    /// The URL schemes its `url` setting may have (an HTTP backend:
    /// [`crate::vocab::url::HTTP_SCHEMES`]; a directory might take
    /// `ldap`/`ldaps`): the setting's check and `doctor`'s probes (TLS for
    /// a TLS scheme) read them.
    pub schemes: &'static [crate::vocab::url::UrlScheme],
}

/// How a backend's requests travel, for the gate and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Through the [`HttpClient`] it is built with, which gates and counts
    /// every HTTP request (per host).
    Http,
    /// Some other way (a directory, a database): the assembly wraps it in
    /// [`metered::Metered`], which gates and counts every call (per backend
    /// name), so the backend needs no code of its own for either.
    Other,
}
