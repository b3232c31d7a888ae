//! Identical cloud checks in flight at the same time share one request.
//!
//! The key is the operation plus a keyed digest of (JID, password), so
//! different passwords never share a result and nothing secret is kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::backend::BackendError;
use crate::digest::{Digester, PairDigest};

/// Result shared between coalesced callers.
pub type Answer = Result<bool, BackendError>;

type Key = (&'static str, PairDigest);
type InFlight = Arc<Mutex<HashMap<Key, Shared<BoxFuture<'static, Answer>>>>>;

/// Runs at most one request per key at a time.
pub struct Coalescer {
    digester: Digester,
    inflight: InFlight,
}

impl Coalescer {
    /// A coalescer with a fresh random digest key; `None` without OS randomness.
    pub fn new() -> Option<Self> {
        Some(Coalescer {
            digester: Digester::random()?,
            inflight: Arc::default(),
        })
    }

    /// Number of distinct requests in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Joins the request in flight for (`op`, `jid`, `secret`), or starts
    /// `make()` as that request.
    pub async fn run<F>(
        &self,
        op: &'static str,
        jid: &str,
        secret: &str,
        make: impl FnOnce() -> F,
    ) -> Answer
    where
        F: Future<Output = Answer> + Send + 'static,
    {
        let key = (op, self.digester.digest(jid, secret));
        let shared = {
            let mut map = match self.inflight.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            match map.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let work = make();
                    let registry = Arc::clone(&self.inflight);
                    let f = async move {
                        let r = work.await;
                        if let Ok(mut m) = registry.lock() {
                            m.remove(&key);
                        }
                        r
                    }
                    .boxed()
                    .shared();
                    map.insert(key, f.clone());
                    f
                }
            }
        };
        shared.await
    }
}
