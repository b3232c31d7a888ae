//! One-time tokens must be refused the second time: a guard remembers the
//! ones seen until they could no longer be valid anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cache::StoreError;

/// Remembers used one-time tokens.
pub trait ReplayGuard: Send + Sync {
    /// Records `key` as used until `until` (Unix seconds); `Ok(true)` the
    /// first time, `Ok(false)` when it was already used. An error means the
    /// guard could not tell: the token must not be accepted.
    fn first_use(&self, key: &str, until: u64, now: u64) -> Result<bool, StoreError>;
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
}
