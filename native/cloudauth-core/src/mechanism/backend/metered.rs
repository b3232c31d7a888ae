//! The request gate and the backend counters as a layer around any
//! backend: [`Metered`] runs each call of the backend it wraps through the
//! process's [`Meter`] (the same gates and counters the HTTP client uses),
//! so a backend that does not talk HTTP gets the limit on requests in
//! flight, the fair queue per front door and the latency and failure
//! counters without code of its own.

use std::sync::Arc;
use std::time::Duration;

use super::gate::Meter;
use super::{Account, Backend, BackendFuture, DoctorFuture, HttpClient, Transport};
use crate::roster::SharedRoster;

/// A backend whose every call (`auth`, `is_user`, `shared_roster`) waits for
/// a place at the gate named after the backend, within `deadline`, and is
/// counted.
pub(crate) struct Metered {
    inner: Arc<dyn Backend>,
    meter: Meter,
    deadline: Duration,
}

impl Metered {
    /// `inner` behind `meter`'s gate named `inner.name()`, waiting at most
    /// `deadline` for a place.
    pub fn new(inner: Arc<dyn Backend>, meter: Meter, deadline: Duration) -> Self {
        Metered {
            inner,
            meter,
            deadline,
        }
    }
}

/// `backend` as the assembly runs it: as built when its transport gates and
/// counts its own requests (HTTP), else [`Metered`] with `http`'s gates,
/// counters and request deadline.
pub(crate) fn as_run(
    transport: Transport,
    backend: Arc<dyn Backend>,
    http: &HttpClient,
) -> Arc<dyn Backend> {
    match transport {
        Transport::Http => backend,
        Transport::Other => Arc::new(Metered::new(
            backend,
            http.meter().clone(),
            http.timeouts().total,
        )),
    }
}

impl Backend for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(self.meter.run(self.inner.name(), self.deadline, move |_| {
            self.inner.auth(who, password)
        }))
    }

    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        Box::pin(self.meter.run(self.inner.name(), self.deadline, move |_| {
            self.inner.is_user(who)
        }))
    }

    fn shared_roster<'a>(&'a self, who: Account<'a>) -> Option<BackendFuture<'a, SharedRoster>> {
        let fetch = self.inner.shared_roster(who)?;
        Some(Box::pin(self.meter.run(
            self.inner.name(),
            self.deadline,
            move |_| fetch,
        )))
    }

    fn repeat_refusal_window(&self) -> Option<Duration> {
        self.inner.repeat_refusal_window()
    }

    fn answer_depends_on_domain(&self) -> bool {
        self.inner.answer_depends_on_domain()
    }

    fn doctor<'a>(&'a self, domain: &'a str) -> DoctorFuture<'a> {
        self.inner.doctor(domain)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::backend::gate::Limits;
    use crate::backend::{BackendError, GateError, Timeouts};

    /// A backend that is not HTTP and has no gate or counter of its own:
    /// it answers after `delay`, "yes" unless it is told to fail.
    struct Tiny {
        delay: Duration,
        fail: bool,
        calls: AtomicUsize,
    }

    impl Backend for Tiny {
        fn name(&self) -> &'static str {
            "tiny"
        }

        fn auth<'a>(&'a self, _: Account<'a>, _: &'a str) -> BackendFuture<'a, bool> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.delay).await;
                if self.fail {
                    Err(BackendError::Unsupported("tiny fails"))
                } else {
                    Ok(true)
                }
            })
        }

        fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
            self.auth(who, "")
        }
    }

    const WHO: Account<'static> = Account::new("alice", "example.org");

    fn client(concurrency: usize, queue: usize) -> HttpClient {
        HttpClient::with_limits(
            Timeouts {
                connect: Duration::from_secs(1),
                total: Duration::from_secs(5),
            },
            Arc::new(Limits::new(concurrency, queue)),
        )
    }

    fn tiny(delay: Duration, fail: bool) -> Arc<Tiny> {
        Arc::new(Tiny {
            delay,
            fail,
            calls: AtomicUsize::new(0),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_is_not_http_gets_the_gate_and_the_counters() {
        let http = client(1, 1);
        let inner = tiny(Duration::from_millis(200), false);
        let backend = as_run(Transport::Other, inner.clone(), &http);
        let first = tokio::spawn({
            let b = Arc::clone(&backend);
            async move { b.auth(WHO, "pw").await }
        });
        let second = tokio::spawn({
            let b = Arc::clone(&backend);
            async move { b.is_user(WHO).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One in flight, one waiting: the gate named after the backend.
        let gate = http.limits().gate("tiny");
        assert_eq!((gate.in_flight(), gate.waiting()), (1, 1));
        assert_eq!(inner.calls.load(Ordering::Relaxed), 1);
        // The queue (one place) is full: trouble, never "no", not asked.
        let third = backend.auth(WHO, "pw").await;
        assert!(
            matches!(
                third,
                Err(BackendError::Gate(GateError::Overloaded {
                    limit: 1,
                    waiting: 1
                }))
            ),
            "{third:?}"
        );
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(true));
        assert_eq!(inner.calls.load(Ordering::Relaxed), 2);
        // Both calls counted, as the HTTP client counts its requests.
        assert_eq!(http.stats().latency.count(), 2);
        assert_eq!(http.stats().failures.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn its_failures_are_counted() {
        let http = client(4, 10);
        let backend = as_run(Transport::Other, tiny(Duration::ZERO, true), &http);
        assert!(backend.auth(WHO, "pw").await.is_err());
        assert_eq!(http.stats().latency.count(), 1);
        assert_eq!(http.stats().failures.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http_backend_is_run_as_built() {
        // Its HTTP client gates and counts each request already.
        let http = client(1, 0);
        let inner: Arc<dyn Backend> = tiny(Duration::ZERO, false);
        let run = as_run(Transport::Http, Arc::clone(&inner), &http);
        assert!(Arc::ptr_eq(&run, &inner));
        assert_eq!(run.auth(WHO, "pw").await, Ok(true));
        assert_eq!(http.stats().latency.count(), 0);
    }
}
