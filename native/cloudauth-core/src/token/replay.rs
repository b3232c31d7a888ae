//! One-time tokens must be refused the second time: a guard remembers the
//! ones seen until they could no longer be valid anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use crate::cache::sqlite::open_shared;
use crate::cache::StoreError;

/// Remembers used one-time tokens.
pub trait ReplayGuard: Send + Sync {
    /// Records `key` as used until `until` (Unix seconds); `Ok(true)` the
    /// first time, `Ok(false)` when it was already used. An error means the
    /// guard could not tell: the token must not be accepted.
    fn first_use(&self, key: &str, until: u64, now: u64) -> Result<bool, StoreError>;

    /// Like [`ReplayGuard::first_use`], for guards whose last word is said
    /// by a store the core cannot reach (ejabberd's cluster-wide Mnesia
    /// table): those answer [`Use::Claim`], to be confirmed there.
    fn check_use(&self, key: &str, until: u64, now: u64) -> Result<Use, StoreError> {
        Ok(match self.first_use(key, until, now)? {
            true => Use::First,
            false => Use::Again,
        })
    }
}

/// What a guard knows of a token's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Not used before (now recorded).
    First,
    /// Used before.
    Again,
    /// Not used before here; first only if the shared store takes the claim.
    Claim(Claim),
}

/// Why a one-time token another node of the cluster admitted is refused.
pub const USED_ELSEWHERE: &str = "one-time token already used (on another node)";

/// A one-time token's use, for a shared store to record if absent: the
/// token counts as used the first time only if no record of the key is
/// there. Records can go after `until`: a token is refused as expired by
/// then, before any guard is asked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// SHA-256 of the replay key (no token material).
    pub key: [u8; 32],
    /// Unix second after which the token is refused anyway (the record can go).
    pub until: u64,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Claim({}, until {})", hex::encode(self.key), self.until)
    }
}

/// The guard of one ejabberd node in a cluster: a token used on this node
/// is refused here at once; a token new here is a [`Claim`] for the
/// cluster's shared table (insert if absent, in a transaction).
#[derive(Debug, Default)]
pub struct ClaimReplayGuard(MemoryReplayGuard);

impl ReplayGuard for ClaimReplayGuard {
    /// Alone (no shared store to confirm), it is the node's memory guard.
    fn first_use(&self, key: &str, until: u64, now: u64) -> Result<bool, StoreError> {
        self.0.first_use(key, until, now)
    }

    fn check_use(&self, key: &str, until: u64, now: u64) -> Result<Use, StoreError> {
        if !self.0.first_use(key, until, now)? {
            return Ok(Use::Again);
        }
        Ok(Use::Claim(Claim {
            key: Sha256::digest(key.as_bytes()).into(),
            until,
        }))
    }
}

/// Keys above this count trigger a sweep of expired ones.
const SWEEP_AT: usize = 4096;

/// The guard of one process (or, in ejabberd, of one node).
#[derive(Debug, Default)]
pub struct MemoryReplayGuard(Mutex<HashMap<String, u64>>);

impl ReplayGuard for MemoryReplayGuard {
    fn first_use(&self, key: &str, until: u64, now: u64) -> Result<bool, StoreError> {
        let mut seen = self
            .0
            .lock()
            .map_err(|_| StoreError("replay guard poisoned".into()))?;
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, u| *u >= now);
        }
        match seen.get(key) {
            Some(u) if *u >= now => Ok(false),
            _ => {
                seen.insert(key.to_string(), until);
                Ok(true)
            }
        }
    }
}

/// The guard shared by every process using one state database (an extauth
/// pool): the `totp_used` table, keyed by a digest of the key (no token
/// material is stored).
pub struct SqliteReplayGuard(Mutex<Connection>);

impl SqliteReplayGuard {
    /// Opens (and creates) the table in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_shared(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS totp_used (key TEXT PRIMARY KEY, until INTEGER NOT NULL)",
        )
        .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        Ok(SqliteReplayGuard(Mutex::new(conn)))
    }
}

impl ReplayGuard for SqliteReplayGuard {
    fn first_use(&self, key: &str, until: u64, now: u64) -> Result<bool, StoreError> {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        let conn = self
            .0
            .lock()
            .map_err(|_| StoreError("replay guard poisoned".into()))?;
        let err = |e: rusqlite::Error| StoreError(format!("totp_used: {e}"));
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let until = i64::try_from(until).unwrap_or(i64::MAX);
        // Expired keys go first (theirs could no longer be valid anyway), so
        // the table stays as small as the tokens of the last minute or two.
        conn.execute("DELETE FROM totp_used WHERE until < ?1", params![now])
            .map_err(err)?;
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO totp_used (key, until) VALUES (?1, ?2)",
                params![digest, until],
            )
            .map_err(err)?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_refused_until_expiry() {
        let g = MemoryReplayGuard::default();
        assert_eq!(g.first_use("k", 100, 10), Ok(true));
        assert_eq!(g.first_use("k", 100, 50), Ok(false));
        assert_eq!(g.first_use("other", 100, 50), Ok(true));
        // After its validity the key is forgotten (the token is refused as expired anyway).
        assert_eq!(g.first_use("k", 200, 101), Ok(true));
    }

    #[test]
    fn the_cluster_guard_claims_new_tokens_and_refuses_ones_used_here() {
        let g = ClaimReplayGuard::default();
        let Ok(Use::Claim(c)) = g.check_use("k", 100, 10) else {
            panic!("a new token is a claim");
        };
        assert_eq!(c.until, 100);
        assert_eq!(c.key, <[u8; 32]>::from(Sha256::digest(b"k")));
        assert_eq!(g.check_use("k", 100, 50), Ok(Use::Again));
        assert!(matches!(g.check_use("k2", 100, 50), Ok(Use::Claim(_))));
        assert_eq!(
            MemoryReplayGuard::default().check_use("k", 100, 10),
            Ok(Use::First)
        );
    }

    #[test]
    fn the_database_guard_is_shared_by_two_processes_worth_of_connections() {
        let dir = std::env::temp_dir().join(format!("cloudauth-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.sqlite3");
        let (a, b) = (
            SqliteReplayGuard::open(&db).unwrap(),
            SqliteReplayGuard::open(&db).unwrap(),
        );
        assert_eq!(a.first_use("k", 100, 10), Ok(true));
        assert_eq!(
            b.first_use("k", 100, 20),
            Ok(false),
            "seen by the other connection"
        );
        assert_eq!(b.first_use("k2", 100, 20), Ok(true));
        assert_eq!(
            a.first_use("k", 300, 101),
            Ok(true),
            "expired keys are forgotten"
        );
    }
}
