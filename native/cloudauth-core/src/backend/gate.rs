//! At most N requests in flight to one backend (host and port), the rest
//! waiting in arrival order, each only as long as its own deadline allows,
//! and only so many waiting at all. A Nextcloud serves as many password
//! checks at once as it has PHP workers (each ~0.4 s of argon2id); more at
//! once only queue up inside it, where no deadline of ours reaches them,
//! until it falls over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::BackendError;

/// The limits every backend host gets, and the gates per host.
#[derive(Debug)]
pub struct Limits {
    concurrency: usize,
    queue: usize,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

/// One host's gate.
#[derive(Debug)]
pub struct Gate {
    permits: Arc<Semaphore>,
    concurrency: usize,
    queue: usize,
    waiting: AtomicUsize,
}

/// A place in the gate: the request may run while it is held.
#[derive(Debug)]
pub struct Pass(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// Counts a waiter while it waits, also when its request is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limits {
    /// At most `concurrency` requests in flight per host (0: no limit),
    /// at most `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        Limits {
            concurrency,
            queue,
            gates: Mutex::default(),
        }
    }

    /// (requests in flight, requests waiting) allowed per host.
    pub fn bounds(&self) -> (usize, usize) {
        (self.concurrency, self.queue)
    }

    /// (host, requests in flight, requests waiting) for every host seen.
    pub fn snapshot(&self) -> Vec<(String, usize, usize)> {
        let gates = match self.gates.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        gates
            .iter()
            .map(|(h, g)| (h.clone(), g.in_flight(), g.waiting()))
            .collect()
    }

    /// No limit (tests, tools).
    pub fn unlimited() -> Self {
        Limits::new(0, 0)
    }

    /// The gate of `host` (host:port).
    pub fn gate(&self, host: &str) -> Arc<Gate> {
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        Arc::clone(gates.entry(host.to_string()).or_insert_with(|| {
            Arc::new(Gate {
                permits: Arc::new(Semaphore::new(self.concurrency.max(1))),
                concurrency: self.concurrency,
                queue: self.queue,
                waiting: AtomicUsize::new(0),
            })
        }))
    }
}

impl Gate {
    /// Waits for a place, at most `deadline`. A full queue or a deadline
    /// passed while waiting is trouble ("could not find out"), never "no".
    pub async fn enter(&self, deadline: Duration) -> Result<Pass, BackendError> {
        if self.concurrency == 0 {
            return Ok(Pass(None));
        }
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(Pass(Some(p)));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::Overloaded {
                limit: self.concurrency,
                waiting: self.queue,
            });
        }
        let _counted = Waiting(&self.waiting);
        match tokio::time::timeout(deadline, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(p)) => Ok(Pass(Some(p))),
            Ok(Err(_)) | Err(_) => Err(BackendError::QueueTimeout {
                limit: self.concurrency,
                waited: deadline,
            }),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        if self.concurrency == 0 {
            return 0;
        }
        self.concurrency
            .saturating_sub(self.permits.available_permits())
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    #[tokio::test]
    async fn never_more_than_the_limit_in_flight_and_fifo() {
        let limits = Limits::new(2, 100);
        let gate = limits.gate("h:1");
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (g, r, p, o) = (
                Arc::clone(&gate),
                Arc::clone(&running),
                Arc::clone(&peak),
                Arc::clone(&order),
            );
            tasks.push(tokio::spawn(async move {
                let _pass = g.enter(Duration::from_secs(5)).await.unwrap();
                o.lock().unwrap().push(i);
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, Ordering::SeqCst);
            }));
            // Arrivals in a known order.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!((gate.in_flight(), gate.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn a_waiter_past_its_deadline_is_trouble_and_the_queue_is_bounded() {
        let limits = Limits::new(1, 1);
        let gate = limits.gate("h:1");
        let held = gate.enter(Duration::from_secs(1)).await.unwrap();
        let started = Instant::now();
        let waiter = {
            let g = Arc::clone(&gate);
            tokio::spawn(async move { g.enter(Duration::from_millis(200)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.waiting(), 1);
        // The queue (1) is full: the next is refused at once.
        assert!(matches!(
            gate.enter(Duration::from_secs(5)).await,
            Err(BackendError::Overloaded { .. })
        ));
        assert!(matches!(
            waiter.await.unwrap(),
            Err(BackendError::QueueTimeout { .. })
        ));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            gate.waiting(),
            0,
            "a waiter that gave up is no longer counted"
        );
        drop(held);
        assert!(gate.enter(Duration::from_millis(10)).await.is_ok());
    }

    #[tokio::test]
    async fn hosts_have_their_own_gates_and_zero_means_no_limit() {
        let limits = Limits::new(1, 10);
        let _a = limits
            .gate("a:1")
            .enter(Duration::from_secs(1))
            .await
            .unwrap();
        assert!(limits
            .gate("b:1")
            .enter(Duration::from_millis(10))
            .await
            .is_ok());
        let free = Limits::unlimited();
        let g = free.gate("a:1");
        let _x = g.enter(Duration::ZERO).await.unwrap();
        let _y = g.enter(Duration::ZERO).await.unwrap();
    }
}
