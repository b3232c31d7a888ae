//! Password cache with xcauth's semantics, so that cloud restarts and slow
//! moments do not lock users out.
//!
//! * hit: last query within the query TTL **and** last cloud verification
//!   within the verification TTL **and** the password matches;
//! * when the cloud is unreachable: additionally a match whose last cloud
//!   verification is within the unreachable TTL;
//! * passwords are kept only as bcrypt hashes; a repeated hit in the same
//!   process compares a keyed in-memory digest instead of paying bcrypt again.
//!
//! bcrypt work is blocking: run [`PasswordCache::verify_slow`] and
//! [`PasswordCache::hash`] off the async threads.

pub mod lent;
pub mod sqlite;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tracing::warn;

use crate::digest::{Digester, PairDigest};
pub use lent::{LentStore, RowSink};
pub use store::{CacheEntry, CacheStore, MemoryStore, StoreError};

/// bcrypt ignores bytes past 72; longer passwords are never cached.
pub(crate) const BCRYPT_MAX_PASSWORD: usize = 72;

/// The three TTLs (xcauth's `--cache-*-ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    /// Longest time between two queries for a hit (default 1 h).
    pub query: Duration,
    /// Longest time since the cloud last confirmed the password (default 1 d).
    pub verification: Duration,
    /// Same, when the cloud cannot be reached (default 1 w).
    pub unreachable: Duration,
}

/// Which rule set a lookup applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Query and verification TTLs.
    Normal,
    /// The cloud could not be asked: the unreachable TTL applies as well.
    Unreachable,
}

/// Result of the fast part of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Fresh entry and the password matched the in-memory digest.
    Hit,
    /// No usable entry: ask the cloud.
    Miss,
    /// Fresh entry, password not seen in this process yet: bcrypt must decide.
    Verify {
        /// The stored hash to check against.
        pwhash: String,
    },
}

/// A process's in-memory proof that `digest`'s password matched `pwhash`.
struct Hot {
    pwhash: String,
    digest: PairDigest,
}

/// Where a cache keeps its entries.
#[derive(Debug, Clone, Copy)]
pub enum Storage<'a> {
    /// Process memory only.
    Memory,
    /// The `authcache` table of an (xcauth) SQLite database.
    Sqlite(&'a Path),
}

/// The cache: rules over a [`CacheStore`].
pub struct PasswordCache {
    store: Box<dyn CacheStore>,
    ttls: CacheTtls,
    bcrypt_cost: u32,
    digester: Digester,
    hot: Mutex<HashMap<String, Hot>>,
}

fn within(t: u64, ttl: Duration, now: u64) -> bool {
    t.saturating_add(ttl.as_secs()) > now
}

impl PasswordCache {
    /// A cache over `store`, hashing new entries with bcrypt `bcrypt_cost`.
    /// `None` when the OS cannot provide a random digest key.
    pub fn new(store: Box<dyn CacheStore>, ttls: CacheTtls, bcrypt_cost: u32) -> Option<Self> {
        Some(PasswordCache {
            store,
            ttls,
            bcrypt_cost: bcrypt_cost.clamp(4, 31),
            digester: Digester::random()?,
            hot: Mutex::new(HashMap::new()),
        })
    }

    /// A cache over `storage` (opening or creating the database).
    pub fn open(
        storage: Storage<'_>,
        ttls: CacheTtls,
        bcrypt_cost: u32,
    ) -> Result<Self, StoreError> {
        let store: Box<dyn CacheStore> = match storage {
            Storage::Memory => Box::new(MemoryStore::default()),
            Storage::Sqlite(path) => Box::new(sqlite::SqliteStore::open(path)?),
        };
        PasswordCache::new(store, ttls, bcrypt_cost)
            .ok_or_else(|| StoreError("the OS gave no random bytes for the cache key".into()))
    }

    /// The TTLs in force.
    pub fn ttls(&self) -> CacheTtls {
        self.ttls
    }

    fn fresh(&self, e: &CacheEntry, rules: Rules, now: u64) -> bool {
        let normal = within(e.anyauth, self.ttls.query, now)
            && within(e.remoteauth, self.ttls.verification, now);
        normal || (rules == Rules::Unreachable && within(e.remoteauth, self.ttls.unreachable, now))
    }

    /// Whether a row is kept for `jid` (the user logged in before), fresh or not.
    pub fn knows(&self, jid: &str) -> bool {
        matches!(self.store.get(jid), Ok(Some(_)))
    }

    /// The fast part: timestamps and the in-memory digest. Never runs bcrypt.
    /// A hit is recorded (`anyauth = now`).
    pub fn lookup(&self, jid: &str, password: &str, now: u64, rules: Rules) -> Lookup {
        if password.is_empty() || password.len() > BCRYPT_MAX_PASSWORD {
            return Lookup::Miss;
        }
        let entry = match self.store.get(jid) {
            Ok(Some(e)) => e,
            Ok(None) => return Lookup::Miss,
            Err(e) => {
                warn!("password cache lookup for {jid} failed: {e}");
                return Lookup::Miss;
            }
        };
        if !self.fresh(&entry, rules, now) {
            return Lookup::Miss;
        }
        let digest = self.digester.digest(jid, password);
        let known = self.hot.lock().ok().and_then(|hot| {
            hot.get(jid)
                .map(|h| h.pwhash == entry.pwhash && h.digest.ct_eq(&digest))
        });
        match known {
            Some(true) => {
                self.record_hit(jid, now);
                Lookup::Hit
            }
            _ => Lookup::Verify {
                pwhash: entry.pwhash,
            },
        }
    }

    /// When the backend last confirmed `jid`'s cached password, if a row is kept.
    pub(crate) fn confirmed_at(&self, jid: &str) -> Option<u64> {
        self.store.get(jid).ok().flatten().map(|e| e.remoteauth)
    }

    /// The hash stored for `jid`, fresh or not.
    pub(crate) fn stored_hash(&self, jid: &str) -> Option<String> {
        self.store.get(jid).ok().flatten().map(|e| e.pwhash)
    }

    /// Whether this process saw `password` match `pwhash` for `jid` (no bcrypt).
    pub(crate) fn matches_hot(&self, jid: &str, password: &str, pwhash: &str) -> bool {
        let digest = self.digester.digest(jid, password);
        self.hot.lock().ok().is_some_and(|hot| {
            hot.get(jid)
                .is_some_and(|h| h.pwhash == pwhash && h.digest.ct_eq(&digest))
        })
    }

    /// Whether `password` matches `pwhash` (blocking: bcrypt), recording nothing.
    pub(crate) fn hash_matches(&self, password: &str, pwhash: &str) -> bool {
        password.len() <= BCRYPT_MAX_PASSWORD && bcrypt::verify(password, pwhash).unwrap_or(false)
    }

    /// Drops `jid`'s row and what this process remembers of it.
    pub fn remove(&self, jid: &str) {
        if let Err(e) = self.store.remove(jid) {
            warn!("password cache: removing {jid} failed: {e}");
        }
        if let Ok(mut hot) = self.hot.lock() {
            hot.remove(jid);
        }
    }

    /// The slow part (blocking): bcrypt-compares `password` with `pwhash`;
    /// a match is remembered in memory and recorded as a hit.
    pub fn verify_slow(&self, jid: &str, password: &str, pwhash: &str, now: u64) -> bool {
        // bcrypt reads only the first 72 bytes: a row xcauth stored for a
        // longer password would admit any password sharing that prefix.
        // Such passwords are never cached; a row can only match a prefix.
        if password.len() > BCRYPT_MAX_PASSWORD {
            return false;
        }
        let ok = bcrypt::verify(password, pwhash).unwrap_or(false);
        if ok {
            self.remember(jid, password, pwhash);
            self.record_hit(jid, now);
        }
        ok
    }

    fn remember(&self, jid: &str, password: &str, pwhash: &str) {
        let digest = self.digester.digest(jid, password);
        if let Ok(mut hot) = self.hot.lock() {
            hot.insert(
                jid.to_string(),
                Hot {
                    pwhash: pwhash.to_string(),
                    digest,
                },
            );
        }
    }

    fn record_hit(&self, jid: &str, now: u64) {
        if let Err(e) = self.store.record_query(jid, now) {
            warn!("password cache update for {jid} failed: {e}");
        }
    }

    /// The stored hash to keep after the cloud accepted `password`, when the
    /// current one already matches it (no bcrypt needed); `None` otherwise.
    pub(crate) fn reusable_hash(&self, jid: &str, password: &str) -> Option<String> {
        let entry = self.store.get(jid).ok()??;
        let digest = self.digester.digest(jid, password);
        let hot = self.hot.lock().ok()?;
        let h = hot.get(jid)?;
        (h.pwhash == entry.pwhash && h.digest.ct_eq(&digest)).then_some(entry.pwhash)
    }

    /// Hashes a password for storage (blocking). `None` for passwords bcrypt
    /// cannot hold whole, or if hashing fails.
    pub fn hash(&self, password: &str) -> Option<String> {
        if password.is_empty() || password.len() > BCRYPT_MAX_PASSWORD {
            return None;
        }
        bcrypt::hash(password, self.bcrypt_cost).ok()
    }

    /// Before a new entry for `jid` (user part `user`) is stored: keeps the
    /// user's entries whose domain `bounded` accepts below `keep`, removing
    /// the ones used longest ago. Nothing when `jid` has an entry already.
    pub(crate) fn make_room(
        &self,
        jid: &str,
        user: &str,
        keep: usize,
        bounded: impl Fn(&str) -> bool,
    ) {
        if matches!(self.store.get(jid), Ok(Some(_))) {
            return;
        }
        let mut rows: Vec<(String, u64)> = match self.store.user_entries(user) {
            Ok(rows) => rows
                .into_iter()
                .filter(|(j, _)| j.split_once('@').is_some_and(|(_, d)| bounded(d)))
                .collect(),
            Err(e) => {
                warn!("password cache: listing the entries of {user} failed: {e}");
                return;
            }
        };
        rows.sort_by_key(|(_, anyauth)| *anyauth);
        let excess = (rows.len() + 1).saturating_sub(keep.max(1));
        for (old, _) in rows.into_iter().take(excess) {
            match self.store.remove(&old) {
                Ok(()) => {
                    if let Ok(mut hot) = self.hot.lock() {
                        hot.remove(&old);
                    }
                }
                Err(e) => warn!("password cache: removing {old} failed: {e}"),
            }
        }
    }

    /// After the cloud accepted `password` with hash `pwhash`: store it and
    /// remember the match in memory.
    pub fn record_verified(&self, jid: &str, password: &str, pwhash: &str, now: u64) {
        match self.store.record_verified(jid, pwhash, now) {
            Ok(()) => self.remember(jid, password, pwhash),
            Err(e) => warn!("password cache store for {jid} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
