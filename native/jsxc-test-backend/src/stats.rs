//! Per-operation request counters.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

/// Requests received, by operation.
#[derive(Debug, Default)]
pub struct Stats {
    auth: AtomicU64,
    isuser: AtomicU64,
    sharedroster: AtomicU64,
    other: AtomicU64,
    bad_signature: AtomicU64,
}

impl Stats {
    /// Counts a request for `operation`.
    pub fn count(&self, operation: &str) {
        let c = match operation {
            "auth" => &self.auth,
            "isuser" => &self.isuser,
            "sharedroster" => &self.sharedroster,
            _ => &self.other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request whose signature did not match.
    pub fn count_bad_signature(&self) {
        self.bad_signature.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let total = g(&self.auth) + g(&self.isuser) + g(&self.sharedroster) + g(&self.other);
        json!({
            "auth": g(&self.auth), "isuser": g(&self.isuser), "sharedroster": g(&self.sharedroster),
            "other": g(&self.other), "bad_signature": g(&self.bad_signature), "total": total,
        })
    }

    /// Zeroes all counters.
    pub fn reset(&self) {
        for c in [
            &self.auth,
            &self.isuser,
            &self.sharedroster,
            &self.other,
            &self.bad_signature,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
