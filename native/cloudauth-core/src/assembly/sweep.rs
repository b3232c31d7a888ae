//! The account sweep (`account-sweep`): every known user re-checked with
//! the backend in the background, because Nextcloud cannot tell cloudauth
//! that an account was deleted or disabled (its webhooks refuse user
//! events), and such a user would otherwise keep his sessions, his cached
//! password and his place in the shared roster until the known-user TTL.
//!
//! One sweep asks the backend's `isuser` (Nextcloud: as the service
//! account, which sees "exists and enabled"; JSXC and JSON: their isuser)
//! for each known user, a few at a time ([`Authenticator::with_sweep_batch`]:
//! half of `cloud-concurrency`, so that logins keep the other half). A
//! definite "no" drops the user's cached password, known-user entry and
//! remembered refusals and records him in the [`DepartureLog`]; "cannot
//! tell" changes nothing. Closing his sessions and taking him out of the
//! shared roster is the server adapter's part, from the report.
//!
//! [`DepartureLog`]: crate::departures::DepartureLog

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tracing::{info, warn};

use super::decision::{learn_existence, Authenticator, OwnCause, Trouble};
use crate::backend::{Account, BackendError};
use crate::jid;

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Known users asked about.
    pub checked: usize,
    /// Users the backend says no longer exist or are disabled (JIDs):
    /// dropped here; their sessions are to be closed.
    pub departed: Vec<String>,
    /// Users the backend confirmed (JIDs), for a shared roster re-read.
    pub present: Vec<String>,
    /// Users the backend could not tell about: kept as they were.
    pub undecided: usize,
    /// Time the sweep took.
    pub elapsed: Duration,
    /// Not run: another process sharing the known users has the turn.
    pub skipped: bool,
}

impl Authenticator {
    /// One account sweep over the known users (nothing without them).
    pub async fn sweep(&self) -> SweepReport {
        let started = Instant::now();
        let mut report = SweepReport::default();
        let Some(known) = &self.known else {
            return report;
        };
        let now = self.clock.now_unix();
        // Another process of an extauth pool sharing `--db` sweeps this time.
        let turn = self
            .sweep_every()
            .unwrap_or_default()
            .as_secs()
            .saturating_sub(1);
        if !known.claim_sweep(now, now.saturating_add(turn)) {
            report.skipped = true;
            return report;
        }
        let users = match known.listed(now) {
            Ok(users) => users,
            Err(e) => {
                warn!("account sweep: the known users cannot be read: {e}");
                return report;
            }
        };
        let mut answers = stream::iter(users)
            .map(|jid| async move {
                let answer = self.recheck(&jid).await;
                (jid, answer)
            })
            .buffer_unordered(self.sweep_batch);
        while let Some((jid, answer)) = answers.next().await {
            report.checked += 1;
            match answer {
                Ok(true) => {
                    known.confirm(&jid, self.clock.now_unix());
                    report.present.push(jid);
                }
                Ok(false) => {
                    self.depart(&jid);
                    report.departed.push(jid);
                }
                Err(e) => {
                    tracing::debug!("account sweep: {jid} kept, the backend could not tell ({e})");
                    report.undecided += 1;
                }
            }
        }
        report.elapsed = started.elapsed();
        if report.checked > 0 {
            info!(
                "account sweep: {} known users checked in {} ms, {} departed, {} undecided",
                report.checked,
                report.elapsed.as_millis(),
                report.departed.len(),
                report.undecided
            );
        }
        report
    }

    /// The backend's `isuser` for a known user's JID, past the known users.
    async fn recheck(&self, jid: &str) -> Result<bool, Trouble> {
        let local = |why| Trouble::Own(OwnCause::LocalState(why));
        let (user, domain) = jid
            .rsplit_once('@')
            .ok_or_else(|| local("known user without a domain"))?;
        let (user, domain) = jid::canonical(user, domain).map_err(local)?;
        let settings = self
            .settings
            .resolve(&domain)
            .ok_or(BackendError::Unsupported("domain not served"))?;
        // The server's own question: no client address.
        let who = Account::new(&user, settings.auth_domain(&domain));
        Ok(settings.backend.is_user(who).await?)
    }

    /// Drops what is held for a departed `jid` and logs the departure.
    fn depart(&self, jid: &str) {
        learn_existence(
            self.known.as_deref(),
            self.cache.as_deref(),
            self.clock.as_ref(),
            jid,
            false,
        );
        if let Some((user, domain)) = jid.rsplit_once('@') {
            self.forget_refusals(user, domain);
        }
        self.departures.record(jid);
    }
}
