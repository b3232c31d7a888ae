//! Users the backend said exist, kept next to the password cache, so that
//! `isuser` (asked by ejabberd and Prosody for every message and
//! subscription to an offline user) is answered without the backend and
//! still "yes" while the backend cannot be asked.
//!
//! An entry is written when the backend confirms a user (a password it
//! accepted, an `isuser` yes, a shared-roster listing) and holds for the
//! known-user TTL since that confirmation; past the refresh interval the
//! next `isuser` still answers "yes" at once and asks the backend in the
//! background, whose "no" drops the user. A "no" for an unknown name is
//! remembered for [`ABSENT_WINDOW`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tracing::warn;

use crate::cache::sqlite::open_shared;
use crate::cache::StoreError;

/// How long a backend's "no such user" is answered from memory: a flood of
/// messages to a name that does not exist costs one request, and a user
/// created in Nextcloud a moment later waits at most this long.
pub const ABSENT_WINDOW: Duration = Duration::from_secs(60);

/// Most "no such user" answers remembered at once; beyond it new ones are not.
pub const MAX_ABSENT: usize = 10_000;

/// Background checks (refreshes and revalidations) in flight at once; past
/// it a due check waits for a later question (its answer is given anyway).
pub const MAX_BACKGROUND: usize = 16;

/// Where known users are kept: `jid` → Unix time the backend last confirmed it.
pub trait KnownStore: Send + Sync {
    /// When the backend last confirmed `jid`, if it is kept.
    fn confirmed(&self, jid: &str) -> Result<Option<u64>, StoreError>;
    /// Records a confirmation at `now`.
    fn confirm(&self, jid: &str, now: u64) -> Result<(), StoreError>;
    /// Drops `jid`.
    fn remove(&self, jid: &str) -> Result<(), StoreError>;
    /// Every JID kept, with when the backend last confirmed it (for the account sweep).
    fn all(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Takes the turn to sweep at Unix `now` until `until`, unless another
    /// process sharing the store holds it: an extauth pool's processes share
    /// `--db`, and one sweep is enough for all of them. A store of one
    /// process's own always gives it.
    fn claim_sweep(&self, _now: u64, _until: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// A store shared with its owner (who may also lend entries to it).
impl<T: KnownStore> KnownStore for Arc<T> {
    fn confirmed(&self, jid: &str) -> Result<Option<u64>, StoreError> {
        (**self).confirmed(jid)
    }
    fn confirm(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        (**self).confirm(jid, now)
    }
    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        (**self).remove(jid)
    }
    fn all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        (**self).all()
    }
    fn claim_sweep(&self, now: u64, until: u64) -> Result<bool, StoreError> {
        (**self).claim_sweep(now, until)
    }
}

/// Known users in process memory.
#[derive(Default)]
pub struct MemoryKnown(Mutex<HashMap<String, u64>>);

impl KnownStore for MemoryKnown {
    fn confirmed(&self, jid: &str) -> Result<Option<u64>, StoreError> {
        let m = self.0.lock().map_err(|_| StoreError("poisoned".into()))?;
        Ok(m.get(jid).copied())
    }
    fn confirm(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        let mut m = self.0.lock().map_err(|_| StoreError("poisoned".into()))?;
        m.insert(jid.to_string(), now);
        Ok(())
    }
    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        let mut m = self.0.lock().map_err(|_| StoreError("poisoned".into()))?;
        m.remove(jid);
        Ok(())
    }
    fn all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let m = self.0.lock().map_err(|_| StoreError("poisoned".into()))?;
        Ok(m.iter().map(|(j, t)| (j.clone(), *t)).collect())
    }
}

/// Receives each change to write in a store the core cannot reach (a
/// cluster's Mnesia): the JID and its confirmation time, `None` to delete it.
pub type KnownSink = Box<dyn Fn(&str, Option<u64>) + Send + Sync>;

/// Known users kept by the caller (ejabberd's Mnesia, from inside a NIF),
/// as the password cache's [`crate::cache::LentStore`] keeps its rows: the
/// caller lends the user's entry before an `isuser`, and every confirmation
/// and removal goes to a [`KnownSink`]. The rules (TTL, refresh, what a
/// "no" drops) stay [`KnownUsers`]'; a remembered "no" stays in this
/// process (it is [`KnownUsers`]' own memory, not the store's).
pub struct LentKnown {
    rows: MemoryKnown,
    sink: KnownSink,
}

impl LentKnown {
    /// A store whose changes go to `sink`.
    pub fn new(sink: KnownSink) -> Self {
        LentKnown {
            rows: MemoryKnown::default(),
            sink,
        }
    }

    /// What the shared store holds for `jid` now (`None`: not known there).
    pub fn lend(&self, jid: &str, confirmed: Option<u64>) {
        // Only a poisoned lock fails here; the lookup that follows reports it.
        let _ = match confirmed {
            Some(at) => self.rows.confirm(jid, at),
            None => self.rows.remove(jid),
        };
    }
}

impl KnownStore for LentKnown {
    fn confirmed(&self, jid: &str) -> Result<Option<u64>, StoreError> {
        self.rows.confirmed(jid)
    }
    fn confirm(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        self.rows.confirm(jid, now)?;
        (self.sink)(jid, Some(now));
        Ok(())
    }
    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        self.rows.remove(jid)?;
        (self.sink)(jid, None);
        Ok(())
    }
    /// The rows lent so far: the account sweep's caller lends every row
    /// of the shared store first.
    fn all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.rows.all()
    }
}

/// The `known_users` table of the state database (`--db`). Created when
/// missing, so older databases (and xcauth's) keep working; xcauth ignores it.
const KNOWN_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS known_users (
    jid       TEXT PRIMARY KEY,
    confirmed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS known_users_sweep (
    id    INTEGER PRIMARY KEY CHECK (id = 0),
    until INTEGER NOT NULL);
INSERT OR IGNORE INTO known_users_sweep (id, until) VALUES (0, 0);";

/// Known users in the state database, shared by an extauth pool's processes.
pub struct SqliteKnown {
    conn: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteKnown {
    /// Opens (and where needed creates) the table in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_shared(path)?;
        conn.execute_batch(KNOWN_SCHEMA).map_err(db_err)?;
        Ok(SqliteKnown {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        f(&conn).map_err(db_err)
    }
}

impl KnownStore for SqliteKnown {
    fn confirmed(&self, jid: &str) -> Result<Option<u64>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT confirmed FROM known_users WHERE jid = ?1",
                params![jid],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .map(|t| t.map(|t| u64::try_from(t).unwrap_or(0)))
    }
    fn confirm(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        self.with(|c| {
            c.execute(
                "INSERT INTO known_users (jid, confirmed) VALUES (?1, ?2)
                 ON CONFLICT(jid) DO UPDATE SET confirmed = excluded.confirmed",
                params![jid, now],
            )
        })
        .map(|_| ())
    }
    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        self.with(|c| c.execute("DELETE FROM known_users WHERE jid = ?1", params![jid]))
            .map(|_| ())
    }
    fn claim_sweep(&self, now: u64, until: u64) -> Result<bool, StoreError> {
        let (now, until) = (
            i64::try_from(now).unwrap_or(i64::MAX),
            i64::try_from(until).unwrap_or(i64::MAX),
        );
        self.with(|c| {
            c.execute(
                "UPDATE known_users_sweep SET until = ?2 WHERE id = 0 AND until <= ?1",
                params![now, until],
            )
        })
        .map(|n| n == 1)
    }
    fn all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT jid, confirmed FROM known_users")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| r.map(|(j, t)| (j, u64::try_from(t).unwrap_or(0))))
                .collect()
        })
    }
}

/// The known-user TTL and refresh interval (`--known-user-ttl`, `--known-user-refresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownTtls {
    /// Longest time since the backend last confirmed a user for him to be known.
    pub ttl: Duration,
    /// Age of a confirmation past which `isuser` asks again in the background.
    pub refresh: Duration,
}

/// What the known users say of a JID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Confirmed within the TTL; `due` when past the refresh interval.
    Known {
        /// A background refresh is due.
        due: bool,
    },
    /// The backend said "no such user" within [`ABSENT_WINDOW`].
    Absent,
    /// Nothing known: ask the backend.
    Unknown,
}

/// Known users and recent "no such user" answers.
pub struct KnownUsers {
    store: Box<dyn KnownStore>,
    ttls: KnownTtls,
    /// JID → monotonic second until which "no such user" is answered from memory.
    absent: Mutex<HashMap<String, u64>>,
    background: Arc<Background>,
}

impl KnownUsers {
    /// Known users over `store`.
    pub fn new(store: Box<dyn KnownStore>, ttls: KnownTtls) -> Self {
        KnownUsers {
            store,
            ttls,
            absent: Mutex::default(),
            background: Arc::new(Background::default()),
        }
    }

    /// The TTLs in force.
    pub fn ttls(&self) -> KnownTtls {
        self.ttls
    }

    /// What is known of `jid` at Unix `now` (monotonic `mono` for the absent window).
    pub fn standing(&self, jid: &str, now: u64, mono: u64) -> Standing {
        match self.store.confirmed(jid) {
            Ok(Some(at)) if at.saturating_add(self.ttls.ttl.as_secs()) > now => {
                return Standing::Known {
                    due: at.saturating_add(self.ttls.refresh.as_secs()) <= now,
                }
            }
            Ok(_) => {}
            Err(e) => warn!("known users: reading {jid} failed: {e}"),
        }
        let absent = self
            .absent
            .lock()
            .ok()
            .is_some_and(|m| m.get(jid).is_some_and(|until| *until > mono));
        if absent {
            Standing::Absent
        } else {
            Standing::Unknown
        }
    }

    /// The users known at Unix `now` (confirmed within the TTL), for the account sweep.
    pub fn listed(&self, now: u64) -> Result<Vec<String>, StoreError> {
        let ttl = self.ttls.ttl.as_secs();
        let mut all: Vec<String> = self
            .store
            .all()?
            .into_iter()
            .filter(|(_, at)| at.saturating_add(ttl) > now)
            .map(|(jid, _)| jid)
            .collect();
        all.sort();
        Ok(all)
    }

    /// Whether this process sweeps now (until Unix `until`); see [`KnownStore::claim_sweep`].
    pub fn claim_sweep(&self, now: u64, until: u64) -> bool {
        self.store.claim_sweep(now, until).unwrap_or_else(|e| {
            warn!("known users: the sweep's turn cannot be taken: {e}");
            false
        })
    }

    /// The backend confirmed `jid` at Unix `now`.
    pub fn confirm(&self, jid: &str, now: u64) {
        if let Ok(mut m) = self.absent.lock() {
            m.remove(jid);
        }
        if let Err(e) = self.store.confirm(jid, now) {
            warn!("known users: recording {jid} failed: {e}");
        }
    }

    /// The backend said `jid` does not exist (at monotonic `mono`): dropped,
    /// and "no" is answered from memory for [`ABSENT_WINDOW`].
    pub fn absent(&self, jid: &str, mono: u64) {
        self.forget(jid);
        let Ok(mut m) = self.absent.lock() else {
            return;
        };
        if m.len() >= MAX_ABSENT {
            m.retain(|_, until| *until > mono);
        }
        if m.len() < MAX_ABSENT {
            m.insert(
                jid.to_string(),
                mono.saturating_add(ABSENT_WINDOW.as_secs()),
            );
        }
    }

    /// Drops everything known of `jid` (also a remembered "no").
    pub fn forget(&self, jid: &str) {
        if let Ok(mut m) = self.absent.lock() {
            m.remove(jid);
        }
        if let Err(e) = self.store.remove(jid) {
            warn!("known users: removing {jid} failed: {e}");
        }
    }

    /// The limiter of background checks, shared with the password cache's revalidation.
    pub(crate) fn background(&self) -> Arc<Background> {
        Arc::clone(&self.background)
    }
}

/// Background checks in flight: at most one per key (coalesced), at most
/// [`MAX_BACKGROUND`] at once (bounded).
#[derive(Default)]
pub(crate) struct Background {
    running: Mutex<HashSet<String>>,
}

/// A background check's place; dropping it ends the check.
pub(crate) struct Running {
    background: Arc<Background>,
    key: String,
}

impl Background {
    /// A place for the check `key`, or `None` when it runs already or too many do.
    pub(crate) fn start(self: &Arc<Self>, key: String) -> Option<Running> {
        let mut running = self.running.lock().ok()?;
        if running.len() >= MAX_BACKGROUND || !running.insert(key.clone()) {
            return None;
        }
        Some(Running {
            background: Arc::clone(self),
            key,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.background.running.lock() {
            running.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(store: Box<dyn KnownStore>) -> KnownUsers {
        KnownUsers::new(
            store,
            KnownTtls {
                ttl: Duration::from_secs(1000),
                refresh: Duration::from_secs(100),
            },
        )
    }

    fn rules(k: &KnownUsers) {
        assert_eq!(k.standing("a@x", 10, 10), Standing::Unknown);
        k.confirm("a@x", 10);
        assert_eq!(k.standing("a@x", 50, 50), Standing::Known { due: false });
        assert_eq!(k.standing("a@x", 110, 110), Standing::Known { due: true });
        assert_eq!(
            k.standing("a@x", 1010, 1010),
            Standing::Unknown,
            "past the TTL"
        );
        k.absent("a@x", 2000);
        assert_eq!(k.standing("a@x", 2001, 2001), Standing::Absent);
        assert_eq!(
            k.standing("a@x", 2061, 2061),
            Standing::Unknown,
            "window over"
        );
        k.absent("b@x", 3000);
        k.confirm("b@x", 3001);
        assert_eq!(
            k.standing("b@x", 3002, 3002),
            Standing::Known { due: false }
        );
        assert_eq!(k.listed(3002).unwrap(), ["b@x"], "a@x is past the TTL");
        k.forget("b@x");
        assert_eq!(k.standing("b@x", 3002, 3002), Standing::Unknown);
        assert!(k.listed(3002).unwrap().is_empty());
    }

    #[test]
    fn memory_and_database_follow_the_same_rules() {
        rules(&known(Box::new(MemoryKnown::default())));
        let dir = std::env::temp_dir().join(format!("cloudauth-known-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.db");
        rules(&known(Box::new(SqliteKnown::open(&db).unwrap())));
        // Kept across processes, and the password cache opens the same file.
        let k = known(Box::new(SqliteKnown::open(&db).unwrap()));
        k.confirm("c@x", 5);
        let again = known(Box::new(SqliteKnown::open(&db).unwrap()));
        assert_eq!(again.standing("c@x", 6, 6), Standing::Known { due: false });
        // One sweep per interval among the processes sharing the database.
        assert!(k.claim_sweep(100, 200));
        assert!(!again.claim_sweep(150, 250), "taken until 200");
        assert!(again.claim_sweep(200, 300));
        assert!(known(Box::new(MemoryKnown::default())).claim_sweep(0, 1));
        assert!(crate::cache::sqlite::SqliteStore::open(&db).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lent_entries_follow_the_same_rules_and_every_change_reaches_the_sink() {
        type Changes = Arc<Mutex<Vec<(String, Option<u64>)>>>;
        let changes: Changes = Arc::default();
        let c = Arc::clone(&changes);
        let sink: KnownSink = Box::new(move |jid, at| c.lock().unwrap().push((jid.into(), at)));
        let lent = Arc::new(LentKnown::new(sink));
        rules(&known(Box::new(Arc::clone(&lent))));
        let written = changes.lock().unwrap().clone();
        assert!(
            written.contains(&("a@x".into(), Some(10))),
            "a confirmation is written"
        );
        assert!(
            written.contains(&("a@x".into(), None)),
            "a \"no\" deletes it"
        );
        assert!(written.contains(&("b@x".into(), None)), "forget deletes it");

        // Node B: nothing of its own, then the entry node A wrote is lent.
        let node_b = Arc::new(LentKnown::new(Box::new(|_, _| {})));
        let b = known(Box::new(Arc::clone(&node_b)));
        assert_eq!(b.standing("c@x", 20, 20), Standing::Unknown);
        node_b.lend("c@x", Some(10));
        assert_eq!(b.standing("c@x", 20, 20), Standing::Known { due: false });
        assert_eq!(b.standing("c@x", 111, 111), Standing::Known { due: true });
        node_b.lend("c@x", None);
        assert_eq!(
            b.standing("c@x", 20, 20),
            Standing::Unknown,
            "gone from the shared store"
        );
        // A "no" node B heard is its own: nothing written for it but the deletion.
        b.absent("d@x", 30);
        assert_eq!(b.standing("d@x", 31, 31), Standing::Absent);
        node_b.lend("d@x", None);
        assert_eq!(b.standing("d@x", 31, 31), Standing::Absent, "kept per node");
    }

    #[test]
    fn background_checks_are_coalesced_and_bounded() {
        let b = Arc::new(Background::default());
        let first = b.start("a".into());
        assert!(first.is_some());
        assert!(b.start("a".into()).is_none(), "one per key");
        drop(first);
        assert!(b.start("a".into()).is_some(), "free again once done");
        let held: Vec<_> = (0..MAX_BACKGROUND)
            .filter_map(|i| b.start(i.to_string()))
            .collect();
        assert!(b.start("more".into()).is_none());
        drop(held);
    }
}
