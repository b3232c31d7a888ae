//! At most N requests in flight to one backend (host and port), the rest
//! waiting in arrival order, each only as long as its own deadline allows,
//! and only so many waiting at all. A Nextcloud serves as many password
//! checks at once as it has PHP workers (each ~0.4 s of argon2id); more at
//! once only queue up inside it, where no deadline of ours reaches them,
//! until it falls over.

//!
//! The places are shared fairly between front doors (the socket listeners:
//! ejabberd, Prosody's generic protocol, saslauthd, Postfix): each door has
//! its own queue of `queue` places, and a place that frees goes to the
//! waiting door with the fewest requests in flight, FIFO within a door. A
//! flood of Postfix lookups then fills only Postfix's queue, and a Prosody
//! login waits at most for the next free place, not behind the flood (issue
//! 24: it waited 10.1 s, past the module's timeout). A door is named by
//! [`through_door`] around the work; work outside one is the door "".

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{BackendError, GateError};
use crate::vocab::counters::BackendStats;

tokio::task_local! {
    /// The front door the current request came through.
    static DOOR: &'static str;
}

/// Runs `work` as a request that came through `door` (a listener's
/// protocol): its backend requests take that door's share of each gate.
pub async fn through_door<F: Future>(door: &'static str, work: F) -> F::Output {
    DOOR.scope(door, work).await
}

fn current_door() -> &'static str {
    DOOR.try_with(|d| *d).unwrap_or("")
}

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
    concurrency: usize,
    queue: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_flight: usize,
    next_ticket: u64,
    doors: HashMap<&'static str, Door>,
}

/// One front door's requests at one gate.
#[derive(Debug, Default)]
struct Door {
    in_flight: usize,
    /// Waiting requests in arrival order: their ticket and where to say "go".
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// A place in the gate: the request may run while it is held.
#[derive(Debug)]
pub struct Pass(Option<(Arc<Gate>, &'static str)>);

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some((gate, door)) = self.0.take() {
            gate.leave(door);
        }
    }
}

/// A waiter. When it stops waiting without taking its place (deadline,
/// cancelled) it leaves its door's queue, and a place given to it in the
/// meantime goes on to the next.
struct Waiting<'a> {
    gate: &'a Gate,
    door: &'static str,
    ticket: u64,
    go: oneshot::Receiver<()>,
    taken: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        {
            let mut state = self.gate.lock();
            if let Some(d) = state.doors.get_mut(self.door) {
                d.waiting.retain(|(t, _)| *t != self.ticket);
            }
        }
        if self.go.try_recv().is_ok() {
            self.gate.leave(self.door);
        }
    }
}

impl Limits {
    /// At most `concurrency` requests in flight per host (0: no limit),
    /// at most `queue` waiting per front door.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        Limits {
            concurrency,
            queue,
            gates: Mutex::default(),
        }
    }

    /// (requests in flight, requests waiting per front door) allowed per host.
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
    pub(crate) fn unlimited() -> Self {
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
                concurrency: self.concurrency,
                queue: self.queue,
                state: Mutex::default(),
            })
        }))
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// Waits for a place, at most `deadline`, as a request of the current
    /// front door. A full queue or a deadline passed while waiting is
    /// trouble ("could not find out"), never "no".
    pub async fn enter(self: &Arc<Self>, deadline: Duration) -> Result<Pass, BackendError> {
        if self.concurrency == 0 {
            return Ok(Pass(None));
        }
        let door = current_door();
        let (ticket, go) = {
            let mut state = self.lock();
            let nobody_waits = state.doors.values().all(|d| d.waiting.is_empty());
            if state.in_flight < self.concurrency && nobody_waits {
                state.in_flight += 1;
                state.doors.entry(door).or_default().in_flight += 1;
                return Ok(Pass(Some((Arc::clone(self), door))));
            }
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            let d = state.doors.entry(door).or_default();
            if d.waiting.len() >= self.queue {
                return Err(BackendError::Gate(GateError::Overloaded {
                    limit: self.concurrency,
                    waiting: self.queue,
                }));
            }
            let (tx, rx) = oneshot::channel();
            d.waiting.push_back((ticket, tx));
            (ticket, rx)
        };
        let mut waiting = Waiting {
            gate: self,
            door,
            ticket,
            go,
            taken: false,
        };
        match tokio::time::timeout(deadline, &mut waiting.go).await {
            // `leave` counted the place for this door before saying "go".
            Ok(Ok(())) => {
                waiting.taken = true;
                Ok(Pass(Some((Arc::clone(self), door))))
            }
            Ok(Err(_)) | Err(_) => Err(BackendError::Gate(GateError::QueueTimeout {
                limit: self.concurrency,
                waited: deadline,
            })),
        }
    }

    /// A request of `door` is done: its place goes to the waiting door
    /// with the fewest in flight (the first waiter there), or is free.
    fn leave(&self, door: &'static str) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if let Some(d) = state.doors.get_mut(door) {
            d.in_flight = d.in_flight.saturating_sub(1);
        }
        while state.in_flight < self.concurrency {
            let next = state
                .doors
                .iter()
                .filter(|(_, d)| !d.waiting.is_empty())
                .min_by_key(|(_, d)| (d.in_flight, d.waiting.front().map(|(t, _)| *t)))
                .map(|(name, _)| *name);
            let Some(name) = next else { break };
            let Some(d) = state.doors.get_mut(name) else {
                break;
            };
            let Some((_, go)) = d.waiting.pop_front() else {
                break;
            };
            // A waiter whose deadline passed meanwhile is gone: try the next.
            if go.send(()).is_ok() {
                d.in_flight += 1;
                state.in_flight += 1;
            }
        }
        state
            .doors
            .retain(|_, d| d.in_flight > 0 || !d.waiting.is_empty());
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().doors.values().map(|d| d.waiting.len()).sum()
    }
}

/// The gate and the counters around backend requests: a request waits for
/// a place at its backend's gate within its deadline, then its time (after
/// the wait) and its failure are counted. The HTTP client runs each HTTP
/// request through it; [`super::metered::Metered`] runs each call of a
/// backend that is not HTTP through it, so that such a backend gets both
/// with no code of its own.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    /// The gates, one per backend host (or name).
    pub limits: Arc<Limits>,
    /// What the requests through them did.
    pub stats: Arc<BackendStats>,
}

impl Meter {
    /// A meter over `limits`, with counters of its own.
    pub fn new(limits: Arc<Limits>) -> Self {
        Meter {
            limits,
            stats: Arc::default(),
        }
    }

    /// Runs `work` as one request to `key` (host:port, or a backend's
    /// name) once a place is free, within `deadline` for the wait and the
    /// work together: `work` gets what is left of it. A full queue or a
    /// deadline passed while waiting is trouble, and not counted as a
    /// request.
    pub async fn run<T, W, F>(
        &self,
        key: &str,
        deadline: Duration,
        work: W,
    ) -> Result<T, BackendError>
    where
        W: FnOnce(Duration) -> F,
        F: Future<Output = Result<T, BackendError>>,
    {
        let queued = Instant::now();
        let _pass = self.limits.gate(key).enter(deadline).await?;
        let started = Instant::now();
        let result = work(deadline.saturating_sub(queued.elapsed())).await;
        self.stats.latency.observe(started.elapsed());
        if result.is_err() {
            self.stats
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
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
            Err(BackendError::Gate(GateError::Overloaded { .. }))
        ));
        assert!(matches!(
            waiter.await.unwrap(),
            Err(BackendError::Gate(GateError::QueueTimeout { .. }))
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

    /// Issue 24: the gate was shared by all listeners, and a flood of
    /// Postfix lookups pushed Prosody logins to 10.1 s. Each front door has
    /// its own queue, and a freed place goes to the door with the fewest
    /// requests in flight: a login behind a flood of 200 lookups waits for
    /// one place, not for the flood.
    #[tokio::test]
    async fn a_flood_through_one_door_does_not_hold_up_another() {
        let limits = Limits::new(2, 500);
        let gate = limits.gate("h:1");
        let mut flood = Vec::new();
        for _ in 0..200 {
            let g = Arc::clone(&gate);
            flood.push(tokio::spawn(through_door("postfix", async move {
                let _pass = g.enter(Duration::from_secs(30)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            })));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gate.in_flight(), 2);
        let started = Instant::now();
        let login = through_door("generic", async {
            let _pass = gate.enter(Duration::from_secs(30)).await.unwrap();
            started.elapsed()
        })
        .await;
        assert!(
            login < Duration::from_millis(200),
            "the login waited {login:?} behind the flood"
        );
        // Its own queue: the flood's door full, another door still queues.
        let small = Limits::new(1, 1);
        let g = small.gate("h:1");
        let held = through_door("postfix", g.enter(Duration::from_secs(1)))
            .await
            .unwrap();
        let queued = {
            let g = Arc::clone(&g);
            tokio::spawn(through_door("postfix", async move {
                g.enter(Duration::from_secs(2)).await.map(drop)
            }))
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(
            through_door("postfix", g.enter(Duration::from_secs(1))).await,
            Err(BackendError::Gate(GateError::Overloaded { .. }))
        ));
        let other = {
            let g = Arc::clone(&g);
            tokio::spawn(through_door("generic", async move {
                g.enter(Duration::from_secs(2)).await.map(drop)
            }))
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            g.waiting(),
            2,
            "another door's request waits in its own queue"
        );
        drop(held);
        assert!(queued.await.unwrap().is_ok() && other.await.unwrap().is_ok());
        for f in flood {
            f.await.unwrap();
        }
        assert_eq!((gate.in_flight(), gate.waiting()), (0, 0));
        assert_eq!((g.in_flight(), g.waiting()), (0, 0));
    }

    /// A waiter cancelled just as it is given a place hands the place on.
    #[tokio::test]
    async fn a_cancelled_waiter_hands_its_place_on() {
        let limits = Limits::new(1, 10);
        let gate = limits.gate("h:1");
        let held = gate.enter(Duration::from_secs(1)).await.unwrap();
        let cancelled = {
            let g = Arc::clone(&gate);
            tokio::spawn(async move { g.enter(Duration::from_secs(5)).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancelled.abort();
        drop(held);
        let _ = cancelled.await;
        assert_eq!((gate.in_flight(), gate.waiting()), (0, 0));
        assert!(gate.enter(Duration::from_millis(50)).await.is_ok());
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
