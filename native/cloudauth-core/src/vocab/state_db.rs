//! The state database: one SQLite file several processes share (xcauth's
//! layout, used in place), its schema, how it is opened, and the error of
//! every store kept in it or beside it (password cache, one-time tokens,
//! roster digests).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use thiserror::Error;

/// A storage failure: the store's state could not be read or written (the
/// password cache then simply does not help).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cache storage: {0}")]
pub struct StoreError(pub String);

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
