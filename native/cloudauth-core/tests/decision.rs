//! The auth decision: token first, then the cloud, with an injected clock.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cloudauth_core::backend::{Account, Backend, BackendError, BackendFuture};
use cloudauth_core::domains::Builder;
use cloudauth_core::settings::values::Values;
use cloudauth_core::settings::DomainSettings;
use cloudauth_core::token::TokenFormat;
use cloudauth_core::{
    token, Authenticator, FixedClock, Path, Secret, SingleDomain, Timeouts, Verdict,
};
use common::{json, start, Server};

const NOW: u64 = 1_800_000_000;

async fn backend() -> Server {
    start(|req| {
        let body = String::from_utf8_lossy(&req.body).to_string();
        if body.starts_with("operation=isuser") {
            let yes = body.contains("username=alice");
            json(
                200,
                &format!(r#"{{"result":"success","data":{{"isUser":{yes}}}}}"#),
            )
        } else if body.contains("username=alice") && body.ends_with("password=right") {
            json(200, r#"{"result":"success","data":{"uid":"alice"}}"#)
        } else {
            json(200, r#"{"result":"noauth"}"#)
        }
    })
    .await
}

fn authenticator(url: &str, clock: Arc<FixedClock>) -> Authenticator {
    let values = Values::from_pairs(&[("url", url), ("secret", "k")]).expect("settings");
    let settings = builder().build(&values).expect("domain");
    Authenticator::new(Arc::new(SingleDomain(settings)), clock)
}

fn builder() -> Builder {
    Builder::new(Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(2),
    })
}

/// A backend inside the test that counts its questions: "right" is alice's
/// password; `down` makes every answer trouble; `refusal_window` is the
/// time it wants a refused password kept from it (as a throttling Nextcloud
/// does), if any.
struct Counting {
    asked: AtomicUsize,
    down: AtomicBool,
    refusal_window: Option<Duration>,
    /// What it says of itself: whether its answer may depend on the domain.
    domain_matters: bool,
}

impl Counting {
    fn new(refusal_window: Option<Duration>) -> Arc<Self> {
        Arc::new(Counting {
            asked: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            refusal_window,
            domain_matters: true,
        })
    }

    /// A backend that says it checks the user part alone (as Nextcloud).
    fn ignoring_domains() -> Arc<Self> {
        Arc::new(Counting {
            asked: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            refusal_window: None,
            domain_matters: false,
        })
    }

    /// This backend's settings as global ones: every domain served, none listed.
    fn global_settings(self: &Arc<Self>) -> Arc<Unlisted> {
        Arc::new(Unlisted(Arc::new(DomainSettings {
            backend: Arc::clone(self) as Arc<dyn Backend>,
            tokens: Vec::new(),
            auth_domain: None,
            values: Values::default(),
            generation: 1,
        })))
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    /// An authenticator with this backend (and `tokens`) for every domain.
    fn authenticator(
        self: &Arc<Self>,
        tokens: Vec<Arc<dyn TokenFormat>>,
        clock: &Arc<FixedClock>,
    ) -> Authenticator {
        let settings = DomainSettings {
            backend: Arc::clone(self) as Arc<dyn Backend>,
            tokens,
            auth_domain: None,
            values: Values::default(),
            generation: 1,
        };
        Authenticator::new(
            Arc::new(SingleDomain::new(settings)),
            Arc::clone(clock) as Arc<dyn cloudauth_core::Clock>,
        )
    }
}

impl Backend for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let down = self.down.load(Ordering::SeqCst);
        let yes = who.user == "alice" && password == "right";
        Box::pin(async move {
            if down {
                Err(BackendError::Timeout(Duration::from_secs(1)))
            } else {
                Ok(yes)
            }
        })
    }
    fn is_user<'a>(&'a self, _who: Account<'a>) -> BackendFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }
    fn repeat_refusal_window(&self) -> Option<Duration> {
        self.refusal_window
    }
    fn answer_depends_on_domain(&self) -> bool {
        self.domain_matters
    }
}

/// Global settings only: any domain is served, none has settings of its own.
struct Unlisted(Arc<DomainSettings>);

impl cloudauth_core::settings::SettingsResolver for Unlisted {
    fn resolve(&self, _xmpp_domain: &str) -> Option<Arc<DomainSettings>> {
        Some(Arc::clone(&self.0))
    }
    fn listed(&self, _xmpp_domain: &str) -> bool {
        false
    }
}

#[tokio::test]
async fn valid_token_never_reaches_the_cloud() {
    let srv = backend().await;
    let a = authenticator(&srv.url, Arc::new(FixedClock::new(NOW)));
    let t = token::mint(&Secret::new("k"), "alice", "example.org", NOW + 60);
    let d = a.auth("alice", "example.org", &t).await;
    assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Token));
    assert!(srv.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn expiry_follows_the_clock_per_request() {
    let srv = backend().await;
    let clock = Arc::new(FixedClock::new(NOW));
    let a = authenticator(&srv.url, Arc::clone(&clock));
    let t = token::mint(&Secret::new("k"), "alice", "example.org", NOW + 60);
    assert!(a.auth("alice", "example.org", &t).await.verdict.is_yes());
    clock.set(NOW + 61);
    let d = a.auth("alice", "example.org", &t).await;
    assert_eq!(
        (d.verdict, d.path, d.reason),
        (Verdict::No, Path::Token, Some("token expired"))
    );
    assert!(
        srv.seen.lock().unwrap().is_empty(),
        "an expired token is not sent to the cloud"
    );
}

#[tokio::test]
async fn another_users_token_is_refused() {
    let srv = backend().await;
    let a = authenticator(&srv.url, Arc::new(FixedClock::new(NOW)));
    let bobs = token::mint(&Secret::new("k"), "bob", "example.org", NOW + 60);
    let d = a.auth("alice", "example.org", &bobs).await;
    assert_eq!((d.verdict, d.path), (Verdict::No, Path::Token));
}

#[tokio::test]
async fn token_of_another_secret_is_just_a_password() {
    let srv = backend().await;
    let a = authenticator(&srv.url, Arc::new(FixedClock::new(NOW)));
    let foreign = token::mint(&Secret::new("other"), "alice", "example.org", NOW + 60);
    let d = a.auth("alice", "example.org", &foreign).await;
    assert_eq!((d.verdict, d.path), (Verdict::No, Path::Backend));
    assert_eq!(srv.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn passwords_and_isuser_go_to_the_cloud() {
    let srv = backend().await;
    let a = authenticator(&srv.url, Arc::new(FixedClock::new(NOW)));
    let d = a.auth("alice", "example.org", "right").await;
    assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
    assert_eq!(
        a.auth("alice", "example.org", "wrong").await.verdict,
        Verdict::No
    );
    assert_eq!(
        a.is_user("alice", "example.org").await.verdict,
        Verdict::Yes
    );
    assert_eq!(
        a.is_user("mallory", "example.org").await.verdict,
        Verdict::No
    );
    assert_eq!(srv.seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn empty_fields_are_refused_without_asking() {
    let srv = backend().await;
    let a = authenticator(&srv.url, Arc::new(FixedClock::new(NOW)));
    for (u, d, p) in [
        ("", "example.org", "x"),
        ("alice", "", "x"),
        ("alice", "example.org", ""),
    ] {
        let dec = a.auth(u, d, p).await;
        assert_eq!((dec.verdict, dec.path), (Verdict::No, Path::Refused));
    }
    assert_eq!(a.is_user("", "example.org").await.path, Path::Refused);
    assert!(srv.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unreachable_cloud_is_trouble_not_no() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    drop(l);
    let a = authenticator(&url, Arc::new(FixedClock::new(NOW)));
    assert!(matches!(
        a.auth("alice", "example.org", "right").await.verdict,
        Verdict::Trouble(_)
    ));
    assert!(matches!(
        a.is_user("alice", "example.org").await.verdict,
        Verdict::Trouble(_)
    ));
    // Tokens keep working while the cloud is down.
    let t = token::mint(&Secret::new("k"), "alice", "example.org", NOW + 60);
    assert!(a.auth("alice", "example.org", &t).await.verdict.is_yes());
}

mod with_cache {
    use super::*;
    use cloudauth_core::cache::{CacheTtls, MemoryStore, PasswordCache};
    use common::Answer;

    /// A cloud that knows alice/right and can be switched into trouble.
    async fn switchable() -> (Server, Arc<AtomicBool>) {
        let down = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&down);
        let srv = start(move |req| {
            if d.load(Ordering::SeqCst) {
                return Answer::Http {
                    status: 500,
                    extra: "",
                    body: b"Internal Server Error".to_vec(),
                };
            }
            let body = String::from_utf8_lossy(&req.body).to_string();
            if body.contains("username=alice") && body.ends_with("password=right") {
                json(200, r#"{"result":"success","data":{"uid":"alice"}}"#)
            } else {
                json(200, r#"{"result":"noauth"}"#)
            }
        })
        .await;
        (srv, down)
    }

    fn cached(url: &str, clock: Arc<FixedClock>) -> Authenticator {
        let cache =
            PasswordCache::new(Box::new(MemoryStore::default()), CacheTtls::default(), 4).unwrap();
        authenticator(url, clock).with_cache(cache)
    }

    #[tokio::test]
    async fn warm_cache_carries_an_outage() {
        let (srv, down) = switchable().await;
        let clock = Arc::new(FixedClock::new(NOW));
        let a = cached(&srv.url, Arc::clone(&clock));
        let d = a.auth("alice", "example.org", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
        // Within the query TTL: answered by the cache, the cloud is not asked.
        clock.set(NOW + 60);
        let d = a.auth("alice", "example.org", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Cache));
        assert_eq!(srv.seen.lock().unwrap().len(), 1);
        // Two days later the cloud is down: the unreachable TTL admits alice.
        down.store(true, Ordering::SeqCst);
        clock.set(NOW + 2 * 86_400);
        let d = a.auth("alice", "example.org", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Fallback));
        // A wrong password and a never-seen user are not admitted.
        assert!(matches!(
            a.auth("alice", "example.org", "wrong").await.verdict,
            Verdict::Trouble(_)
        ));
        assert!(matches!(
            a.auth("bob", "example.org", "right").await.verdict,
            Verdict::Trouble(_)
        ));
        // Past the unreachable TTL (one week since the last verification) it ends.
        clock.set(NOW + 7 * 86_400);
        assert!(matches!(
            a.auth("alice", "example.org", "right").await.verdict,
            Verdict::Trouble(_)
        ));
    }

    #[tokio::test]
    async fn the_quick_cache_check_answers_only_fresh_hits() {
        let (srv, down) = switchable().await;
        let clock = Arc::new(FixedClock::new(NOW));
        let a = cached(&srv.url, Arc::clone(&clock));
        assert!(a.check_cache("alice", "example.org", "right").is_none());
        assert!(a
            .auth("alice", "example.org", "right")
            .await
            .verdict
            .is_yes());
        clock.set(NOW + 60);
        let d = a.check_cache("alice", "example.org", "right");
        assert_eq!(
            d.map(|d| (d.verdict, d.path)),
            Some((Verdict::Yes, Path::Cache))
        );
        // Wrong password, other user, unserved domain: only the cloud can tell.
        assert!(a.check_cache("alice", "example.org", "wrong").is_none());
        assert!(a.check_cache("bob", "example.org", "right").is_none());
        assert!(a
            .check_cache("alice", "elsewhere.example", "right")
            .is_none());
        // Past the query TTL the outage rules apply, which need the cloud's answer.
        down.store(true, Ordering::SeqCst);
        clock.set(NOW + 2 * 86_400);
        assert!(a.check_cache("alice", "example.org", "right").is_none());
        assert_eq!(
            srv.seen.lock().unwrap().len(),
            1,
            "the quick check never asks"
        );
        // Without a cache there is nothing to check.
        let plain = authenticator(&srv.url, Arc::new(FixedClock::new(NOW)));
        assert!(plain.check_cache("alice", "example.org", "right").is_none());
    }

    #[tokio::test]
    async fn a_wrong_password_never_falls_back_to_the_cache() {
        let (srv, _down) = switchable().await;
        let a = cached(&srv.url, Arc::new(FixedClock::new(NOW)));
        assert!(a
            .auth("alice", "example.org", "right")
            .await
            .verdict
            .is_yes());
        let d = a.auth("alice", "example.org", "wrong").await;
        assert_eq!((d.verdict, d.path), (Verdict::No, Path::Backend));
    }

    #[tokio::test]
    async fn identical_checks_in_flight_share_one_request() {
        let srv = start(|req| {
            let body = String::from_utf8_lossy(&req.body).to_string();
            let inner = if body.ends_with("password=right") {
                json(200, r#"{"result":"success","data":{"uid":"alice"}}"#)
            } else {
                json(200, r#"{"result":"noauth"}"#)
            };
            Answer::Delayed(Duration::from_millis(300), Box::new(inner))
        })
        .await;
        let a = Arc::new(authenticator(&srv.url, Arc::new(FixedClock::new(NOW))));
        let mut tasks = Vec::new();
        for i in 0..12 {
            let a = Arc::clone(&a);
            // 10 identical checks, plus two with other passwords.
            let pw = match i {
                10 => "wrong",
                11 => "other",
                _ => "right",
            };
            tasks.push(tokio::spawn(async move {
                (pw, a.auth("alice", "example.org", pw).await.verdict)
            }));
        }
        for t in tasks {
            let (pw, v) = t.await.unwrap();
            assert_eq!(v.is_yes(), pw == "right", "{pw}: {v:?}");
        }
        assert_eq!(
            srv.seen.lock().unwrap().len(),
            3,
            "one request per distinct password"
        );
    }
}

mod per_domain {
    use super::*;
    use cloudauth_core::domains::DomainTable;
    use cloudauth_core::signature;

    #[tokio::test]
    async fn each_domain_uses_its_own_cloud_secret_and_auth_domain() {
        let ok = |_: &common::Seen| json(200, r#"{"result":"success","data":{"uid":"x"}}"#);
        let (a, b) = (start(ok).await, start(ok).await);
        let dir = std::env::temp_dir().join(format!("cloudauth-pd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("domains");
        std::fs::write(
            &file,
            format!(
                "a.example secret-a {} a-cloud.org\nb.example secret-b {}\n",
                a.url, b.url
            ),
        )
        .unwrap();
        let global = Values::from_pairs(&[]).unwrap();
        let table = DomainTable::new(global, builder(), Some(&file), None).unwrap();
        let auth = Authenticator::new(Arc::new(table), Arc::new(FixedClock::new(NOW)));

        assert!(auth.auth("alice", "a.example", "pw").await.verdict.is_yes());
        assert!(auth.auth("bob", "b.example", "pw").await.verdict.is_yes());
        let (sa, sb) = (
            a.seen.lock().unwrap().clone(),
            b.seen.lock().unwrap().clone(),
        );
        assert_eq!((sa.len(), sb.len()), (1, 1));
        assert_eq!(
            sa[0].body,
            b"operation=auth&username=alice&domain=a-cloud.org&password=pw"
        );
        assert_eq!(
            sb[0].body,
            b"operation=auth&username=bob&domain=b.example&password=pw"
        );
        let sig_a = signature::sign(&Secret::new("secret-a"), &sa[0].body);
        assert!(sa[0]
            .head
            .to_ascii_lowercase()
            .contains(&format!("x-jsxc-signature: {sig_a}")));

        // A token minted with a.example's secret never admits a user of b.example.
        let tok_a = token::mint(&Secret::new("secret-a"), "bob", "b.example", NOW + 60);
        assert!(
            auth.check_token("bob", "b.example", &tok_a).is_none(),
            "not a token of b's secret"
        );
        let tok_b = token::mint(&Secret::new("secret-b"), "bob", "b.example", NOW + 60);
        assert_eq!(
            auth.check_token("bob", "b.example", &tok_b).map(|d| d.path),
            Some(Path::Token)
        );
        // Unlisted domains are not served without global settings.
        assert_eq!(
            auth.auth("carol", "c.example", "pw").await.path,
            Path::Refused
        );
    }
}

mod totp {
    use super::*;

    /// The first case of the shared vectors: alice@example.org, minted at 1757329996.
    const SEED: &str = "PIX6EA6QOM66ZJOJYAEKCTBR6Y3Z4IXG";
    const SECRET: &str = "CI7NQ3T2YW2OVBRKUGNRSHE66FWE2JBS";
    const MINTED: u64 = 1_757_329_996;
    const TOKEN: &str =
        "6443532661099069584830401198036494205552 5gHTR2iofbVI5+nqUbjVVaaX/0kmHcSQpUxlDJm4gns=";

    fn files() -> (String, String) {
        let dir = std::env::temp_dir().join(format!("cloudauth-totp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (seed, secret) = (dir.join("seed"), dir.join("secret"));
        std::fs::write(&seed, format!("{SEED}\n")).unwrap();
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        (
            seed.to_str().unwrap().to_string(),
            secret.to_str().unwrap().to_string(),
        )
    }

    #[tokio::test]
    async fn totp_tokens_before_the_backend_once_each() {
        let srv = backend().await;
        let (seed, secret) = files();
        let values = Values::from_pairs(&[
            ("url", &srv.url),
            ("secret", "k"),
            ("tokens", "totp,jsxc"),
            ("totp-seed-file", &seed),
            ("totp-secret-file", &secret),
        ])
        .unwrap();
        let clock = Arc::new(FixedClock::new(MINTED + 5));
        let a = Authenticator::new(
            Arc::new(SingleDomain(builder().build(&values).unwrap())),
            Arc::clone(&clock) as Arc<dyn cloudauth_core::Clock>,
        );
        let d = a.auth("alice", "example.org", TOKEN).await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Token));
        let d = a.auth("alice", "example.org", TOKEN).await;
        assert_eq!(
            (d.verdict, d.path, d.reason),
            (Verdict::No, Path::Token, Some("TOTP token already used"))
        );
        let d = a.auth("mallory", "example.org", TOKEN).await;
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::No, Some("TOTP token not valid for this user"))
        );
        clock.set(MINTED + 120);
        let d = a.auth("alice", "example.org", TOKEN).await;
        assert_eq!(d.verdict, Verdict::No);
        // JSXC tokens still work after it; passwords still reach the backend.
        let t = token::mint(&Secret::new("k"), "alice", "example.org", MINTED + 600);
        assert!(a.auth("alice", "example.org", &t).await.verdict.is_yes());
        assert!(
            srv.seen.lock().unwrap().is_empty(),
            "no token reached the backend"
        );
        assert!(a
            .auth("alice", "example.org", "right")
            .await
            .verdict
            .is_yes());
        assert_eq!(srv.seen.lock().unwrap().len(), 1);
    }

    /// Two nodes of a cluster (two authenticators with claim guards) and
    /// the shared table (a map here, Mnesia in ejabberd): the token is
    /// admitted once in the whole cluster; the decisions come from the core.
    #[tokio::test]
    async fn cluster_nodes_claim_totp_tokens_in_a_shared_table() {
        use cloudauth_core::token::{ClaimReplayGuard, TokenContext};
        use cloudauth_core::TokenAnswer;
        use std::collections::HashMap;
        let (seed, secret) = files();
        let values = Values::from_pairs(&[
            ("url", "http://127.0.0.1:9/"),
            ("secret", "k"),
            ("tokens", "totp"),
            ("totp-seed-file", &seed),
            ("totp-secret-file", &secret),
        ])
        .unwrap();
        let node = || {
            let mut b = builder();
            b.tokens = TokenContext {
                replay: Arc::new(ClaimReplayGuard::default()),
            };
            Authenticator::new(
                Arc::new(SingleDomain(b.build(&values).unwrap())),
                Arc::new(FixedClock::new(MINTED + 5)),
            )
        };
        let (n1, n2) = (node(), node());
        let mut table: HashMap<[u8; 32], u64> = HashMap::new();
        // What ejabberd_auth_cloud_cluster does: insert if absent.
        let mut record = |answer: Option<TokenAnswer>| match answer {
            Some(TokenAnswer::Claim {
                claim,
                if_new,
                if_used,
            }) => match table.insert(claim.key, claim.until) {
                Some(_) => if_used,
                None => if_new,
            },
            other => panic!("expected a claim, got {other:?}"),
        };
        let d = record(n1.check_token_claiming("alice", "example.org", TOKEN));
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Token));
        let d = record(n2.check_token_claiming("alice", "example.org", TOKEN));
        assert_eq!(
            (d.verdict, d.reason),
            (
                Verdict::No,
                Some("one-time token already used (on another node)")
            )
        );
        // On the node that admitted it, a replay is refused without asking the table.
        let d = n1.check_token_claiming("alice", "example.org", TOKEN);
        assert!(
            matches!(&d, Some(TokenAnswer::Decided(d)) if d.reason == Some("TOTP token already used")),
            "{d:?}"
        );
        // Without a caller to record claims, a claim is "cannot tell", never yes.
        let d = node().check_token("alice", "example.org", TOKEN);
        assert!(
            matches!(d.map(|d| d.verdict), Some(Verdict::Trouble(_))),
            "a claim unconfirmed is not admitted"
        );
    }

    #[tokio::test]
    async fn explicit_totp_without_its_files_is_a_settings_error() {
        let values = Values::from_pairs(&[
            ("url", "http://127.0.0.1:9/"),
            ("secret", "k"),
            ("tokens", "totp"),
        ])
        .unwrap();
        let e = builder().build(&values).unwrap_err();
        assert!(e.to_string().contains("totp-seed-file"), "{e}");
    }
}

mod repeated_refusals {
    use super::*;

    #[tokio::test]
    async fn a_wrong_password_is_sent_once_per_window() {
        let backend = Counting::new(Some(Duration::from_secs(60)));
        let clock = Arc::new(FixedClock::new(NOW));
        let a = backend.authenticator(Vec::new(), &clock);
        let asked = || backend.asked();
        assert_eq!(a.auth("alice", "x", "wrong").await.path, Path::Backend);
        for _ in 0..5 {
            let d = a.auth("alice", "x", "wrong").await;
            assert_eq!((d.verdict, d.path), (Verdict::No, Path::Recent));
        }
        assert_eq!(asked(), 1, "the stale password reached the backend once");
        // Another password, or another user, is asked at once.
        assert!(a.auth("alice", "x", "right").await.verdict.is_yes());
        assert_eq!(a.auth("bob", "x", "wrong").await.path, Path::Backend);
        assert_eq!(asked(), 3);
        // After the window the backend is asked again.
        clock.set(NOW + 61);
        assert_eq!(a.auth("alice", "x", "wrong").await.path, Path::Backend);
        assert_eq!(asked(), 4);
    }
}

mod bcrypt_flood {
    use super::*;
    use cloudauth_core::cache::{CacheTtls, MemoryStore, PasswordCache};
    use std::time::Instant;

    /// A cloud accepting `<user>-pw` for every user.
    async fn accepting() -> Server {
        start(|req| {
            let body = String::from_utf8_lossy(&req.body).to_string();
            let user = body
                .split('&')
                .find_map(|f| f.strip_prefix("username="))
                .unwrap_or("")
                .to_string();
            if body.ends_with(&format!("password={user}-pw")) {
                json(200, r#"{"result":"success","data":{"uid":"x"}}"#)
            } else {
                json(200, r#"{"result":"noauth"}"#)
            }
        })
        .await
    }

    /// Twenty different wrong passwords at once for a user the cache knows
    /// (bcrypt cost 12, ~0.25 s of CPU each) cannot hold up another user's
    /// login (it waited 7.3 s before bcrypt runs were bounded), and every
    /// answer comes within the deadline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_passwords_for_a_cached_user_cannot_hold_up_others() {
        let srv = accepting().await;
        let cache =
            PasswordCache::new(Box::new(MemoryStore::default()), CacheTtls::default(), 12).unwrap();
        let a = Arc::new(
            authenticator(&srv.url, Arc::new(FixedClock::new(NOW)))
                .with_cache(cache)
                .with_deadline(Duration::from_secs(3)),
        );
        assert!(a.auth("alice", "x", "alice-pw").await.verdict.is_yes());
        let started = Instant::now();
        let mut floods = Vec::new();
        for i in 0..20 {
            let a = Arc::clone(&a);
            floods.push(tokio::spawn(async move {
                a.auth("alice", "x", &format!("wrong-{i}")).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let carol_started = Instant::now();
        let carol = a.auth("carol", "x", "carol-pw").await;
        let carol_took = carol_started.elapsed();
        for f in floods {
            let d = f.await.unwrap();
            // "no", or "cannot tell" for those the guessing throttle held back.
            assert!(!d.verdict.is_yes(), "a wrong password is never admitted");
        }
        let all_took = started.elapsed();
        assert!(carol.verdict.is_yes());
        assert!(
            carol_took < Duration::from_millis(1500),
            "carol waited {carol_took:?} behind the bcrypt flood"
        );
        assert!(all_took < Duration::from_millis(3500), "{all_took:?}");
    }

    /// In a login storm with a bcrypt-12 cache every confirmed password is
    /// hashed (~0.25 s of CPU). With every bcrypt slot busy the answers do
    /// not wait for their hash (the entry is stored in the background): a
    /// client sending one request at a time, like ejabberd's extauth, would
    /// otherwise get at most one answer per second per connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_do_not_wait_for_hashes_behind_busy_bcrypt_slots() {
        let srv = accepting().await;
        let cache =
            PasswordCache::new(Box::new(MemoryStore::default()), CacheTtls::default(), 12).unwrap();
        let a = Arc::new(authenticator(&srv.url, Arc::new(FixedClock::new(NOW))).with_cache(cache));
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Fill every slot with hashes of other users' new passwords.
        let mut fill = Vec::new();
        for i in 0..slots * 4 {
            let a = Arc::clone(&a);
            fill.push(tokio::spawn(async move {
                let user = format!("u{i}");
                a.auth(&user, "x", &format!("{user}-pw")).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // One request at a time, each answered without waiting for its hash.
        let started = Instant::now();
        for i in 0..6 {
            let user = format!("seq{i}");
            let d = a.auth(&user, "x", &format!("{user}-pw")).await;
            assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "6 sequential logins took {took:?} behind busy bcrypt slots"
        );
        for f in fill {
            assert!(f.await.unwrap().verdict.is_yes());
        }
    }

    /// The same wrong password again within the refusal window costs
    /// neither a bcrypt run nor a backend request.
    #[tokio::test]
    async fn a_repeated_wrong_password_is_answered_from_memory() {
        let srv = accepting().await;
        let cache =
            PasswordCache::new(Box::new(MemoryStore::default()), CacheTtls::default(), 4).unwrap();
        let a = authenticator(&srv.url, Arc::new(FixedClock::new(NOW))).with_cache(cache);
        assert!(a.auth("alice", "x", "alice-pw").await.verdict.is_yes());
        assert_eq!(a.auth("alice", "x", "stale").await.path, Path::Backend);
        let asked = srv.seen.lock().unwrap().len();
        for _ in 0..5 {
            let d = a.auth("alice", "x", "stale").await;
            assert_eq!((d.verdict, d.path), (Verdict::No, Path::Recent));
        }
        assert_eq!(srv.seen.lock().unwrap().len(), asked);
    }
}

mod failure_throttle {
    use super::*;
    use cloudauth_core::throttle::ThrottleSettings;

    fn setup(failures: u32) -> (Arc<Counting>, Arc<FixedClock>, Authenticator) {
        let backend = Counting::new(None);
        let clock = Arc::new(FixedClock::new(NOW));
        let tokens: Vec<Arc<dyn TokenFormat>> = vec![Arc::new(
            cloudauth_core::token::jsxc::TokenKey::new(&Secret::new("k")),
        )];
        let a = backend
            .authenticator(tokens, &clock)
            .with_throttle(ThrottleSettings {
                failures,
                window: Duration::from_secs(600),
                max_delay: Duration::from_secs(60),
            });
        (backend, clock, a)
    }

    /// Guessing: after 5 different wrong passwords alice's password checks
    /// pause (no backend request), tokens still work, and the right password
    /// works once the pause is over, however many guesses were paused.
    #[tokio::test]
    async fn guesses_pause_but_never_lock_out_the_right_password_or_tokens() {
        let (backend, clock, a) = setup(5);
        let asked = || backend.asked();
        for i in 0..5 {
            let d = a.auth("alice", "x", &format!("guess-{i}")).await;
            assert_eq!(
                (d.verdict, d.path),
                (Verdict::No, Path::Backend),
                "guess {i}"
            );
        }
        assert_eq!(asked(), 5);
        // Paused: not asked, so "cannot tell" (a temporary failure), never "no".
        let paused = |d: &cloudauth_core::Decision| {
            matches!(d.verdict, Verdict::Trouble(_)) && d.path == Path::Throttled
        };
        for i in 5..50 {
            let d = a.auth("alice", "x", &format!("guess-{i}")).await;
            assert!(paused(&d), "{d:?}");
        }
        // Paused too: the right password (the pause is the price of guessing).
        let d = a.auth("alice", "x", "right").await;
        assert!(paused(&d), "{d:?}");
        assert_eq!(asked(), 5, "paused checks never reach the backend");
        // A token is no password: it still works.
        let t = token::mint(&Secret::new("k"), "alice", "x", NOW + 60);
        assert_eq!(a.auth("alice", "x", &t).await.verdict, Verdict::Yes);
        // Another user is not paused.
        assert_eq!(a.auth("bob", "x", "guess").await.path, Path::Backend);
        // 1 s after the last refusal's second the right password gets through.
        clock.set(NOW + 2);
        let d = a.auth("alice", "x", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
        // ...and forgets the refusals.
        assert_eq!(a.auth("alice", "x", "guess-x").await.path, Path::Backend);
    }

    #[tokio::test]
    async fn pauses_grow_up_to_the_maximum_and_end_after_it() {
        let (backend, clock, a) = setup(2);
        let mut now = NOW;
        let mut pauses = Vec::new();
        for i in 0..10 {
            // Wait for the end of the current pause, then guess once more.
            let mut waited = 0;
            while a
                .auth("alice", "x", &format!("probe-{i}-{waited}"))
                .await
                .path
                == Path::Throttled
            {
                now += 1;
                waited += 1;
                clock.set(now);
            }
            pauses.push(waited);
        }
        // The probes themselves were refused by the backend: 2 free, then 1, 2, 4 ... 60 s
        // (each from the end of the refusal's second).
        assert_eq!(pauses, vec![0, 0, 2, 3, 5, 9, 17, 33, 61, 61]);
        assert_eq!(backend.asked(), 10);
        // However long the guessing went on, max-delay after the last refusal the right password works.
        clock.set(now + 61);
        assert_eq!(a.auth("alice", "x", "right").await.verdict, Verdict::Yes);
    }

    #[tokio::test]
    async fn trouble_is_never_counted_nor_answered_no() {
        let (backend, _clock, a) = setup(2);
        backend.down.store(true, Ordering::SeqCst);
        for i in 0..10 {
            let d = a.auth("alice", "x", &format!("pw-{i}")).await;
            assert!(matches!(d.verdict, Verdict::Trouble(_)), "{i}: {d:?}");
        }
        backend.down.store(false, Ordering::SeqCst);
        let d = a.auth("alice", "x", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
    }

    #[tokio::test]
    async fn a_stale_password_retried_forever_pauses_nobody() {
        let (_backend, clock, a) = setup(2);
        for s in 0..100 {
            clock.set(NOW + s * 11);
            assert_eq!(a.auth("alice", "x", "stale").await.verdict, Verdict::No);
        }
        let d = a.auth("alice", "x", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
    }

    /// Issue 24, item 1: with global settings every domain is served and
    /// the backend checks the bare user, but the throttle and the refusal
    /// memory were keyed by `user@domain`: 300 guesses at
    /// `alice@x<i>.invalid` reached the backend 300 times, one wrong
    /// password at 50 invented domains 50 times.
    #[tokio::test]
    async fn invented_domains_do_not_multiply_the_guesses() {
        let clock = Arc::new(FixedClock::new(NOW));
        let throttled = |backend: &Arc<Counting>| {
            Authenticator::new(
                backend.global_settings(),
                Arc::clone(&clock) as Arc<dyn cloudauth_core::Clock>,
            )
            .with_throttle(ThrottleSettings {
                failures: 10,
                window: Duration::from_secs(600),
                max_delay: Duration::from_secs(60),
            })
        };
        for backend in [Counting::new(None), Counting::ignoring_domains()] {
            let a = throttled(&backend);
            for i in 0..300 {
                let d = a
                    .auth("alice", &format!("x{i}.invalid"), &format!("g{i}"))
                    .await;
                assert!(!d.verdict.is_yes());
            }
            assert_eq!(backend.asked(), 10, "300 guesses at invented domains");
            // And at the real domain too: it is the same user part.
            let d = a.auth("alice", "example.org", "another-guess").await;
            assert_eq!(d.path, Path::Throttled);
        }
        // One wrong password at 50 invented domains: once where the backend
        // ignores the domain (the refusal holds at every one of them)...
        let backend = Counting::ignoring_domains();
        let a = throttled(&backend);
        for i in 0..50 {
            let d = a.auth("alice", &format!("x{i}.invalid"), "wrong").await;
            assert_eq!(d.verdict, Verdict::No, "{i}");
        }
        assert_eq!(backend.asked(), 1);
        // ...and as ten guesses where its answer may depend on the domain.
        let backend = Counting::new(None);
        let a = throttled(&backend);
        for i in 0..50 {
            let d = a.auth("alice", &format!("x{i}.invalid"), "wrong").await;
            assert!(!d.verdict.is_yes(), "{i}");
        }
        assert_eq!(backend.asked(), 10);
    }

    /// Issue 24, item 2: an attacker sending one new guess per pause kept
    /// the user paused for good (the victim's right password got through 0
    /// of 60 times). The password the backend last accepted for the user is
    /// never paused, and the victim's logins do not reset the attacker's count.
    #[tokio::test]
    async fn a_guess_per_pause_cannot_lock_out_the_last_accepted_password() {
        let (backend, clock, a) = setup(3);
        assert!(a.auth("alice", "x", "right").await.verdict.is_yes());
        let mut now = NOW;
        let (mut through, mut guesses) = (0, 0);
        for i in 0..60 {
            let d = a.auth("alice", "x", &format!("guess-{i}")).await;
            if d.path == Path::Backend {
                guesses += 1;
            }
            let d = a.auth("alice", "x", "right").await;
            if d.verdict.is_yes() {
                through += 1;
            }
            now += 1;
            clock.set(now);
        }
        assert_eq!(through, 60, "the victim got in every time");
        assert!(
            guesses < 12,
            "the attacker got {guesses} guesses to the backend in 60 s"
        );
        assert_eq!(backend.asked(), 1 + guesses + 60);
    }

    /// Issue 24, item 2: a cached password that needs a bcrypt check (after
    /// a restart, the db cache) was decided after the throttle, so a paused
    /// user's right password was not admitted by the cache during an outage.
    #[tokio::test]
    async fn a_cached_password_is_checked_before_the_throttle() {
        use cloudauth_core::cache::{CacheTtls, PasswordCache, Storage};
        let dir = std::env::temp_dir().join(format!("cloudauth-cthr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.sqlite3");
        let cache = || PasswordCache::open(Storage::Sqlite(&db), CacheTtls::default(), 4).unwrap();
        let backend = Counting::new(None);
        let clock = Arc::new(FixedClock::new(NOW));
        let settings = ThrottleSettings {
            failures: 3,
            window: Duration::from_secs(600),
            max_delay: Duration::from_secs(60),
        };
        let before = backend
            .authenticator(Vec::new(), &clock)
            .with_cache(cache())
            .with_throttle(settings);
        assert!(before.auth("alice", "x", "right").await.verdict.is_yes());
        drop(before);
        // "Restarted": the row is in the database, nothing in memory.
        let a = backend
            .authenticator(Vec::new(), &clock)
            .with_cache(cache())
            .with_throttle(settings);
        for i in 0..5 {
            a.auth("alice", "x", &format!("guess-{i}")).await;
        }
        assert_eq!(a.auth("alice", "x", "probe").await.path, Path::Throttled);
        backend.down.store(true, Ordering::SeqCst);
        let d = a.auth("alice", "x", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Cache));
    }

    /// Issue 24, item 6: stepping the wall clock back an hour kept a
    /// throttled user paused for an extra hour. The throttle's and the
    /// refusal memory's windows run on monotonic time.
    #[tokio::test]
    async fn a_wall_clock_step_does_not_move_pauses_or_refusal_windows() {
        let (backend, clock, a) = setup(3);
        for i in 0..3 {
            a.auth("alice", "x", &format!("guess-{i}")).await;
        }
        assert_eq!(a.auth("alice", "x", "probe").await.path, Path::Throttled);
        clock.step_wall(NOW - 3600);
        clock.advance(2);
        let d = a.auth("alice", "x", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Backend));
        // A refusal is remembered for its window, whatever the wall clock does.
        assert_eq!(a.auth("alice", "x", "stale").await.path, Path::Backend);
        clock.step_wall(NOW + 86_400);
        assert_eq!(a.auth("alice", "x", "stale").await.path, Path::Recent);
        clock.advance(11);
        assert_eq!(a.auth("alice", "x", "stale").await.path, Path::Backend);
        assert_eq!(backend.asked(), 6);
    }

    #[tokio::test]
    async fn zero_failures_turns_it_off() {
        let (backend, _clock, a) = setup(0);
        for i in 0..30 {
            assert_eq!(
                a.auth("alice", "x", &format!("g{i}")).await.path,
                Path::Backend
            );
        }
        assert_eq!(backend.asked(), 30);
    }
}

/// Item 12b of issue 13: with only global settings every domain name is
/// served, and a backend that ignores the domain (as ojsxc falls back to the
/// bare user) accepts alice's password at each: every invented domain made a
/// cache row. Now a user's rows for domains without settings of their own
/// stay at UNLISTED_DOMAINS_PER_USER (the one used longest ago goes), and
/// domains with their own settings are never counted or removed.
mod invented_domains {
    use super::*;
    use cloudauth_core::cache::{CacheTtls, PasswordCache, Storage};
    use cloudauth_core::decision::UNLISTED_DOMAINS_PER_USER;
    use cloudauth_core::domains::DomainTable;

    fn rows(db: &std::path::Path, like: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT jid FROM authcache WHERE jid LIKE ?1 ORDER BY jid")
            .unwrap();
        let jids = stmt
            .query_map([like], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        jids
    }

    #[tokio::test]
    async fn invented_domains_cannot_grow_the_cache() {
        // Accepts alice's password whatever the domain.
        let srv = start(|req| {
            let body = String::from_utf8_lossy(&req.body).to_string();
            if body.contains("username=alice&") && body.ends_with("password=right") {
                json(200, r#"{"result":"success","data":{"uid":"alice"}}"#)
            } else {
                json(200, r#"{"result":"noauth"}"#)
            }
        })
        .await;
        let dir = std::env::temp_dir().join(format!("cloudauth-invented-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.sqlite3");
        let file = dir.join("domains");
        std::fs::write(&file, format!("listed.example k {}\n", srv.url)).unwrap();
        let global = Values::from_pairs(&[("url", &srv.url), ("secret", "k")]).unwrap();
        let table = DomainTable::new(global, builder(), Some(&file), None).unwrap();
        let clock = Arc::new(FixedClock::new(NOW));
        let cache = PasswordCache::open(Storage::Sqlite(&db), CacheTtls::default(), 4).unwrap();
        let a = Authenticator::new(
            Arc::new(table),
            Arc::clone(&clock) as Arc<dyn cloudauth_core::Clock>,
        )
        .with_cache(cache);
        assert!(a
            .auth("alice", "listed.example", "right")
            .await
            .verdict
            .is_yes());
        for i in 0..50 {
            clock.set(NOW + i);
            let d = a
                .auth("alice", &format!("invented-{i:02}.example"), "right")
                .await;
            assert!(d.verdict.is_yes(), "{i}");
        }
        let alice = rows(&db, "alice@%");
        assert_eq!(
            alice.len(),
            UNLISTED_DOMAINS_PER_USER + 1,
            "the listed domain's row and the last unlisted ones: {alice:?}"
        );
        assert!(alice.contains(&"alice@listed.example".to_string()));
        assert!(alice.contains(&"alice@invented-49.example".to_string()));
        assert!(!alice.contains(&"alice@invented-00.example".to_string()));
        // The rows kept still admit from the cache.
        clock.set(NOW + 100);
        let d = a.auth("alice", "invented-49.example", "right").await;
        assert_eq!((d.verdict, d.path), (Verdict::Yes, Path::Cache));
    }
}
