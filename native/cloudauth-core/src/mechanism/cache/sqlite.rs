//! The `authcache` table of xcauth's SQLite state database, used in place.
//!
//! Schema (created when missing, extra columns tolerated):
//! `authcache(jid TEXT PRIMARY KEY, pwhash TEXT, firstauth TIMESTAMP,
//! remoteauth TIMESTAMP, anyauth TIMESTAMP)`, timestamps as UTC text.
//! The database runs in WAL mode; each write is one committed transaction.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::store::{CacheEntry, CacheStore, StoreError};
use crate::timestamp;

// The state database itself (its schema, how it is opened) is the
// vocabulary's: the cache is one of its tables' users.
pub use crate::vocab::state_db::{open_shared, DB_MODE};

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
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
