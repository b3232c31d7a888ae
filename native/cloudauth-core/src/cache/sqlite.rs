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

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS authcache (
    jid        TEXT PRIMARY KEY,
    pwhash     TEXT,
    firstauth  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    remoteauth TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    anyauth    TIMESTAMP DEFAULT CURRENT_TIMESTAMP)";

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

/// Opens a database file for shared use by several processes: WAL mode,
/// a busy timeout, synchronous=NORMAL (durable against process crashes).
pub fn open_shared(path: &Path) -> Result<Connection, StoreError> {
    let conn =
        Connection::open(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
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
        conn.execute_batch(SCHEMA).map_err(db_err)?;
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
