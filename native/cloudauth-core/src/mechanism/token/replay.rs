//! One-time tokens must be refused the second time: a guard remembers the
//! ones seen until they could no longer be valid anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use crate::vocab::state_db::{open_shared, StoreError};

/// How long past the end of its window a used token's record is kept. A
/// clock stepped forward by less than this and back again finds the record
/// still there; for larger steps the guard's low-water mark (below) refuses
/// what it may have forgotten.
pub(crate) const KEPT_AFTER_EXPIRY: u64 = 3600;

/// Remembers used one-time tokens.
///
/// A record names the token (the caller's key holds the JID and the token's
/// own words, so its time step too) and the last second at which any clock
/// reading makes the token valid (`until`, from the token's step, not from
/// the time it was used). Records are swept once the clock is
/// [`KEPT_AFTER_EXPIRY`] past that, and each guard keeps the largest `until`
/// it ever swept: a token whose `until` is not above it may have been used
/// and forgotten, so it is refused ([`Use::Forgotten`]) even if the clock
/// was stepped back far enough to make it valid again. Used tokens are thus
/// never admitted twice, whatever the clock does; what a clock step back of
/// more than an hour can cost is a fresh token refused until the clock has
/// caught up with the tokens swept before it.
pub trait ReplayGuard: Send + Sync {
    /// Records `key` as used, valid until `until` (Unix seconds), at `now`.
    /// An error means the guard could not tell: the token must not be
    /// accepted.
    fn check_use(&self, key: &str, until: u64, now: u64) -> Result<Use, StoreError>;
}

/// What a guard knows of a token's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Not used before (now recorded).
    First,
    /// Used before.
    Again,
    /// Its record could have been swept (its window ended before that of a
    /// token already forgotten): not provably unused, so refused.
    Forgotten,
    /// Not used before here; first only if the shared store takes the claim.
    Claim(Claim),
}

/// Why a one-time token another node of the cluster admitted is refused.
pub(crate) const USED_ELSEWHERE: &str = "one-time token already used (on another node)";

/// A one-time token's use, for a shared store to record if absent: the
/// token counts as used the first time only if no record of the key is
/// there and the key is not older than what the store has swept. Records
/// can go after `until`, which already includes [`KEPT_AFTER_EXPIRY`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// SHA-256 of the replay key (no token material).
    pub key: [u8; 32],
    /// Unix second after which the record can go (the token's window end
    /// plus [`KEPT_AFTER_EXPIRY`]).
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
    fn check_use(&self, key: &str, until: u64, now: u64) -> Result<Use, StoreError> {
        Ok(match self.0.check_use(key, until, now)? {
            Use::First => Use::Claim(Claim {
                key: Sha256::digest(key.as_bytes()).into(),
                until: until.saturating_add(KEPT_AFTER_EXPIRY),
            }),
            other => other,
        })
    }
}

/// Keys above this count trigger a sweep of expired ones.
const SWEEP_AT: usize = 4096;

/// The guard of one process (or, in ejabberd, of one node).
#[derive(Debug, Default)]
pub struct MemoryReplayGuard(Mutex<Seen>);

/// The used keys of a [`MemoryReplayGuard`].
#[derive(Debug, Default)]
struct Seen {
    /// Key → the token's `until`.
    keys: HashMap<String, u64>,
    /// The largest `until` swept: keys not above it may have been forgotten.
    swept_through: u64,
    /// Sweep when this many keys are held (doubles with the live keys, so a
    /// busy guard does not scan its map on every use).
    sweep_at: usize,
}

impl ReplayGuard for MemoryReplayGuard {
    fn check_use(&self, key: &str, until: u64, now: u64) -> Result<Use, StoreError> {
        let mut seen = self
            .0
            .lock()
            .map_err(|_| StoreError("replay guard poisoned".into()))?;
        if seen.keys.len() >= seen.sweep_at.max(SWEEP_AT) {
            let before = now.saturating_sub(KEPT_AFTER_EXPIRY);
            let mut swept = seen.swept_through;
            seen.keys.retain(|_, u| {
                let keep = *u >= before;
                if !keep {
                    swept = swept.max(*u);
                }
                keep
            });
            seen.swept_through = swept;
            seen.sweep_at = seen.keys.len().saturating_mul(2);
        }
        if seen.keys.contains_key(key) {
            return Ok(Use::Again);
        }
        if until <= seen.swept_through {
            return Ok(Use::Forgotten);
        }
        seen.keys.insert(key.to_string(), until);
        Ok(Use::First)
    }
}

/// The guard shared by every process using one state database (an extauth
/// pool): the `totp_used` table, keyed by a digest of the key (no token
/// material is stored), and its low-water mark in `totp_swept`.
pub struct SqliteReplayGuard(Mutex<Connection>);

impl SqliteReplayGuard {
    /// Opens (and creates) the tables in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_shared(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS totp_used (key TEXT PRIMARY KEY, until INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS totp_used_until ON totp_used (until);
             CREATE TABLE IF NOT EXISTS totp_swept (id INTEGER PRIMARY KEY CHECK (id = 1), until INTEGER NOT NULL);",
        )
        .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        Ok(SqliteReplayGuard(Mutex::new(conn)))
    }
}

impl ReplayGuard for SqliteReplayGuard {
    fn check_use(&self, key: &str, until: u64, now: u64) -> Result<Use, StoreError> {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        let mut conn = self
            .0
            .lock()
            .map_err(|_| StoreError("replay guard poisoned".into()))?;
        let err = |e: rusqlite::Error| StoreError(format!("totp_used: {e}"));
        let before = i64::try_from(now.saturating_sub(KEPT_AFTER_EXPIRY)).unwrap_or(i64::MAX);
        let until = i64::try_from(until).unwrap_or(i64::MAX);
        // One writer at a time across the pool: the sweep, its mark and the
        // insert are seen together or not at all.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let swept: Option<i64> = tx
            .query_row(
                "SELECT max(until) FROM totp_used WHERE until < ?1",
                params![before],
                |r| r.get(0),
            )
            .map_err(err)?;
        if let Some(swept) = swept {
            tx.execute("DELETE FROM totp_used WHERE until < ?1", params![before])
                .map_err(err)?;
            tx.execute(
                "INSERT INTO totp_swept (id, until) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET until = max(until, excluded.until)",
                params![swept],
            )
            .map_err(err)?;
        }
        let used: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM totp_used WHERE key = ?1)",
                params![digest],
                |r| r.get(0),
            )
            .map_err(err)?;
        let outcome = if used {
            Use::Again
        } else {
            let swept_through: i64 = tx
                .query_row(
                    "SELECT coalesce((SELECT until FROM totp_swept WHERE id = 1), -1)",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if until <= swept_through {
                Use::Forgotten
            } else {
                tx.execute(
                    "INSERT INTO totp_used (key, until) VALUES (?1, ?2)",
                    params![digest, until],
                )
                .map_err(err)?;
                Use::First
            }
        };
        tx.commit().map_err(err)?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    /// Uses enough other tokens at `now` for the guard to sweep then.
    fn crowd(g: &MemoryReplayGuard, now: u64) {
        for i in 0..SWEEP_AT {
            let used = g.check_use(&format!("crowd{now}-{i}"), now + 60, now);
            assert_eq!(used, Ok(Use::First));
        }
    }

    #[test]
    fn second_use_refused() {
        let g = MemoryReplayGuard::default();
        assert_eq!(g.check_use("k", 100, 10), Ok(Use::First));
        assert_eq!(g.check_use("k", 100, 50), Ok(Use::Again));
        assert_eq!(g.check_use("other", 100, 50), Ok(Use::First));
    }

    /// The clock stepped forward (the used token's record swept as long
    /// expired), then back into the token's window: still refused.
    #[test]
    fn a_clock_step_forward_and_back_does_not_resurrect_a_used_token() {
        for step in [HOUR / 2, 2 * HOUR, 400 * 24 * HOUR] {
            let g = MemoryReplayGuard::default();
            let now = 1_765_000_005;
            let until = now + 55;
            assert_eq!(g.check_use("used", until, now), Ok(Use::First));
            // Forward: other logins, and the sweep, at the stepped clock.
            crowd(&g, now + step);
            // Back: the token is in its window again, and refused.
            let again = g.check_use("used", until, now + 5);
            assert!(
                matches!(again, Ok(Use::Again | Use::Forgotten)),
                "step {step}: {again:?}"
            );
            // A token minted after the clock came back is admitted once.
            assert_eq!(g.check_use("fresh", now + 5 + 60, now + 5), Ok(Use::First));
        }
    }

    #[test]
    fn expired_keys_are_swept_and_remembered_as_swept() {
        let g = MemoryReplayGuard::default();
        assert_eq!(g.check_use("old", 100, 10), Ok(Use::First));
        crowd(&g, 2 * HOUR);
        let seen = g.0.lock().unwrap();
        assert!(!seen.keys.contains_key("old"), "the expired key went");
        assert_eq!(seen.keys.len(), SWEEP_AT);
        assert_eq!(seen.swept_through, 100);
    }

    #[test]
    fn the_cluster_guard_claims_new_tokens_and_refuses_ones_used_here() {
        let g = ClaimReplayGuard::default();
        let Ok(Use::Claim(c)) = g.check_use("k", 100, 10) else {
            panic!("a new token is a claim");
        };
        assert_eq!(c.until, 100 + KEPT_AFTER_EXPIRY, "kept past the window");
        assert_eq!(c.key, <[u8; 32]>::from(Sha256::digest(b"k")));
        assert_eq!(g.check_use("k", 100, 50), Ok(Use::Again));
        assert!(matches!(g.check_use("k2", 100, 50), Ok(Use::Claim(_))));
        assert_eq!(
            MemoryReplayGuard::default().check_use("k", 100, 10),
            Ok(Use::First)
        );
    }

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cloudauth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.sqlite3")
    }

    #[test]
    fn the_database_guard_is_shared_by_two_processes_worth_of_connections() {
        let db = temp_db("replay");
        let (a, b) = (
            SqliteReplayGuard::open(&db).unwrap(),
            SqliteReplayGuard::open(&db).unwrap(),
        );
        assert_eq!(a.check_use("k", 100, 10), Ok(Use::First));
        assert_eq!(
            b.check_use("k", 100, 20),
            Ok(Use::Again),
            "seen by the other connection"
        );
        assert_eq!(b.check_use("k2", 100, 20), Ok(Use::First));
    }

    /// The reproduction with `--db`: a used token, the clock an hour
    /// (or a day) forward, then back: refused, through either connection,
    /// and after reopening the database.
    #[test]
    fn the_database_guard_survives_a_clock_step_forward_and_back() {
        for step in [HOUR, 2 * HOUR, 30 * 24 * HOUR] {
            let db = temp_db(&format!("replay-step{step}"));
            let (a, b) = (
                SqliteReplayGuard::open(&db).unwrap(),
                SqliteReplayGuard::open(&db).unwrap(),
            );
            let now = 1_765_000_005;
            let until = now + 55;
            assert_eq!(a.check_use("used", until, now), Ok(Use::First));
            assert_eq!(
                b.check_use("later", now + step + 60, now + step),
                Ok(Use::First)
            );
            for g in [&a, &b, &SqliteReplayGuard::open(&db).unwrap()] {
                let again = g.check_use("used", until, now + 5);
                assert!(
                    matches!(again, Ok(Use::Again | Use::Forgotten)),
                    "step {step}: {again:?}"
                );
            }
            assert_eq!(a.check_use("fresh", now + 65, now + 5), Ok(Use::First));
        }
    }
}
