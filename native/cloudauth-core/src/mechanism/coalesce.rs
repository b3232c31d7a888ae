//! Identical cloud checks in flight at the same time share one request.
//!
//! The key is the operation plus a keyed digest of (JID, password), so
//! different passwords never share a result and nothing secret is kept.
//! The first caller runs the request itself (no extra task, no extra
//! waker hop); callers arriving while it runs wait for its result. If the
//! first caller is cancelled, a waiting one takes the request over.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::backend::BackendError;
use crate::digest::{Digester, PairDigest};

/// Result shared between coalesced callers.
pub type Answer = Result<bool, BackendError>;

type Key = (&'static str, PairDigest);
type Slot = Arc<OnceCell<Answer>>;

/// Runs at most one request per key at a time.
pub struct Coalescer {
    digester: Digester,
    /// Each request in flight and how many callers hold it.
    inflight: Mutex<HashMap<Key, (Slot, usize)>>,
    joined: AtomicU64,
}

impl Coalescer {
    /// A coalescer with a fresh random digest key; `None` without OS randomness.
    pub fn new() -> Option<Self> {
        Some(Coalescer {
            digester: Digester::random()?,
            inflight: Mutex::default(),
            joined: AtomicU64::new(0),
        })
    }

    /// Callers so far that joined a request already in flight.
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    /// Number of distinct requests in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Joins the request in flight for (`op`, `jid`, `secret`), or runs
    /// `make()` as that request.
    pub async fn run<F>(
        &self,
        op: &'static str,
        jid: &str,
        secret: &str,
        make: impl FnOnce() -> F,
    ) -> Answer
    where
        F: Future<Output = Answer>,
    {
        let key = (op, self.digester.digest(jid, secret));
        let holder = {
            let mut map = self.map();
            let entry = map.entry(key).or_insert_with(|| (Slot::default(), 0));
            if entry.1 > 0 {
                self.joined.fetch_add(1, Ordering::Relaxed);
            }
            entry.1 += 1;
            Holder {
                coalescer: self,
                key,
                slot: Arc::clone(&entry.0),
            }
        };
        let answer = holder.slot.get_or_init(make).await.clone();
        // The first to finish retires the slot (unless a newer one replaced
        // it): a check arriving now asks again rather than reusing the answer.
        let mut map = self.map();
        if map
            .get(&key)
            .is_some_and(|(s, _)| Arc::ptr_eq(s, &holder.slot))
        {
            map.remove(&key);
        }
        answer
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Slot, usize)>> {
        match self.inflight.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }
}

/// One caller's hold on a slot. Dropped — finished or cancelled (the
/// decision's deadline drops the whole check) — it is counted out, and the
/// last holder to go removes the slot from the map: otherwise a check every
/// caller gave up on would stay in the map for good.
struct Holder<'a> {
    coalescer: &'a Coalescer,
    key: Key,
    slot: Slot,
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        let mut map = self.coalescer.map();
        if let Some((slot, holders)) = map.get_mut(&self.key) {
            if Arc::ptr_eq(slot, &self.slot) {
                *holders -= 1;
                if *holders == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_identical_calls_share_one_run_and_the_slot_is_retired() {
        let c = Arc::new(Coalescer::new().unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (c, runs) = (Arc::clone(&c), Arc::clone(&runs));
            let pw = if i == 9 { "other" } else { "pw" };
            tasks.push(tokio::spawn(async move {
                c.run("auth", "a@b", pw, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(pw == "pw")
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Ok(i != 9));
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "one run per distinct password"
        );
        assert_eq!(c.in_flight(), 0);
        // Sequential calls run again (nothing is cached).
        let again = c.run("auth", "a@b", "pw", || async { Ok(false) }).await;
        assert_eq!(again, Ok(false));
    }

    /// Issue 24: the slot was removed after the awaited work only, so a
    /// check cancelled by the decision's deadline left its entry for good.
    #[tokio::test]
    async fn checks_cancelled_by_a_deadline_leave_no_entry() {
        let c = Arc::new(Coalescer::new().unwrap());
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(true)
        };
        let alone =
            tokio::time::timeout(Duration::from_millis(20), c.run("auth", "a@b", "pw", slow)).await;
        assert!(alone.is_err(), "cancelled");
        assert_eq!(c.in_flight(), 0, "a lone cancelled check");
        // Several callers sharing one slot, all cancelled one after the other.
        let mut tasks = Vec::new();
        for i in 0..5u64 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(20 + 10 * i),
                    c.run("auth", "a@b", "pw", slow),
                )
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(c.in_flight(), 1, "shared");
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(c.in_flight(), 0, "every sharer cancelled");
        // A finished check still retires its slot, and the next one asks again.
        assert_eq!(
            c.run("auth", "a@b", "pw", || async { Ok(false) }).await,
            Ok(false)
        );
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_first_caller_hands_the_request_over() {
        let c = Arc::new(Coalescer::new().unwrap());
        let first = {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                c.run("auth", "a@b", "pw", || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(false)
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.run("auth", "a@b", "pw", || async { Ok(true) }).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the waiting caller took over")
            .unwrap();
        assert_eq!(answer, Ok(true));
        assert_eq!(c.in_flight(), 0);
    }
}
