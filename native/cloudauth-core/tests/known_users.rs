//! Known users (`isuser` without the backend, also while it is down) and
//! the revalidation of cached passwords in the background.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudauth_core::backend::{Account, Backend, BackendError, BackendFuture};
use cloudauth_core::bruteforce::{FailureBudget, Prospect};
use cloudauth_core::known_users::{KnownTtls, KnownUsers, MemoryKnown};
use cloudauth_core::{Authenticator, FixedClock, Path, Verdict};

const NOW: u64 = 1_800_000_000;
const REFRESH: u64 = 3600;
const REVALIDATE: u64 = 900;

/// A cloud with users and their passwords (the test edits them as an
/// admin does), which counts its questions and can be down.
struct Cloud {
    users: Mutex<HashMap<String, String>>,
    down: AtomicBool,
    auths: AtomicUsize,
    isusers: AtomicUsize,
    budget: Option<FailureBudget>,
}

impl Cloud {
    fn new(budget: Option<FailureBudget>) -> Arc<Self> {
        Arc::new(Cloud {
            users: Mutex::new(HashMap::from([("alice".into(), "right".into())])),
            down: AtomicBool::new(false),
            auths: AtomicUsize::new(0),
            isusers: AtomicUsize::new(0),
            budget,
        })
    }

    fn authenticator(self: &Arc<Self>, clock: &Arc<FixedClock>) -> Authenticator {
        let known = KnownUsers::new(
            Box::new(MemoryKnown::default()),
            KnownTtls {
                ttl: Duration::from_secs(30 * 86_400),
                refresh: Duration::from_secs(REFRESH),
            },
        );
        common::cached_authenticator(Arc::clone(self) as Arc<dyn Backend>, clock)
            .with_known_users(known)
            .with_revalidation(Duration::from_secs(REVALIDATE))
    }

    fn isusers(&self) -> usize {
        self.isusers.load(Ordering::SeqCst)
    }
    fn auths(&self) -> usize {
        self.auths.load(Ordering::SeqCst)
    }
    fn trouble(&self) -> Option<BackendError> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| BackendError::ConnectionRefused {
                host: "cloud.test:443".into(),
            })
    }
}

impl Backend for Cloud {
    fn name(&self) -> &'static str {
        "cloud"
    }
    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        self.auths.fetch_add(1, Ordering::SeqCst);
        let answer = match self.trouble() {
            Some(e) => Err(e),
            None => {
                Ok(self.users.lock().unwrap().get(who.user).map(String::as_str) == Some(password))
            }
        };
        Box::pin(async move { answer })
    }
    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        self.isusers.fetch_add(1, Ordering::SeqCst);
        let answer = match self.trouble() {
            Some(e) => Err(e),
            None => Ok(self.users.lock().unwrap().contains_key(who.user)),
        };
        Box::pin(async move { answer })
    }
    fn failure_budget(&self) -> Option<&FailureBudget> {
        self.budget.as_ref()
    }
}

/// Waits (a little) until `done` holds: background checks run on the runtime.
async fn eventually(done: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

async fn isuser(a: &Authenticator, user: &str) -> Verdict {
    a.is_user(user, "example.org").await.verdict
}

async fn auth(a: &Authenticator, password: &str) -> (Verdict, Path) {
    let d = a.auth("alice", "example.org", password).await;
    (d.verdict, d.path)
}

#[tokio::test]
async fn a_known_user_exists_without_the_backend_also_while_it_is_down() {
    let cloud = Cloud::new(None);
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    // Known from a login.
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    cloud.down.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(isuser(&a, "alice").await, Verdict::Yes);
    }
    assert_eq!(cloud.isusers(), 0, "a known user costs the backend nothing");
    // Unknown users are still "cannot tell" while it is down, never "no".
    assert!(matches!(isuser(&a, "bob").await, Verdict::Trouble(_)));
}

#[tokio::test]
async fn an_isuser_yes_makes_a_user_known_and_a_no_is_asked_once() {
    let cloud = Cloud::new(None);
    cloud
        .users
        .lock()
        .unwrap()
        .insert("carol".into(), "c".into());
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    for _ in 0..20 {
        assert_eq!(isuser(&a, "carol").await, Verdict::Yes);
        assert_eq!(isuser(&a, "nobody").await, Verdict::No);
    }
    assert_eq!(cloud.isusers(), 2, "one question per name");
    // Past the window a "no" is asked again (the name may exist now).
    clock.advance(61);
    cloud
        .users
        .lock()
        .unwrap()
        .insert("nobody".into(), "n".into());
    assert_eq!(isuser(&a, "nobody").await, Verdict::Yes);
}

#[tokio::test]
async fn a_due_refresh_answers_at_once_and_a_no_drops_the_user_and_his_password() {
    let cloud = Cloud::new(None);
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    // Refresh due, and the admin deleted alice meanwhile.
    clock.advance(REFRESH + 1);
    cloud.users.lock().unwrap().clear();
    for _ in 0..20 {
        // Answered at once; one background question for all of them.
        let _ = isuser(&a, "alice").await;
    }
    assert!(eventually(|| !a.cache().unwrap().knows("alice@example.org")).await);
    assert!(
        cloud.isusers() <= 2,
        "refreshes coalesced: {}",
        cloud.isusers()
    );
    assert_eq!(isuser(&a, "alice").await, Verdict::No);
    // Her cached password is gone: not admitted even while the backend is down.
    cloud.down.store(true, Ordering::SeqCst);
    assert!(matches!(auth(&a, "right").await.0, Verdict::Trouble(_)));
}

#[tokio::test]
async fn a_changed_password_stops_working_after_revalidation_the_new_one_at_once() {
    let cloud = Cloud::new(None);
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    clock.advance(60);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Cache));
    assert_eq!(
        cloud.auths(),
        1,
        "within the revalidation interval: no question"
    );
    cloud
        .users
        .lock()
        .unwrap()
        .insert("alice".into(), "new".into());
    // Past the interval: still admitted at once, re-checked in the background.
    clock.advance(REVALIDATE);
    assert!(
        a.check_cache("alice", "example.org", "right").is_none(),
        "the quick check leaves a due hit to the path that revalidates it"
    );
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Cache));
    assert!(eventually(|| !a.cache().unwrap().knows("alice@example.org")).await);
    assert_eq!(auth(&a, "right").await, (Verdict::No, Path::Backend));
    assert_eq!(auth(&a, "new").await, (Verdict::Yes, Path::Backend));
}

#[tokio::test]
async fn a_revalidation_the_failure_budget_withholds_is_skipped_not_a_no() {
    let cloud = Cloud::new(FailureBudget::new("test", 1));
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    let budget = cloud.budget.as_ref().unwrap();
    // Another check in flight holds the whole budget.
    let held = budget.admit("someone", None, Prospect::Likely).unwrap();
    cloud
        .users
        .lock()
        .unwrap()
        .insert("alice".into(), "new".into());
    clock.advance(REVALIDATE + 1);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Cache));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cloud.auths(), 1, "withheld: not sent");
    assert!(
        a.cache().unwrap().knows("alice@example.org"),
        "skipped, not a no"
    );
    drop(held);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Cache));
    assert!(eventually(|| !a.cache().unwrap().knows("alice@example.org")).await);
}

#[tokio::test]
async fn forget_drops_the_cached_password_and_the_known_user() {
    let cloud = Cloud::new(None);
    let clock = Arc::new(FixedClock::new(NOW));
    let a = cloud.authenticator(&clock);
    assert_eq!(auth(&a, "right").await, (Verdict::Yes, Path::Backend));
    assert_eq!(
        a.forget("Alice", "example.org"),
        Ok("alice@example.org".into())
    );
    assert!(!a.cache().unwrap().knows("alice@example.org"));
    assert_eq!(isuser(&a, "alice").await, Verdict::Yes);
    assert_eq!(
        cloud.isusers(),
        1,
        "forgotten: the next isuser asks the backend"
    );
}
