//! `cloudauth forget USER DOMAIN`: drops what the state database holds for
//! a user, for an admin who just disabled or deleted the account.

use std::path::Path;

use rusqlite::params;

use crate::cache::sqlite::open_shared;
use crate::cache::StoreError;
use crate::known_users::SqliteKnown;

/// What [`forget_in_db`] found and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forgotten {
    /// A password cache row was removed.
    pub cache_row: bool,
    /// A known-user entry was removed.
    pub known_user: bool,
    /// A roster digest was cleared (the next login re-reads the groups).
    pub roster_digest: bool,
}

/// Drops `jid`'s password cache row and known-user entry and clears its
/// roster digest, in one transaction of the state database at `db`. The
/// user's roster rows stay: his next sync must still see the groups he was
/// put in, to take him out of those he left.
pub fn forget_in_db(db: &Path, jid: &str) -> Result<Forgotten, StoreError> {
    // Creates the known-user table where an older database lacks it.
    drop(SqliteKnown::open(db)?);
    let mut conn = open_shared(db)?;
    let err = |e: rusqlite::Error| StoreError(e.to_string());
    let tx = conn.transaction().map_err(err)?;
    let cache_row = tx
        .execute("DELETE FROM authcache WHERE jid = ?1", params![jid])
        .map_err(err)?;
    let known_user = tx
        .execute("DELETE FROM known_users WHERE jid = ?1", params![jid])
        .map_err(err)?;
    let roster_digest = tx
        .execute(
            "UPDATE rosterinfo SET responsehash = NULL WHERE jid = ?1 AND responsehash IS NOT NULL",
            params![jid],
        )
        .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(Forgotten {
        cache_row: cache_row > 0,
        known_user: known_user > 0,
        roster_digest: roster_digest > 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{sqlite::SqliteStore, CacheStore};
    use crate::known_users::KnownStore;

    #[test]
    fn drops_the_row_the_known_user_and_the_digest_of_one_user_only() {
        let dir = std::env::temp_dir().join(format!("cloudauth-forget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.db");
        let cache = SqliteStore::open(&db).unwrap();
        let known = SqliteKnown::open(&db).unwrap();
        for jid in ["alice@x", "bob@x"] {
            cache.record_verified(jid, "$2b$04$hash", 10).unwrap();
            known.confirm(jid, 10).unwrap();
        }
        let conn = open_shared(&db).unwrap();
        conn.execute(
            "INSERT INTO rosterinfo (jid, responsehash) VALUES ('alice@x', 'h'), ('bob@x', 'h')",
            [],
        )
        .unwrap();
        let gone = forget_in_db(&db, "alice@x").unwrap();
        assert_eq!(
            gone,
            Forgotten {
                cache_row: true,
                known_user: true,
                roster_digest: true
            }
        );
        assert!(cache.get("alice@x").unwrap().is_none());
        assert!(known.confirmed("alice@x").unwrap().is_none());
        assert!(cache.get("bob@x").unwrap().is_some());
        assert!(known.confirmed("bob@x").unwrap().is_some());
        let hash: Option<String> = conn
            .query_row(
                "SELECT responsehash FROM rosterinfo WHERE jid = 'bob@x'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hash.as_deref(), Some("h"));
        assert_eq!(forget_in_db(&db, "alice@x").unwrap(), Forgotten::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
