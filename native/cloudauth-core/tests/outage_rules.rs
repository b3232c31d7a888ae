//! The password cache's outage rules: which troubles let a cached password
//! stand in for the backend, and what a refused password leaves behind.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudauth_core::backend::{Account, Backend, BackendError, BackendFuture, GateError};
use cloudauth_core::{Authenticator, FixedClock, OwnCause, Path, Trouble, Verdict};

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

const UP: u8 = 0;
const DOWN: u8 = 1;
const OVERLOADED: u8 = 2;
const QUEUE_TIMEOUT: u8 = 3;

/// A backend whose one user, alice, has a password the test changes (as
/// an admin does in Nextcloud), and which can be down or behind a full queue.
struct Cloud {
    password: Mutex<String>,
    mode: AtomicU8,
    asked: AtomicUsize,
}

impl Cloud {
    fn new() -> Arc<Self> {
        Arc::new(Cloud {
            password: Mutex::new("right".into()),
            mode: AtomicU8::new(UP),
            asked: AtomicUsize::new(0),
        })
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn authenticator(self: &Arc<Self>, clock: &Arc<FixedClock>) -> Authenticator {
        common::cached_authenticator(Arc::clone(self) as Arc<dyn Backend>, clock)
    }

    fn trouble(&self) -> Option<BackendError> {
        match self.mode.load(Ordering::SeqCst) {
            DOWN => Some(BackendError::ConnectionRefused {
                host: "cloud.test:443".into(),
            }),
            OVERLOADED => Some(BackendError::Gate(GateError::Overloaded {
                limit: 8,
                waiting: 64,
            })),
            QUEUE_TIMEOUT => Some(BackendError::Gate(GateError::QueueTimeout {
                limit: 8,
                waited: Duration::from_secs(5),
            })),
            _ => None,
        }
    }
}

impl Backend for Cloud {
    fn name(&self) -> &'static str {
        "cloud"
    }
    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = match self.trouble() {
            Some(e) => Err(e),
            None => Ok(who.user == "alice" && *self.password.lock().unwrap() == password),
        };
        Box::pin(async move { answer })
    }
    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        let answer = match self.trouble() {
            Some(e) => Err(e),
            None => Ok(who.user == "alice"),
        };
        Box::pin(async move { answer })
    }
}

async fn auth(a: &Authenticator, password: &str) -> (Verdict, Path) {
    let d = a.auth("alice", "example.org", password).await;
    (d.verdict, d.path)
}

#[tokio::test]
async fn own_overload_is_no_outage_for_the_cache() {
    let cloud = Cloud::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    // Two days on the row is past the verification TTL: only the outage
    // rules could admit it.
    clock.set(NOW + 2 * DAY);
    for mode in [OVERLOADED, QUEUE_TIMEOUT] {
        cloud.set(mode);
        let (verdict, path) = auth(&a, "right").await;
        assert!(
            matches!(
                verdict,
                Verdict::Trouble(Trouble::Own(OwnCause::Queue(
                    GateError::Overloaded { .. } | GateError::QueueTimeout { .. }
                )))
            ),
            "a full queue at this server is no unreachable backend: {verdict:?} by {path:?}"
        );
    }
    // The backend itself down: the week-long outage rule stands in.
    cloud.set(DOWN);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Fallback));
}

#[test]
fn which_errors_mean_the_backend_could_not_be_reached() {
    let unreachable = [
        BackendError::ConnectionRefused { host: "h".into() },
        BackendError::Timeout(Duration::from_secs(5)),
        BackendError::HttpStatus {
            status: 503,
            snippet: String::new(),
        },
        BackendError::Blocked { host: "h".into() },
    ];
    let own = [
        BackendError::Gate(GateError::Overloaded {
            limit: 1,
            waiting: 1,
        }),
        BackendError::Gate(GateError::QueueTimeout {
            limit: 1,
            waited: Duration::from_secs(1),
        }),
    ];
    assert!(unreachable.iter().all(BackendError::backend_unreachable));
    assert!(!own.iter().any(BackendError::backend_unreachable));
    // The gate's refusals reach the verdict as the decision's own causes;
    // its guessing pause and local state are no backend error at all.
    for e in own {
        assert!(matches!(Trouble::from(e), Trouble::Own(OwnCause::Queue(_))));
    }
    for e in unreachable {
        assert!(matches!(Trouble::from(e), Trouble::Backend(_)));
    }
}

#[tokio::test]
async fn a_refused_password_leaves_no_row_to_admit_it_in_an_outage() {
    let cloud = Cloud::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    // The admin changes alice's password; two days later the old one is
    // past the verification TTL, goes to the backend and is refused.
    *cloud.password.lock().unwrap() = "changed".into();
    clock.set(NOW + 2 * DAY);
    assert_eq!(auth(&a, "right").await, (Verdict::No, Path::Backend));
    // Past the refusal memory, with the backend down: the old password
    // must not come back through the outage rules.
    clock.set(NOW + 2 * DAY + 60);
    cloud.set(DOWN);
    let (verdict, path) = auth(&a, "right").await;
    assert!(
        matches!(verdict, Verdict::Trouble(_)),
        "a refused password was admitted by its old row: {verdict:?} by {path:?}"
    );
    assert!(!a.cache().unwrap().knows("alice@example.org"));
}

#[tokio::test]
async fn a_wrong_guess_leaves_the_owners_row() {
    let cloud = Cloud::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    clock.set(NOW + 2 * DAY);
    assert_eq!(auth(&a, "guess").await, (Verdict::No, Path::Backend));
    clock.set(NOW + 2 * DAY + 60);
    cloud.set(DOWN);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Fallback));
}
