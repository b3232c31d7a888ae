//! The account sweep: known users re-checked in batches; a "no" drops the
//! user and logs his departure, trouble changes nothing.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudauth_core::backend::{Account, Backend, BackendError, BackendFuture};
use cloudauth_core::known_users::{KnownTtls, KnownUsers, MemoryKnown};
use cloudauth_core::{Authenticator, FixedClock, Path, Verdict};

const NOW: u64 = 1_800_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Account_ {
    Enabled,
    /// Deleted or disabled: `isuser` says no.
    Gone,
    /// The backend cannot tell about him (a 5xx, a timeout).
    Trouble,
}

/// A cloud whose `isuser` takes a moment and counts the questions in flight.
struct Cloud {
    users: Mutex<HashMap<String, Account_>>,
    isusers: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Cloud {
    fn new(n: usize) -> Arc<Self> {
        let users = (0..n)
            .map(|i| (format!("u{i}"), Account_::Enabled))
            .collect();
        Arc::new(Cloud {
            users: Mutex::new(users),
            isusers: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        })
    }
    fn set(&self, user: &str, a: Account_) {
        self.users.lock().unwrap().insert(user.into(), a);
    }
}

impl Backend for Cloud {
    fn name(&self) -> &'static str {
        "cloud"
    }
    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        let ok = password == "right"
            && self.users.lock().unwrap().get(who.user) == Some(&Account_::Enabled);
        Box::pin(async move { Ok(ok) })
    }
    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        self.isusers.fetch_add(1, Ordering::SeqCst);
        let state = self.users.lock().unwrap().get(who.user).copied();
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            match state {
                Some(Account_::Enabled) => Ok(true),
                None | Some(Account_::Gone) => Ok(false),
                Some(Account_::Trouble) => Err(BackendError::Timeout(Duration::from_secs(10))),
            }
        })
    }
}

fn authenticator(cloud: &Arc<Cloud>, batch: usize) -> Authenticator {
    let clock = Arc::new(FixedClock::new(NOW));
    let known = KnownUsers::new(
        Box::new(MemoryKnown::default()),
        KnownTtls {
            ttl: Duration::from_secs(30 * 86_400),
            refresh: Duration::from_secs(3600),
        },
    );
    common::cached_authenticator(Arc::clone(cloud) as Arc<dyn Backend>, &clock)
        .with_known_users(known)
        .with_sweep_batch(batch)
}

async fn login(a: &Authenticator, user: &str) -> (Verdict, Path) {
    let d = a.auth(user, "example.org", "right").await;
    (d.verdict, d.path)
}

#[tokio::test]
async fn a_no_drops_the_user_and_logs_his_departure_trouble_changes_nothing() {
    let cloud = Cloud::new(3);
    let a = authenticator(&cloud, 4);
    for u in ["u0", "u1", "u2"] {
        assert_eq!(login(&a, u).await, (Verdict::Yes, Path::Backend));
    }
    // u1 wrong password remembered; it must go with him.
    let wrong = a.auth("u1", "example.org", "wrong").await;
    assert_eq!(wrong.verdict, Verdict::No);
    let v0 = a.departures().version();
    cloud.set("u1", Account_::Gone);
    cloud.set("u2", Account_::Trouble);
    let report = a.sweep().await;
    assert_eq!(report.checked, 3);
    assert_eq!(report.departed, ["u1@example.org"]);
    assert_eq!(report.present, ["u0@example.org"]);
    assert_eq!(report.undecided, 1);
    let since = a.departures().since(v0, Some("example.org"), 100);
    assert_eq!(since.jids, ["u1@example.org"]);
    assert!(since.complete && since.version > v0);
    // u1: no cached password, not known; his password is asked again (and refused).
    let cache = a.cache().unwrap();
    assert!(!cache.knows("u1@example.org"));
    assert!(cache.knows("u2@example.org"), "trouble keeps his row");
    assert!(cache.knows("u0@example.org"));
    let known = a.known_users().unwrap();
    assert_eq!(
        known.listed(NOW).unwrap(),
        ["u0@example.org", "u2@example.org"]
    );
    assert_eq!(login(&a, "u1").await, (Verdict::No, Path::Backend));
    // u2 still logs in from the cache while the cloud cannot tell.
    assert_eq!(login(&a, "u2").await.0, Verdict::Yes);
    // The next sweep asks only those still known.
    let before = cloud.isusers.load(Ordering::SeqCst);
    let again = a.sweep().await;
    assert_eq!(again.checked, 2);
    assert_eq!(cloud.isusers.load(Ordering::SeqCst) - before, 2);
    assert!(a
        .departures()
        .since(since.version, None, 100)
        .jids
        .is_empty());
}

#[tokio::test]
async fn a_sweep_keeps_to_its_batch() {
    let cloud = Cloud::new(40);
    let a = authenticator(&cloud, 3);
    for i in 0..40 {
        let _ = a.is_user(&format!("u{i}"), "example.org").await;
    }
    cloud.most_in_flight.store(0, Ordering::SeqCst);
    let report = a.sweep().await;
    assert_eq!(report.checked, 40);
    assert_eq!(report.present.len(), 40);
    let most = cloud.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= 3, "at most the batch in flight, saw {most}");
    assert!(most >= 2, "the batch runs side by side, saw {most}");
}

#[tokio::test]
async fn forget_drops_the_refusal_memory_too() {
    let cloud = Cloud::new(1);
    let a = authenticator(&cloud, 4);
    assert_eq!(
        a.auth("u0", "example.org", "right2").await.verdict,
        Verdict::No
    );
    // The same wrong password again: answered from memory, not asked.
    assert_eq!(
        a.auth("u0", "example.org", "right2").await.path,
        Path::Recent
    );
    a.forget("u0", "example.org").unwrap();
    assert_eq!(
        a.auth("u0", "example.org", "right2").await.path,
        Path::Backend
    );
}
