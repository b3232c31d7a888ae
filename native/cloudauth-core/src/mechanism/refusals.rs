//! Wrong passwords the backend refused a moment ago, answered "no" again
//! without asking it: XMPP clients retry a stale password every few
//! seconds, and a Nextcloud counts each failure against the XMPP server's
//! address in its brute-force throttle, which then slows every login.
//!
//! Only keyed digests of (JID, password) are kept, for a backend-chosen
//! window, and at most [`MAX_ENTRIES`] of them.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::digest::{Digester, PairDigest};

/// Most refusals remembered at once; beyond it new ones are not remembered.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Recently refused (JID, password) pairs.
pub(crate) struct RecentRefusals {
    digester: Digester,
    /// Digest → (Unix end of the window, the key it was remembered for):
    /// the key (a JID, never a password) lets [`RecentRefusals::forget`]
    /// drop one user's refusals.
    until: Mutex<HashMap<PairDigest, (u64, String)>>,
}

impl RecentRefusals {
    /// An empty memory with a fresh digest key; `None` without OS randomness.
    pub fn new() -> Option<Self> {
        Some(RecentRefusals {
            digester: Digester::random()?,
            until: Mutex::default(),
        })
    }

    /// Whether the pair was refused and its window (ending at Unix `until`) is still open at `now`.
    pub fn remembers(&self, jid: &str, password: &str, now: u64) -> bool {
        let key = self.digester.digest(jid, password);
        self.until
            .lock()
            .map(|m| m.get(&key).is_some_and(|(u, _)| *u >= now))
            .unwrap_or(false)
    }

    /// Remembers a refusal until Unix time `until`.
    pub(crate) fn remember(&self, jid: &str, password: &str, until: u64, now: u64) {
        let key = self.digester.digest(jid, password);
        let Ok(mut m) = self.until.lock() else { return };
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, (u, _)| *u >= now);
        }
        if m.len() < MAX_ENTRIES {
            m.insert(key, (until, jid.to_string()));
        }
    }

    /// Drops the refusals remembered for keys `matches` picks (one user's,
    /// for `forget` and a departed account). Returns how many went.
    pub fn forget(&self, matches: impl Fn(&str) -> bool) -> usize {
        let Ok(mut m) = self.until.lock() else {
            return 0;
        };
        let before = m.len();
        m.retain(|_, (_, key)| !matches(key));
        before - m.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_bound() {
        let r = RecentRefusals::new().unwrap();
        r.remember("a@x", "pw", 160, 100);
        assert!(r.remembers("a@x", "pw", 150));
        assert!(!r.remembers("a@x", "other", 150));
        assert!(!r.remembers("b@x", "pw", 150));
        assert!(!r.remembers("a@x", "pw", 161), "window over");
        r.remember("b@x", "pw", 160, 100);
        assert_eq!(r.forget(|k| k == "a@x"), 1);
        assert!(!r.remembers("a@x", "pw", 150), "forgotten");
        assert!(r.remembers("b@x", "pw", 150), "another user's stays");
        for i in 0..MAX_ENTRIES + 10 {
            r.remember("u@x", &i.to_string(), 1000, 200);
        }
        assert!(r.until.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
