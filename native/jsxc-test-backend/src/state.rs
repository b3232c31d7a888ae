//! State shared by the API and the control server.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use cloudauth_core::Secret;
use tokio::sync::watch;

use crate::clock::ClockOffset;
use crate::faults::Fault;
use crate::stats::Stats;
use crate::throttle::Throttle;
use crate::users::{Directory, UsersError};
use crate::workers::Workers;

/// Everything both servers see.
pub struct App {
    /// The API secret requests must be signed with.
    pub secret: Secret,
    /// Accounts.
    pub users: RwLock<Arc<Directory>>,
    /// Where accounts are read from.
    pub users_path: PathBuf,
    /// Request counters.
    pub stats: Stats,
    /// Current fault mode.
    pub fault: watch::Sender<Fault>,
    /// Whether the API listener is open right now (false while `Down` is in force).
    pub listening: watch::Sender<bool>,
    /// Log nothing per request.
    pub quiet: bool,
    /// Bearer token the JSON API requires (`--api-token-file`), if any.
    pub api_token: Option<Secret>,
    /// Nextcloud's brute-force throttle on the OCS API.
    pub throttle: Throttle,
    /// The Nextcloud version the OCS API answers as (`--nextcloud-version`:
    /// 24, 32 or 34; 32 and 34 answer alike).
    pub nextcloud_version: u32,
    /// Nextcloud's `trusted_proxies` (`--trusted-proxy`): only requests from
    /// these have their `X-Forwarded-For` taken as the client address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Concurrency limit and work time of the API (`--workers`, `--delay-ms`).
    pub workers: Workers,
    /// How far the `Date` header is off (`--clock-offset-s`, `POST /clock`).
    pub clock: ClockOffset,
}

impl App {
    /// The current accounts.
    pub fn directory(&self) -> Arc<Directory> {
        match self.users.read() {
            Ok(d) => Arc::clone(&d),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Re-reads the users file; keeps the old accounts on error.
    pub fn reload(&self) -> Result<(), UsersError> {
        let fresh = Arc::new(Directory::load(&self.users_path)?);
        match self.users.write() {
            Ok(mut d) => *d = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }
}
