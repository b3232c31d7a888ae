//! `auth_cloud_cache_storage: mnesia`: the password cache, the known users
//! and the TOTP replay guard of a cluster, in Mnesia tables a NIF cannot
//! reach.
//!
//! The rules stay the core's; Erlang only reads and writes rows:
//! * before a password check, Erlang reads the user's cache row and lends
//!   it (`cache_lend`); every row the cache's rules then write (a verified
//!   password, a hit's time) is sent as `{cloudauth_cache, Jid, Row}` to the
//!   writer process Erlang named (`ejabberd_auth_cloud_cluster`), which
//!   writes it in a transaction; a dropped row as `{cloudauth_cache, Jid,
//!   none}`, which deletes it;
//! * before an `isuser`, Erlang reads the user's known-user entry and lends
//!   it (`known_lend`); a confirmation goes to the writer as
//!   `{cloudauth_known, Jid, Confirmed}`, a user dropped as
//!   `{cloudauth_known, Jid, none}`;
//! * a one-time token new on this node comes back from `check_token` as a
//!   claim with the decision for each outcome; Erlang inserts the claim if
//!   none is in force, in a transaction, and answers the matching decision.

use std::sync::{Arc, Mutex};

use cloudauth_core::cache::{CacheEntry, LentStore, RowSink};
use cloudauth_core::known_users::{KnownSink, LentKnown};
use rustler::{Atom, Encoder, LocalPid, OwnedEnv};

use crate::runtime::runtime;

mod atoms {
    rustler::atoms! { cloudauth_cache, cloudauth_known, none }
}

/// A cache row as Erlang holds it: `{PwHash, FirstAuth, RemoteAuth, AnyAuth}`.
pub type RowTerm = (String, u64, u64, u64);

/// Where rows to write go: the writer process, once Erlang has named it.
static WRITER: Mutex<Option<LocalPid>> = Mutex::new(None);

/// Makes `pid` the writer (a new one replaces the old).
pub fn set_writer(pid: LocalPid) {
    if let Ok(mut w) = WRITER.lock() {
        *w = Some(pid);
    }
}

/// The row as Erlang keeps it.
pub fn row_term(e: &CacheEntry) -> RowTerm {
    (e.pwhash.clone(), e.firstauth, e.remoteauth, e.anyauth)
}

/// The row Erlang read; `None` for no row (or one not shaped like ours).
pub fn entry(row: Option<RowTerm>) -> Option<CacheEntry> {
    row.map(|(pwhash, firstauth, remoteauth, anyauth)| CacheEntry {
        pwhash,
        firstauth,
        remoteauth,
        anyauth,
    })
}

/// A store whose rows Erlang lends and writes.
pub fn lent_store() -> Arc<LentStore> {
    let sink: RowSink = Box::new(|jid, row| match row {
        Some(row) => send(atoms::cloudauth_cache(), jid.to_string(), row_term(row)),
        None => send(atoms::cloudauth_cache(), jid.to_string(), atoms::none()),
    });
    Arc::new(LentStore::new(sink))
}

/// Known users whose entries Erlang lends and writes.
pub fn lent_known() -> Arc<LentKnown> {
    let sink: KnownSink = Box::new(|jid, at| match at {
        Some(at) => send(atoms::cloudauth_known(), jid.to_string(), at),
        None => send(atoms::cloudauth_known(), jid.to_string(), atoms::none()),
    });
    Arc::new(LentKnown::new(sink))
}

/// Sends `{Tag, Jid, What}` to the writer from the NIF's runtime (the
/// stores may write on any thread; `send_and_clear` must not run on a
/// scheduler). Without a writer (or runtime) the change is lost: the
/// cluster then simply does not learn it (a dropped row or user stays
/// dropped on this node until the next lend).
fn send<T: Encoder + Send + 'static>(tag: Atom, jid: String, what: T) {
    let Some(pid) = WRITER.lock().ok().and_then(|w| *w) else {
        tracing::warn!("cluster state of {jid} not stored: no Mnesia writer process");
        return;
    };
    let Ok(rt) = runtime() else { return };
    rt.spawn(async move {
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&pid, |e| (tag, jid, what).encode(e));
    });
}
