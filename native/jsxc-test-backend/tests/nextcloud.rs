//! The `nextcloud` backend of cloudauth-core against the real
//! `jsxc-test-backend` binary's OCS API (and, for answers that emulation
//! never gives, a one-reply HTTP server).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudauth_core::backend::http::parse_url;
use cloudauth_core::backend::nextcloud::{Nextcloud, ServiceAccount};
use cloudauth_core::backend::{Account, DecodeError};
use cloudauth_core::domains::Builder;
use cloudauth_core::settings::values::{SettingsError, Values};
use cloudauth_core::{Backend, BackendError, HttpClient, Secret, Timeouts};

const USERS: &str = r#"{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff", "chess"],
   "login": "alice@mail.example", "app_passwords": ["alice-app-pw"]},
  {"uid": "bob", "password": "bob-pw", "name": "Bob", "groups": ["staff"]},
  {"uid": "carol", "password": "carol-pw", "groups": ["chess"], "login": "carol@mail.example"},
  {"uid": "dave", "password": "dave-pw", "login": "eve"},
  {"uid": "Dora", "password": "dora-pw", "login": "dora"},
  {"uid": "svc", "password": "svc-pw", "admin": true},
  {"uid": "chessmaster", "password": "cm-pw", "subadmin": ["chess"]}
]}"#;

struct TestBackend {
    child: Child,
    /// `http://host:port`: the OCS API's base URL.
    base: String,
    control: String,
    dir: PathBuf,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nc-backend-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start(name: &str) -> TestBackend {
    start_with(name, USERS, &[])
}

/// Starts the emulation with `users` and extra `args` (`--nextcloud-version 32`).
fn start_with(name: &str, users_json: &str, args: &[&str]) -> TestBackend {
    let dir = test_dir(name);
    let users = dir.join("users.json");
    std::fs::write(&users, users_json).unwrap();
    let common::Spawned {
        child,
        control,
        host,
        ..
    } = common::spawn(&users, "unused-here", args);
    TestBackend {
        child,
        base: format!("http://{host}"),
        control,
        dir,
    }
}

/// Minimal HTTP/1.1 request to the control server; returns (status, body).
fn control(b: &TestBackend, method: &str, path: &str) -> (u16, String) {
    let rest = b.control.strip_prefix("http://").unwrap();
    let host = rest.split('/').next().unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn stat(b: &TestBackend, key: &str) -> u64 {
    let (_, body) = control(b, "GET", "/stats");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {key}: {v}"))
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    }
}

/// A file holding `password`, readable by this user only.
fn password_file(b: &TestBackend, name: &str, password: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let f = b.dir.join(name);
    std::fs::write(&f, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f.to_str().unwrap().to_string()
}

/// The backend as the registry builds it from settings.
fn through_registry(pairs: &[(&str, &str)]) -> Result<Arc<dyn Backend>, SettingsError> {
    let values = Values::from_pairs(pairs)?;
    Ok(Builder::new(timeouts()).build(&values)?.backend.clone())
}

/// `backend = nextcloud` at `b`, with the service account `user`/`password`
/// when given.
fn registry_backend(b: &TestBackend, service: Option<(&str, &str)>) -> Arc<dyn Backend> {
    let mut pairs = vec![("backend", "nextcloud"), ("url", b.base.as_str())];
    let file;
    if let Some((user, password)) = service {
        file = password_file(b, &format!("svc-{user}-{password}"), password);
        pairs.push(("service-user", user));
        pairs.push(("service-password-file", file.as_str()));
    }
    let backend = through_registry(&pairs).expect("nextcloud backend builds");
    assert_eq!(backend.name(), "nextcloud");
    backend
}

fn who(user: &str) -> Account<'_> {
    Account::new(user, "example.org")
}

#[tokio::test]
async fn passwords() {
    let b = start("passwords");
    let nc = registry_backend(&b, None);
    assert_eq!(nc.auth(who("alice"), "alice-pw").await, Ok(true));
    assert_eq!(nc.auth(who("alice"), "wrong").await, Ok(false));
    assert_eq!(nc.auth(who("nobody"), "alice-pw").await, Ok(false));
    assert_eq!(
        nc.auth(who("alice"), "alice-app-pw").await,
        Ok(true),
        "app password"
    );
    // Nextcloud finds uid "Dora" for login "dora" (here through an alias;
    // a real Nextcloud also matches uids ignoring case): the same account.
    assert_eq!(nc.auth(who("dora"), "dora-pw").await, Ok(true), "folding");
    // Right credentials of another account: login "eve" is dave's.
    assert_eq!(nc.auth(who("eve"), "dave-pw").await, Ok(false));
    assert_eq!(nc.auth(who("dave"), "dave-pw").await, Ok(true));
    // The e-mail address logs in as alice, but is not alice's JID.
    assert_eq!(
        nc.auth(who("alice@mail.example"), "alice-pw").await,
        Ok(false)
    );
    let asked = stat(&b, "ocs_user");
    assert_eq!(asked, 8);
    assert_eq!(stat(&b, "ocs_csrf"), 0, "OCS-APIRequest was sent");
    // Not expressible in basic auth: no, without asking.
    for (user, password) in [
        ("al:ice", "alice-pw"),
        ("alice", ""),
        ("", "alice-pw"),
        ("alice", "pw\nx"),
        ("al\u{7}ice", "alice-pw"),
    ] {
        assert_eq!(nc.auth(who(user), password).await, Ok(false), "{user:?}");
    }
    assert_eq!(stat(&b, "ocs_user"), asked, "no requests for those");
    assert_eq!(
        nc.repeat_refusal_window(),
        Some(Duration::from_secs(4 * 3600))
    );
}

#[tokio::test]
async fn is_user_needs_the_service_account() {
    let b = start("isuser");
    let nc = registry_backend(&b, Some(("svc", "svc-pw")));
    assert_eq!(nc.is_user(who("alice")).await, Ok(true));
    assert_eq!(nc.is_user(who("bob")).await, Ok(true));
    assert_eq!(nc.is_user(who("nobody")).await, Ok(false));
    assert_eq!(
        nc.is_user(who("..")).await,
        Ok(false),
        "no such Nextcloud uid"
    );

    let without = registry_backend(&b, None);
    for _ in 0..2 {
        assert_eq!(
            without.is_user(who("alice")).await,
            Err(BackendError::Unsupported(
                "isuser needs a Nextcloud service account (service-user, service-password-file)"
            )),
            "could not find out, not no"
        );
    }
    assert!(without.shared_roster(who("alice")).is_none());

    let wrong = registry_backend(&b, Some(("svc", "not-the-password")));
    assert!(matches!(
        wrong.is_user(who("alice")).await,
        Err(BackendError::ServiceRefused { user, hint }) if user == "svc" && hint.contains("service-password-file")
    ));
    // A subadmin sees its groups' members; others exist but are hidden
    // from it: that is no answer, not a no.
    let sub = registry_backend(&b, Some(("chessmaster", "cm-pw")));
    assert_eq!(sub.is_user(who("carol")).await, Ok(true));
    assert_eq!(sub.is_user(who("nobody")).await, Ok(false));
    assert!(matches!(
        sub.is_user(who("bob")).await,
        Err(BackendError::NotVisible { user, .. }) if user == "bob"
    ));
    // An account that is neither admin nor subadmin.
    let plain = registry_backend(&b, Some(("bob", "bob-pw")));
    assert!(matches!(
        plain.shared_roster(who("alice")).expect("configured").await,
        Err(BackendError::Unauthorized { hint, .. }) if hint.contains("admin")
    ));
}

#[tokio::test]
async fn shared_roster_from_nextcloud_groups() {
    let b = start("roster");
    let nc = registry_backend(&b, Some(("svc", "svc-pw")));
    let r = nc
        .shared_roster(who("alice"))
        .expect("with a service account")
        .await
        .unwrap();
    let names: Vec<_> = r.keys().map(String::as_str).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(r["alice"].name, "Alice Liddell");
    assert_eq!(r["alice"].groups, ["staff", "chess"]);
    assert_eq!(r["bob"].name, "Bob");
    assert_eq!(r["bob"].groups, ["staff"]);
    assert_eq!(r["carol"].name, "carol");
    assert_eq!(r["carol"].groups, ["chess"]);
    assert_eq!(stat(&b, "ocs_groups"), 1);
    assert_eq!(stat(&b, "ocs_group_members"), 2);

    let bob = nc.shared_roster(who("bob")).unwrap().await.unwrap();
    assert_eq!(bob.keys().collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(
        bob["alice"].groups,
        ["staff"],
        "only the groups shared with bob"
    );

    let dave = nc.shared_roster(who("dave")).unwrap().await.unwrap();
    assert!(dave.is_empty(), "no groups: empty roster");
    // An unknown user is trouble, never an empty roster (Nextcloud
    // answers 404 998 for an unknown user's groups, even to an admin).
    assert!(matches!(
        nc.shared_roster(who("nobody")).unwrap().await,
        Err(BackendError::NotVisible { .. })
    ));
}

#[tokio::test]
async fn settings_through_the_registry() {
    let b = start("settings");
    let file = password_file(&b, "svc", "svc-pw");
    let base = b.base.as_str();
    assert!(matches!(
        through_registry(&[
            ("backend", "nextcloud"),
            ("url", base),
            ("service-user", "svc")
        ]),
        Err(SettingsError::Missing {
            key: "service-password-file",
            ..
        })
    ));
    assert!(matches!(
        through_registry(&[
            ("backend", "nextcloud"),
            ("url", base),
            ("service-password-file", &file)
        ]),
        Err(SettingsError::Missing {
            key: "service-user",
            ..
        })
    ));
    // A path prefix is kept: here it leads nowhere, and that is an error,
    // not a no.
    let prefixed = format!("{base}/nextcloud/");
    let nc = through_registry(&[
        ("backend", "nextcloud"),
        ("url", &prefixed),
        ("service-user", "svc"),
        ("service-password-file", &file),
    ])
    .unwrap();
    assert!(matches!(
        nc.is_user(who("alice")).await,
        Err(BackendError::HttpStatus { status: 404, .. })
    ));
}

/// An HTTP server that answers every request with `status` and `body`,
/// sending each request's head to the returned channel.
fn canned_server(status: &str, content_type: &str, body: &str) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(response.as_bytes());
        }
    });
    (format!("http://{addr}"), rx)
}

fn direct(base: &str) -> Nextcloud {
    Nextcloud::new(
        parse_url(base).unwrap(),
        Some(ServiceAccount::new("svc", Secret::new("svc-pw")).unwrap()),
        Arc::new(HttpClient::new(timeouts())),
    )
    .unwrap()
}

#[tokio::test]
async fn answers_our_emulation_never_gives() {
    // A proxy that strips OCS-APIRequest: Nextcloud's CSRF check says 412.
    let (base, heads) = canned_server(
        "412 Precondition Failed",
        "application/json",
        r#"{"message":"CSRF check failed"}"#,
    );
    let nc = direct(&format!("{base}/nextcloud"));
    let e = nc.auth(who("alice"), "alice-pw").await.unwrap_err();
    assert!(
        matches!(&e, BackendError::Api(m) if m.contains("OCS-APIRequest") && m.contains("proxy")),
        "{e}"
    );
    assert!(!e.to_string().contains("alice-pw"));
    let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("GET /nextcloud/ocs/v2.php/cloud/user?format=json HTTP/1.1"),
        "{head}"
    );
    assert!(lower.contains("\r\nocs-apirequest: true\r\n"), "{head}");
    assert!(lower.contains("\r\naccept: application/json\r\n"), "{head}");
    // base64("alice:alice-pw")
    assert!(head.contains("YWxpY2U6YWxpY2UtcHc="), "{head}");
    assert!(matches!(
        nc.is_user(who("alice")).await,
        Err(BackendError::Api(m)) if m.contains("412")
    ));

    // 200 without a string data.id.
    let (base, _heads) = canned_server(
        "200 OK",
        "application/json",
        r#"{"ocs":{"meta":{"status":"ok","statuscode":200},"data":{"id":42}}}"#,
    );
    assert!(matches!(
        direct(&base).auth(who("alice"), "alice-pw").await,
        Err(BackendError::Decode(DecodeError::Shape(_)))
    ));

    // Some other status: trouble, with the body's shape for the log (its
    // kind and length, never its text: issue 24).
    let (base, _heads) = canned_server(
        "503 Service Unavailable",
        "text/html",
        "<h1>maintenance</h1>",
    );
    assert!(matches!(
        direct(&base).auth(who("alice"), "alice-pw").await,
        Err(BackendError::HttpStatus { status: 503, snippet })
            if snippet.contains("web page") && !snippet.contains("maintenance")
    ));
}

#[tokio::test]
async fn notices_the_brute_force_throttle() {
    let b = start("throttle");
    // Each second of Nextcloud's delay takes 500 ms: failures before a
    // login 0, 1, 2, 3, 4 delay it 0, 0.1, 0.1, 0.2, 0.4 s and the right
    // login after four failures 0.8 s. Above the 300 ms floor set here
    // only the fourth failure and that login; the loopback logins before
    // take a few ms.
    let (status, _) = control(&b, "POST", "/throttle?on=1&scale_ms_per_s=500");
    assert_eq!(status, 200);
    let nc = direct(&b.base).with_throttle_floor(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(nc.auth(who("alice"), "alice-pw").await, Ok(true));
    }
    assert_eq!(nc.throttling_seen(), 0, "not throttled yet");
    for _ in 0..4 {
        assert_eq!(nc.auth(who("alice"), "wrong").await, Ok(false));
    }
    let (_, state) = control(&b, "GET", "/throttle");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["failures"]["127.0.0.1"], 4, "{state}");
    let before = nc.throttling_seen();
    let started = Instant::now();
    assert_eq!(
        nc.auth(who("alice"), "alice-pw").await,
        Ok(true),
        "a right password still works, slowly"
    );
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(nc.throttling_seen() >= 1);
    assert_eq!(
        nc.throttling_seen(),
        before + 1,
        "the slow right login noticed"
    );
    // After `occ security:bruteforce:reset`, logins are fast again.
    control(&b, "POST", "/throttle/reset");
    let seen = nc.throttling_seen();
    assert_eq!(nc.auth(who("alice"), "alice-pw").await, Ok(true));
    assert_eq!(nc.throttling_seen(), seen);
}

/// Nextcloud 32/34 as recorded (see `tests/nextcloud32.rs`): svc is subadmin
/// of staff and chess, frank disabled, erin two-factor.
const USERS_32: &str = r#"{"group_names": {"staff": "Staff Team", "chess": "Chess Club"},
 "users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff", "chess"]},
  {"uid": "bob", "password": "bob-pw", "groups": ["staff"]},
  {"uid": "carol", "password": "carol-pw", "groups": ["chess"]},
  {"uid": "dave", "password": "dave-pw"},
  {"uid": "frank", "password": "frank-pw", "groups": ["staff"], "disabled": true},
  {"uid": "erin", "password": "erin-pw", "groups": ["tfa", "staff"], "two_factor": true,
   "app_passwords": ["erin-app"]},
  {"uid": "svc", "password": "svc-pw", "subadmin": ["staff", "chess"], "app_passwords": ["svc-app"]},
  {"uid": "svcadmin", "password": "svcadmin-pw", "admin": true}
]}"#;

fn failures(b: &TestBackend) -> u64 {
    let (_, body) = control(b, "GET", "/throttle");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["failures"]["127.0.0.1"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn nextcloud_32_answers() {
    for version in ["32", "34"] {
        let b = start_with(
            &format!("answers{version}"),
            USERS_32,
            &["--nextcloud-version", version],
        );
        let sub = registry_backend(&b, Some(("svc", "svc-app")));
        assert_eq!(sub.is_user(who("bob")).await, Ok(true));
        assert_eq!(sub.is_user(who("nobody")).await, Ok(false), "404 404");
        assert_eq!(sub.is_user(who("frank")).await, Ok(false), "disabled");
        // Outside the subadmin's groups: cannot tell, never no.
        let e = sub.is_user(who("dave")).await.unwrap_err();
        assert!(
            matches!(&e, BackendError::NotVisible { user, .. } if user == "dave"),
            "{e}"
        );
        assert!(
            e.to_string().contains("svc is subadmin of staff, chess"),
            "{e}"
        );
        let admin = registry_backend(&b, Some(("svcadmin", "svcadmin-pw")));
        assert_eq!(admin.is_user(who("dave")).await, Ok(true));
        // Display names, no disabled member.
        let r = sub.shared_roster(who("alice")).unwrap().await.unwrap();
        assert_eq!(
            r.keys().collect::<Vec<_>>(),
            ["alice", "bob", "carol", "erin"]
        );
        assert_eq!(r["alice"].groups, ["Staff Team", "Chess Club"]);
        assert_eq!(r["bob"].groups, ["Staff Team"]);
        // Two-factor: the password is a no, the app password a yes.
        assert_eq!(sub.auth(who("erin"), "erin-pw").await, Ok(false));
        assert_eq!(sub.auth(who("erin"), "erin-app").await, Ok(true));
        assert_eq!(failures(&b), 0, "nothing counted so far");
    }
}

/// Item 1: a wrong service password is sent once, not once per request,
/// and the new one is used as soon as the file holds it.
#[tokio::test]
async fn a_refused_service_password_is_not_resent() {
    let b = start_with("svcrefused", USERS_32, &["--nextcloud-version", "34"]);
    let file = password_file(&b, "svc-pw-file", "revoked");
    let nc = through_registry(&[
        ("backend", "nextcloud"),
        ("url", b.base.as_str()),
        ("service-user", "svc"),
        ("service-password-file", file.as_str()),
    ])
    .unwrap();
    let e = nc.is_user(who("bob")).await.unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Nextcloud refuses service-user svc's password: check service-password-file"
        ),
        "{e}"
    );
    for _ in 0..20 {
        let e = nc.is_user(who("bob")).await.unwrap_err();
        assert!(matches!(e, BackendError::ServicePaused { .. }), "{e}");
        assert!(nc.shared_roster(who("bob")).unwrap().await.is_err());
    }
    assert_eq!(failures(&b), 1, "one failure recorded, not 41");
    assert_eq!(stat(&b, "ocs_users"), 1);
    std::fs::write(&file, "svc-app\n").unwrap();
    assert_eq!(
        nc.is_user(who("bob")).await,
        Ok(true),
        "the new password at once"
    );
    assert_eq!(failures(&b), 0, "svc's login cleared its own failure");
}

#[tokio::test]
async fn a_block_is_named() {
    let b = start_with("blocked", USERS_32, &["--nextcloud-version", "32"]);
    let nc = registry_backend(&b, Some(("svc", "svc-app")));
    for n in 0..11 {
        assert_eq!(nc.auth(who(&format!("user{n}")), "x").await, Ok(false));
    }
    for e in [
        nc.auth(who("alice"), "alice-pw").await.unwrap_err(),
        nc.is_user(who("bob")).await.unwrap_err(),
        nc.shared_roster(who("alice")).unwrap().await.unwrap_err(),
    ] {
        assert!(matches!(e, BackendError::Blocked { .. }), "{e}");
    }
}

#[tokio::test]
async fn a_group_of_thousands_is_paged() {
    let mut users: Vec<String> = (0..1000)
        .map(|n| format!(r#"{{"uid": "u{n:04}", "password": "p", "groups": ["big"]}}"#))
        .collect();
    users.push(r#"{"uid": "svc", "password": "svc-pw", "admin": true}"#.into());
    let json = format!(r#"{{"users": [{}]}}"#, users.join(","));
    let b = start_with("paged", &json, &["--nextcloud-version", "32"]);
    let nc = registry_backend(&b, Some(("svc", "svc-pw")));
    let r = nc.shared_roster(who("u0000")).unwrap().await.unwrap();
    assert_eq!(r.len(), 1000);
    assert_eq!(r["u0999"].groups, ["big"]);
    // 200 per page: five full pages and the empty one past the end.
    assert_eq!(stat(&b, "ocs_group_members"), 6);
}

/// Item 5: `doctor` tells the version, allow-listed from not, failures
/// recorded, a block, and a service password that is no app password.
#[tokio::test]
async fn doctor_against_32_and_34() {
    use cloudauth_core::doctor::Status;
    let line = |r: &cloudauth_core::doctor::BackendReport, name: &str| {
        r.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.status, c.detail.clone(), c.fix.clone()))
            .unwrap_or_else(|| panic!("no {name} line in {:?}", r.checks))
    };
    let b = start_with("doctor34", USERS_32, &["--nextcloud-version", "34"]);
    let nc = registry_backend(&b, Some(("svc", "svc-app")));
    let r = nc.doctor("example.org").await;
    assert_eq!(line(&r, "Nextcloud").1, "version 34.0.1");
    assert_eq!(line(&r, "brute-force protection").0, Status::Pass);
    assert!(
        r.checks.iter().all(|c| c.name != "throttle"),
        "no latency guess where Nextcloud tells: {:?}",
        r.checks
    );
    let (status, detail, fix) = line(&r, "service password");
    assert_eq!(status, Status::Warn, "{detail}");
    assert!(fix.contains("app password"), "{fix}");
    // Three failures: a warning with the count.
    for _ in 0..3 {
        assert_eq!(nc.auth(who("alice"), "wrong").await, Ok(false));
    }
    let r = nc.doctor("example.org").await;
    let (status, detail, _) = line(&r, "brute-force protection");
    assert_eq!(status, Status::Warn);
    assert!(detail.contains("about 3 failed logins"), "{detail}");
    // Blocked: ✗ with the fix, never "not throttled".
    for n in 0..8 {
        assert_eq!(nc.auth(who(&format!("u{n}")), "wrong").await, Ok(false));
    }
    let r = nc.doctor("example.org").await;
    assert_eq!(line(&r, "brute-force protection").0, Status::Fail);
    let (status, detail, fix) = line(&r, "throttle");
    assert_eq!(status, Status::Fail);
    assert!(detail.contains("blocks this server's address"), "{detail}");
    assert!(fix.contains("whitelist_1"), "{fix}");

    let allowed = start_with(
        "doctor-allowed",
        USERS_32,
        &["--nextcloud-version", "32", "--allow-listed", "127.0.0.1"],
    );
    let nc = registry_backend(&allowed, None);
    let r = nc.doctor("example.org").await;
    assert_eq!(line(&r, "Nextcloud").1, "version 32.0.2");
    let (status, detail, _) = line(&r, "brute-force protection");
    assert_eq!(status, Status::Warn);
    assert!(detail.contains("allow-listed"), "{detail}");
}

/// Failures the emulation holds for `ip`.
fn failures_of(b: &TestBackend, ip: &str) -> u64 {
    let (_, body) = control(b, "GET", "/throttle");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["failures"][ip].as_u64().unwrap_or(0)
}

/// `forward-client-address`: the header goes only with the setting on, on
/// a user's password check; behind a trusted proxy Nextcloud counts the
/// failure for the client, and cloudauth finds that out; without
/// `trusted_proxies` it finds out that Nextcloud ignores it.
#[tokio::test]
async fn the_clients_address_is_forwarded_when_on_and_counted_there_behind_a_trusted_proxy() {
    use cloudauth_core::bruteforce::Forwarding;
    let client = Some("192.0.2.10".parse().unwrap());
    let from = |user| Account::new(user, "example.org").from_client(client);
    let trusting = start_with(
        "forward-trusted",
        USERS_32,
        &["--nextcloud-version", "34", "--trusted-proxy", "127.0.0.1"],
    );
    let forwarding = |b: &TestBackend, on: &str| {
        through_registry(&[
            ("backend", "nextcloud"),
            ("url", b.base.as_str()),
            ("forward-client-address", on),
        ])
        .expect("builds")
    };
    // Off: no header, so the failure is this server's.
    let nc = forwarding(&trusting, "false");
    assert_eq!(nc.auth(from("alice"), "wrong").await, Ok(false));
    assert_eq!(failures_of(&trusting, "127.0.0.1"), 1);
    assert_eq!(failures_of(&trusting, "192.0.2.10"), 0);
    assert_eq!(nc.failure_budget().unwrap().forwarding(), Forwarding::Off);
    drop(nc);
    control(&trusting, "POST", "/throttle/reset");

    // On: read at start (nothing to tell yet: both addresses fresh), then
    // the failure lands on the client's address and that tells.
    let nc = forwarding(&trusting, "true");
    nc.start().expect("reads the capabilities at start").await;
    let budget = nc.failure_budget().unwrap();
    assert_eq!(budget.forwarding(), Forwarding::Unknown);
    assert_eq!(nc.auth(from("alice"), "wrong").await, Ok(false));
    assert_eq!(failures_of(&trusting, "192.0.2.10"), 1);
    assert_eq!(failures_of(&trusting, "127.0.0.1"), 0);
    assert_eq!(budget.forwarding(), Forwarding::Honoured);
    assert_eq!(
        budget.report().failures,
        0,
        "nothing counted for this server"
    );
    // Right password from the client; the server's own login (no client) is the server's.
    assert_eq!(nc.auth(from("alice"), "alice-pw").await, Ok(true));
    assert_eq!(nc.auth(who("bob"), "wrong").await, Ok(false));
    assert_eq!(failures_of(&trusting, "127.0.0.1"), 1);
    let r = nc.doctor("example.org").await;
    let line = r
        .checks
        .iter()
        .find(|c| c.name == "client address")
        .unwrap();
    assert!(line.detail.contains("honours"), "{line:?}");
    drop(nc);

    // Nextcloud without trusted_proxies: the header changes nothing.
    let plain = start_with("forward-plain", USERS_32, &["--nextcloud-version", "34"]);
    let nc = forwarding(&plain, "true");
    assert_eq!(nc.auth(from("alice"), "wrong").await, Ok(false));
    assert_eq!(failures_of(&plain, "127.0.0.1"), 1);
    assert_eq!(failures_of(&plain, "192.0.2.10"), 0);
    let budget = nc.failure_budget().unwrap();
    assert_eq!(budget.forwarding(), Forwarding::Ignored);
    assert_eq!(budget.report().failures, 1);
    let r = nc.doctor("example.org").await;
    let line = r
        .checks
        .iter()
        .find(|c| c.name == "client address")
        .unwrap();
    assert!(line.fix.contains("trusted_proxies"), "{line:?}");
}
