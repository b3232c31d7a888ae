//! Where cache entries live: the trait and the in-memory store.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One cached account, as in xcauth's `authcache` table (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// bcrypt hash (`$2b$…`) of the last password the cloud accepted.
    pub pwhash: String,
    /// First successful authentication.
    pub firstauth: u64,
    /// Last time the cloud confirmed the password.
    pub remoteauth: u64,
    /// Last successful authentication by any path.
    pub anyauth: u64,
}

pub use crate::vocab::state_db::StoreError;

/// Storage for cache entries keyed by bare JID.
pub trait CacheStore: Send + Sync {
    /// The entry for `jid`, if any.
    fn get(&self, jid: &str) -> Result<Option<CacheEntry>, StoreError>;
    /// After the cloud accepted a password: new hash, `remoteauth = anyauth = now`,
    /// `firstauth` kept (or set to `now` for a new entry).
    fn record_verified(&self, jid: &str, pwhash: &str, now: u64) -> Result<(), StoreError>;
    /// After a cache hit: `anyauth = now`.
    fn record_query(&self, jid: &str, now: u64) -> Result<(), StoreError>;
    /// Every entry of the user part `user` (JIDs `user@…`) with its `anyauth`.
    fn user_entries(&self, user: &str) -> Result<Vec<(String, u64)>, StoreError>;
    /// Removes the entry for `jid`.
    fn remove(&self, jid: &str) -> Result<(), StoreError>;
}

/// A store shared with its owner (who may also lend rows to it).
impl<T: CacheStore> CacheStore for std::sync::Arc<T> {
    fn get(&self, jid: &str) -> Result<Option<CacheEntry>, StoreError> {
        (**self).get(jid)
    }

    fn record_verified(&self, jid: &str, pwhash: &str, now: u64) -> Result<(), StoreError> {
        (**self).record_verified(jid, pwhash, now)
    }

    fn record_query(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        (**self).record_query(jid, now)
    }

    fn user_entries(&self, user: &str) -> Result<Vec<(String, u64)>, StoreError> {
        (**self).user_entries(user)
    }

    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        (**self).remove(jid)
    }
}

/// Entries in process memory only (`--cache-storage memory`).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<BTreeMap<String, CacheEntry>>);

impl MemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, CacheEntry>>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".into()))
    }

    /// Puts `row` under `jid`, or forgets `jid` (`None`).
    pub(super) fn put(&self, jid: &str, row: Option<CacheEntry>) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        match row {
            Some(r) => map.insert(jid.to_string(), r),
            None => map.remove(jid),
        };
        Ok(())
    }

    /// [`CacheStore::record_verified`], returning the row written.
    pub(super) fn verified(
        &self,
        jid: &str,
        pwhash: &str,
        now: u64,
    ) -> Result<CacheEntry, StoreError> {
        let mut map = self.lock()?;
        let firstauth = map.get(jid).map_or(now, |e| e.firstauth);
        let row = CacheEntry {
            pwhash: pwhash.to_string(),
            firstauth,
            remoteauth: now,
            anyauth: now,
        };
        map.insert(jid.to_string(), row.clone());
        Ok(row)
    }

    /// [`CacheStore::record_query`], returning the row written, if any.
    pub(super) fn queried(&self, jid: &str, now: u64) -> Result<Option<CacheEntry>, StoreError> {
        Ok(self.lock()?.get_mut(jid).map(|e| {
            e.anyauth = now;
            e.clone()
        }))
    }
}

impl CacheStore for MemoryStore {
    fn get(&self, jid: &str) -> Result<Option<CacheEntry>, StoreError> {
        Ok(self.lock()?.get(jid).cloned())
    }

    fn record_verified(&self, jid: &str, pwhash: &str, now: u64) -> Result<(), StoreError> {
        self.verified(jid, pwhash, now).map(drop)
    }

    fn record_query(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        self.queried(jid, now).map(drop)
    }

    fn user_entries(&self, user: &str) -> Result<Vec<(String, u64)>, StoreError> {
        // Ordered keys: the user's entries are one range.
        let prefix = format!("{user}@");
        Ok(self
            .lock()?
            .range(prefix.clone()..)
            .take_while(|(jid, _)| jid.starts_with(&prefix))
            .map(|(jid, e)| (jid.clone(), e.anyauth))
            .collect())
    }

    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        self.lock()?.remove(jid);
        Ok(())
    }
}
