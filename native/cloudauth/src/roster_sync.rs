//! Shared roster sync in port mode: the core's plan carried out with
//! `ejabberdctl` (as xcauth does it, but with an argument vector and never a
//! shell), with the state in xcauth's `rosterinfo`/`rostergroups` tables.
//!
//! Runs after the reply to a login, in a task of its own; syncs of one
//! process run one at a time. Every failing command is logged with its exit
//! status and output; a sync with failures keeps the previous answer digest,
//! so the next login tries again.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cloudauth_core::roster::state_db::{RosterDb, SyncOutcome};
use cloudauth_core::roster::{
    answer_hash, desired, plan, Action, Desired, GroupPolicy, Jid, MARKER,
};
use cloudauth_core::{Authenticator, Clock, SystemClock};
use thiserror::Error;
use tokio::process::Command;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

/// Longest an `ejabberdctl` call may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a sync did not run.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The cloud did not give the roster.
    #[error("cloud: {0}")]
    Cloud(#[from] cloudauth_core::BackendError),
    /// The state database failed.
    #[error("{0}")]
    Db(#[from] cloudauth_core::cache::StoreError),
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The answer was the one of the last sync: nothing done.
    pub unchanged: bool,
    /// Changes planned.
    pub actions: usize,
    /// Changes whose command failed.
    pub failed: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Everything needed to sync rosters through `ejabberdctl`.
pub struct RosterSync {
    ejabberdctl: PathBuf,
    db: RosterDb,
    policy: GroupPolicy,
    one_at_a_time: Mutex<()>,
}

/// The command line of one action, without the program.
pub fn command_args(action: &Action, domain: &str) -> Vec<String> {
    let s = |v: &str| v.to_string();
    match action {
        Action::CreateGroup { id, label } => vec![
            s("srg_create"),
            s(id),
            s(domain),
            s(label),
            s(MARKER),
            s(id),
        ],
        Action::AddMember { group, member } => vec![
            s("srg_user_add"),
            s(&member.user),
            s(&member.domain),
            s(group),
            s(domain),
        ],
        Action::RemoveMember { group, member } => vec![
            s("srg_user_del"),
            s(&member.user),
            s(&member.domain),
            s(group),
            s(domain),
        ],
        Action::SetName { jid, name } => vec![
            s("set_vcard"),
            s(&jid.user),
            s(&jid.domain),
            s("FN"),
            s(name),
        ],
    }
}

impl RosterSync {
    /// A syncer running `ejabberdctl`, keeping state in the database at `db`.
    pub fn new(ejabberdctl: &Path, db: &Path, policy: GroupPolicy) -> Result<Self, SyncError> {
        Ok(RosterSync {
            ejabberdctl: ejabberdctl.to_path_buf(),
            db: RosterDb::open(db)?,
            policy,
            one_at_a_time: Mutex::new(()),
        })
    }

    /// Runs one command; `true` when it succeeded.
    async fn run(&self, args: &[String]) -> bool {
        let shown = args.join(" ");
        let child = Command::new(&self.ejabberdctl)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
            Ok(Ok(out)) if out.status.success() => true,
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                let text = cloudauth_core::backend::printable_snippet(text.trim().as_bytes(), 300);
                warn!("ejabberdctl {shown} failed ({}): {text}", out.status);
                false
            }
            Ok(Err(e)) => {
                warn!(
                    "ejabberdctl {shown}: cannot run {}: {e}",
                    self.ejabberdctl.display()
                );
                false
            }
            Err(_) => {
                warn!("ejabberdctl {shown}: no result within {COMMAND_TIMEOUT:?}");
                false
            }
        }
    }

    /// Closes every session of `user@domain` (`ejabberdctl kick_user`), for
    /// an account the sweep found gone; `true` when the command succeeded.
    pub async fn kick(&self, user: &str, domain: &str) -> bool {
        self.run(&[
            "kick_user".to_string(),
            user.to_string(),
            domain.to_string(),
        ])
        .await
    }

    /// Takes a departed `login` out of every provisioned group he is in
    /// (the core's plan towards no groups at all), without asking the
    /// cloud, which no longer knows him.
    pub async fn depart(&self, login: &Jid) -> Result<Stats, SyncError> {
        let _turn = self.one_at_a_time.lock().await;
        let started = Instant::now();
        let want = Desired::default();
        let current = self.db.current(login, &want)?;
        let actions = plan(&want, login, &current);
        let mut failed = 0;
        let mut after = current.clone();
        for a in &actions {
            if self.run(&command_args(a, &login.domain)).await {
                after.apply(login, a);
            } else {
                failed += 1;
            }
        }
        let outcome = SyncOutcome::new(login, &current, after, &actions, None);
        self.db.save(login, &outcome, SystemClock.now_unix())?;
        Ok(Stats {
            unchanged: actions.is_empty(),
            actions: actions.len(),
            failed,
            elapsed: started.elapsed(),
        })
    }

    /// Syncs `user@domain`'s shared roster with the cloud.
    pub async fn sync(
        &self,
        auth: &Authenticator,
        user: &str,
        domain: &str,
    ) -> Result<Stats, SyncError> {
        let _turn = self.one_at_a_time.lock().await;
        let started = Instant::now();
        let answer = auth.shared_roster(user, domain).await?;
        let login = Jid::new(user, domain);
        let hash = answer_hash(&answer, &login, &self.policy);
        if self.db.hash(&login)?.as_deref() == Some(hash.as_str()) {
            debug!("shared roster of {login} unchanged");
            return Ok(Stats {
                unchanged: true,
                actions: 0,
                failed: 0,
                elapsed: started.elapsed(),
            });
        }
        let want = desired(&answer, domain, &self.policy);
        for (group, why) in &want.skipped {
            debug!("shared roster of {login}: group {group:?} left out ({why})");
        }
        let current = self.db.current(&login, &want)?;
        let actions = plan(&want, &login, &current);
        let mut failed = 0;
        let mut after = current.clone();
        for a in &actions {
            if self.run(&command_args(a, domain)).await {
                after.apply(&login, a);
            } else {
                failed += 1;
            }
        }
        let hash = (failed == 0).then_some(hash);
        let outcome = SyncOutcome::new(&login, &current, after, &actions, hash);
        self.db.save(&login, &outcome, SystemClock.now_unix())?;
        let stats = Stats {
            unchanged: false,
            actions: actions.len(),
            failed,
            elapsed: started.elapsed(),
        };
        info!(
            "shared roster of {login} synced: {} changes, {} failed, in {} ms",
            stats.actions,
            stats.failed,
            stats.elapsed.as_millis()
        );
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_ejabberdctls() {
        let d = "example.org";
        let bob = Jid::new("bob", "example.org");
        assert_eq!(
            command_args(
                &Action::CreateGroup {
                    id: "team-alpha-1234abcd".into(),
                    label: "Team Alpha".into()
                },
                d
            ),
            [
                "srg_create",
                "team-alpha-1234abcd",
                d,
                "Team Alpha",
                MARKER,
                "team-alpha-1234abcd"
            ]
        );
        assert_eq!(
            command_args(
                &Action::AddMember {
                    group: "team".into(),
                    member: bob.clone()
                },
                d
            ),
            ["srg_user_add", "bob", d, "team", d]
        );
        assert_eq!(
            command_args(
                &Action::RemoveMember {
                    group: "team".into(),
                    member: bob.clone()
                },
                d
            ),
            ["srg_user_del", "bob", d, "team", d]
        );
        assert_eq!(
            command_args(
                &Action::SetName {
                    jid: bob,
                    name: "Bob \"B\"; rm -rf /".into()
                },
                d
            ),
            ["set_vcard", "bob", d, "FN", "Bob \"B\"; rm -rf /"],
            "one argument, never a shell"
        );
    }
}
