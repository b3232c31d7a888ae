//! The account sweep's timer in the `cloudauth` program, and what follows a
//! departure here: with `--ejabberdctl`, the departed user's sessions are
//! closed (`kick_user`) and he leaves the provisioned shared roster groups;
//! the known users still there get their groups re-read, so that someone
//! who left a group in the cloud leaves it here without a login. Prosody
//! learns of departures by polling (`departed:` in the generic protocol).
//! What counts as departed is the core's ([`Authenticator::sweep`]).

use std::sync::Arc;
use std::time::Duration;

use cloudauth_core::roster::Jid;
use cloudauth_core::{Authenticator, BackendError};
use tracing::{info, warn};

use crate::roster_sync::{RosterSync, SyncError};

/// Sweeps every `every`, the first time one interval after the start.
pub async fn run(auth: Arc<Authenticator>, every: Duration, roster: Option<Arc<RosterSync>>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let report = auth.sweep().await;
        let Some(roster) = &roster else { continue };
        for jid in &report.departed {
            let Some(login) = Jid::parse(jid) else {
                continue;
            };
            if roster.kick(&login.user, &login.domain).await {
                info!("{jid}: account gone from the backend; sessions closed");
            }
            if let Err(e) = roster.depart(&login).await {
                warn!("{jid}: not taken out of the shared roster groups: {e}");
            }
        }
        for jid in &report.present {
            let Some(login) = Jid::parse(jid) else {
                continue;
            };
            match roster.sync(&auth, &login.user, &login.domain).await {
                Ok(_) => {}
                // A backend without shared rosters: nothing to re-read for anyone.
                Err(SyncError::Cloud(BackendError::Unsupported(_))) => break,
                Err(e) => warn!("shared roster of {jid} not re-read by the sweep: {e}"),
            }
        }
    }
}
