//! The `authcache` table of xcauth's SQLite state database, used in place.
//!
//! Schema (created when missing, extra columns tolerated):
//! `authcache(jid TEXT PRIMARY KEY, pwhash TEXT, firstauth TIMESTAMP,
//! remoteauth TIMESTAMP, anyauth TIMESTAMP)`, timestamps as UTC text.
//! The database runs in WAL mode; each write is one committed transaction.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::store::{CacheEntry, CacheStore, StoreError};
use crate::timestamp;

/// xcauth's whole schema, created (where missing) by whoever opens the state
/// database first: a database cloudauth made stays one xcauth can use, so
/// admins can fall back to xcauth (which stops at the first missing table).
const XCAUTH_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS domains (
    xmppdomain TEXT PRIMARY KEY,
    authsecret TEXT,
    authurl    TEXT,
    authdomain TEXT,
    regcontact TEXT,
    regfirst   TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    reglatest  TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS authcache (
    jid        TEXT PRIMARY KEY,
    pwhash     TEXT,
    firstauth  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    remoteauth TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    anyauth    TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS rosterinfo (
    jid          TEXT PRIMARY KEY,
    fullname     TEXT,
    grouplist    TEXT,
    responsehash TEXT,
    last_update  TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS rostergroups (
    groupname TEXT PRIMARY KEY,
    userlist  TEXT);";

/// Mode of a state database cloudauth creates: it holds password hashes.
pub const DB_MODE: u32 = 0o640;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

/// How long opening waits for other processes opening the same database.
const OPEN_PATIENCE: Duration = Duration::from_secs(5);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs `step` until it succeeds, fails otherwise than "busy", or
/// [`OPEN_PATIENCE`] has passed. SQLite answers some steps of setting up a
/// database (switching a new file to WAL) "busy" at once, without waiting
/// for the busy timeout, when another process does the same.
fn patiently<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + OPEN_PATIENCE;
    let mut pause = Duration::from_millis(2);
    loop {
        match step() {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Opens a database file for shared use by several processes: WAL mode,
/// a busy timeout, synchronous=NORMAL (durable against process crashes).
/// Several processes may open (and create) the same file at once.
pub fn open_shared(path: &Path) -> Result<Connection, StoreError> {
    // Created here with its mode (SQLite would make it 0644 under the usual
    // umask); another process creating it at the same time is fine.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(DB_MODE)
            .open(path);
        if let Err(e) = created {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(StoreError(format!("{}: {e}", path.display())));
            }
        }
    }
    let conn =
        Connection::open(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(OPEN_PATIENCE).map_err(db_err)?;
    let mode: String =
        patiently(|| conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)))
            .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError(format!(
            "{}: cannot switch to WAL mode (journal mode is {mode})",
            path.display()
        )));
    }
    patiently(|| conn.pragma_update(None, "synchronous", "NORMAL")).map_err(db_err)?;
    patiently(|| conn.execute_batch(XCAUTH_SCHEMA)).map_err(db_err)?;
    Ok(conn)
}

/// Cache entries in the `authcache` table.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the table in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_shared(path)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError("sqlite store lock poisoned".into()))
    }
}

fn time_column(v: Option<String>) -> u64 {
    v.as_deref().and_then(timestamp::parse).unwrap_or(0)
}

impl CacheStore for SqliteStore {
    fn get(&self, jid: &str) -> Result<Option<CacheEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT pwhash, firstauth, remoteauth, anyauth FROM authcache WHERE jid = ?1",
            )
            .map_err(db_err)?;
        let row = stmt
            .query_row([jid], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()
            .map_err(db_err)?;
        Ok(row.and_then(|(pwhash, first, remote, any)| {
            Some(CacheEntry {
                pwhash: pwhash?,
                firstauth: time_column(first),
                remoteauth: time_column(remote),
                anyauth: time_column(any),
            })
        }))
    }

    fn record_verified(&self, jid: &str, pwhash: &str, now: u64) -> Result<(), StoreError> {
        let ts = timestamp::format(now);
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT OR IGNORE INTO authcache (jid, firstauth) VALUES (?1, ?2)",
            params![jid, ts],
        )
        .map_err(db_err)?;
        tx.execute(
            "UPDATE authcache SET pwhash = ?1, remoteauth = ?2, anyauth = ?2 WHERE jid = ?3",
            params![pwhash, ts, jid],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn user_entries(&self, user: &str) -> Result<Vec<(String, u64)>, StoreError> {
        // `user@` ≤ jid < `userA` ('A' follows '@'): one range of the
        // primary key, and no LIKE wildcards to escape in the user part.
        let (from, to) = (format!("{user}@"), format!("{user}A"));
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT jid, anyauth FROM authcache WHERE jid >= ?1 AND jid < ?2")
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(db_err)?;
        rows.map(|r| r.map(|(jid, any)| (jid, time_column(any))))
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }

    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM authcache WHERE jid = ?1", [jid])
            .map_err(db_err)?;
        Ok(())
    }

    fn record_query(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("UPDATE authcache SET anyauth = ?1 WHERE jid = ?2")
            .map_err(db_err)?;
        stmt.execute(params![timestamp::format(now), jid])
            .map_err(db_err)?;
        Ok(())
    }
}
