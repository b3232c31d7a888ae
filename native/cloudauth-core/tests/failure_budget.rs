//! The failure budget in the decision: a backend whose service counts failed
//! logins against the server's address (Nextcloud 32/34 block it after 10
//! within 30 minutes) never gets that far, the likeliest successes are
//! served first, and a withheld check is "cannot tell", never "no".

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudauth_core::backend::{Account, Backend, BackendError, BackendFuture};
use cloudauth_core::bruteforce::{FailureBudget, Outcome};
use cloudauth_core::{Authenticator, FixedClock, Path, Trouble, Verdict};

const NOW: u64 = 1_800_000_000;
/// Nextcloud's `auth.bruteforce.max-attempts`.
const MAX_ATTEMPTS: u32 = 10;

/// Nextcloud's side, as the shared notes record it for 32/34: every
/// refused login is one failure for the (single) client address; a success
/// deletes that login name's failures; more than `MAX_ATTEMPTS` block
/// every request. `right-<user>` is each user's password.
struct Ledger {
    failures: Mutex<Vec<String>>,
    most: AtomicUsize,
    asked: AtomicUsize,
    budget: FailureBudget,
}

impl Ledger {
    fn new() -> Arc<Self> {
        Arc::new(Ledger {
            failures: Mutex::default(),
            most: AtomicUsize::new(0),
            asked: AtomicUsize::new(0),
            budget: FailureBudget::new("test", MAX_ATTEMPTS).unwrap(),
        })
    }

    /// The most failures Nextcloud held at once.
    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    fn authenticator(self: &Arc<Self>, clock: &Arc<FixedClock>) -> Authenticator {
        common::cached_authenticator(Arc::clone(self) as Arc<dyn Backend>, clock)
    }
}

impl Backend for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }
    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        // As the nextcloud backend does: during a block, one probe per interval.
        if self.budget.may_send(who.client).is_err() {
            return Box::pin(std::future::ready(Err(BackendError::Blocked {
                host: "test".into(),
            })));
        }
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mut failures = self.failures.lock().unwrap();
        let answer = if failures.len() > MAX_ATTEMPTS as usize {
            self.budget.record(who.user, who.client, Outcome::Blocked);
            Err(BackendError::Blocked {
                host: "test".into(),
            })
        } else if password == format!("right-{}", who.user) {
            failures.retain(|u| u != who.user);
            self.budget.record(who.user, who.client, Outcome::Accepted);
            Ok(true)
        } else {
            failures.push(who.user.to_string());
            self.most.fetch_max(failures.len(), Ordering::SeqCst);
            self.budget.record(who.user, who.client, Outcome::Failed);
            Ok(false)
        };
        Box::pin(std::future::ready(answer))
    }
    fn is_user<'a>(&'a self, _who: Account<'a>) -> BackendFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }
    fn repeat_refusal_window(&self) -> Option<Duration> {
        Some(Duration::from_secs(4 * 3600))
    }
    fn failure_budget(&self) -> Option<&FailureBudget> {
        Some(&self.budget)
    }
}

#[tokio::test]
async fn one_user_guessing_never_gets_the_address_blocked_nor_others_locked_out() {
    let ledger = Ledger::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = ledger.authenticator(&clock);
    assert!(a
        .auth("alice", "x.org", "right-alice")
        .await
        .verdict
        .is_yes());
    let mut answers = Vec::new();
    for i in 0..30 {
        let d = a.auth("mallory", "x.org", &format!("guess-{i}")).await;
        answers.push((d.verdict.word(), d.path));
    }
    // One name holds at most 3 failures, then its checks are withheld.
    assert_eq!(ledger.most(), 3, "failures recorded at Nextcloud");
    assert!(answers[..3].iter().all(|a| *a == ("no", Path::Backend)));
    assert!(
        answers[3..]
            .iter()
            .all(|a| *a == ("trouble", Path::Withheld)),
        "withheld checks are \"cannot tell\", never no: {answers:?}"
    );
    // The others still get in, a first login included.
    assert!(a
        .auth("alice", "x.org", "right-alice")
        .await
        .verdict
        .is_yes());
    assert!(a.auth("bob", "x.org", "right-bob").await.verdict.is_yes());
    // Names sprayed: unknown names spend at most 8 - 3, the rest is kept
    // for users who logged in before.
    for i in 0..20 {
        let d = a.auth(&format!("spray{i}"), "x.org", "123456").await;
        assert_ne!(d.verdict, Verdict::Yes);
    }
    assert_eq!(ledger.most(), 5);
    let d = a.auth("frank", "x.org", "right-frank").await;
    assert!(
        matches!(
            d.verdict,
            Verdict::Trouble(Trouble::Backend(BackendError::FailuresBudgetSpent { .. }))
        ),
        "an unknown name now waits, never \"no\": {d:?}"
    );
    assert!(a
        .auth("alice", "x.org", "right-alice")
        .await
        .verdict
        .is_yes());
}

#[tokio::test]
async fn twenty_users_mistyping_once_all_get_in_and_nextcloud_never_blocks() {
    let ledger = Ledger::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = ledger.authenticator(&clock);
    let users: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
    for u in &users {
        assert!(a
            .auth(u, "x.org", &format!("right-{u}"))
            .await
            .verdict
            .is_yes());
    }
    // Every one mistypes once within the same half hour…
    for u in &users {
        let d = a.auth(u, "x.org", "typo").await;
        assert_ne!(d.verdict, Verdict::Yes);
    }
    assert!(
        ledger.most() <= 8,
        "Nextcloud held {} failures",
        ledger.most()
    );
    // …and then types right: nobody is refused.
    for u in &users {
        let d = a.auth(u, "x.org", &format!("right-{u}")).await;
        assert!(d.verdict.is_yes(), "{u}: {d:?}");
    }
    assert!(ledger.most() <= 8);
}

#[tokio::test]
async fn twenty_new_users_with_a_typo_each_all_get_in() {
    let ledger = Ledger::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = ledger.authenticator(&clock);
    for i in 0..20 {
        let u = format!("new{i}");
        let typo = a.auth(&u, "x.org", "typo").await;
        assert_ne!(typo.verdict, Verdict::Yes);
        let d = a.auth(&u, "x.org", &format!("right-{u}")).await;
        assert!(d.verdict.is_yes(), "{u}: {d:?}");
    }
    assert!(ledger.most() <= 8, "Nextcloud held {}", ledger.most());
    // Typos first, then the right passwords: the typos beyond the unknown
    // names' share wait, the retries of the ones sent get in.
    let ledger = Ledger::new();
    let a = ledger.authenticator(&clock);
    let users: Vec<String> = (0..20).map(|i| format!("late{i}")).collect();
    for u in &users {
        assert_ne!(a.auth(u, "x.org", "typo").await.verdict, Verdict::Yes);
    }
    assert_eq!(ledger.most(), 5);
    for u in &users {
        let d = a.auth(u, "x.org", &format!("right-{u}")).await;
        assert!(d.verdict.is_yes(), "{u}: {d:?}");
    }
    assert_eq!(ledger.failures.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_stale_password_is_sent_once_and_the_right_one_still_goes_through() {
    let ledger = Ledger::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = ledger.authenticator(&clock);
    assert!(a
        .auth("carol", "x.org", "right-carol")
        .await
        .verdict
        .is_yes());
    let asked = ledger.asked();
    // A phone with the old password retries every five minutes for three hours.
    for _ in 0..36 {
        let d = a.auth("carol", "x.org", "old-password").await;
        assert_eq!(d.verdict, Verdict::No);
        clock.advance(300);
    }
    assert_eq!(ledger.asked() - asked, 1, "sent to Nextcloud once");
    assert_eq!(ledger.most(), 1);
    assert!(a
        .auth("carol", "x.org", "right-carol")
        .await
        .verdict
        .is_yes());
}

#[tokio::test]
async fn a_block_already_on_is_named_and_cached_passwords_still_work() {
    let ledger = Ledger::new();
    let clock = Arc::new(FixedClock::new(NOW));
    let a = ledger.authenticator(&clock);
    assert!(a.auth("dave", "x.org", "right-dave").await.verdict.is_yes());
    // Another client at this address got it blocked.
    ledger
        .failures
        .lock()
        .unwrap()
        .extend((0..11).map(|i| format!("web{i}")));
    let d = a.auth("erin", "x.org", "right-erin").await;
    assert!(
        matches!(
            d.verdict,
            Verdict::Trouble(Trouble::Backend(BackendError::Blocked { .. }))
        ),
        "{d:?}"
    );
    let asked = ledger.asked();
    for i in 0..10 {
        let d = a.auth(&format!("other{i}"), "x.org", "pw").await;
        assert!(matches!(d.verdict, Verdict::Trouble(_)), "{d:?}");
    }
    // Cached: dave still gets in.
    assert!(a.auth("dave", "x.org", "right-dave").await.verdict.is_yes());
    assert_eq!(
        ledger.asked() - asked,
        0,
        "nothing reached Nextcloud within the probe interval"
    );
}
