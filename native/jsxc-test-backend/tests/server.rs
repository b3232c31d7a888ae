//! The real `jsxc-test-backend` binary, driven over HTTP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use std::sync::Arc;

use cloudauth_core::backend::jsxc::{Jsxc, Operation};
use cloudauth_core::backend::{http::parse_url, Account, Backend as _};
use cloudauth_core::{signature, BackendError, HttpClient, Secret, Timeouts};

const SECRET: &str = "backend-test-secret";

struct Backend {
    child: Child,
    api: String,
    control: String,
    users: std::path::PathBuf,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const USERS: &str = r#"{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice A", "groups": ["Team"]},
  {"uid": "bob", "password": "bob-pw", "name": "Bob B", "groups": ["Team"]},
  {"uid": "jürgen@xn--mnchen-3ya.de", "password": "pässwörd"},
  {"uid": "carol", "password": "carol-pw"}
]}"#;

fn start(name: &str) -> Backend {
    start_with(name, USERS, &[])
}

fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jsxc-backend-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the binary with `users_json` as its users file and extra `args`.
fn start_with(name: &str, users_json: &str, args: &[&str]) -> Backend {
    let users = test_dir(name).join("users.json");
    std::fs::write(&users, users_json).unwrap();
    let common::Spawned {
        child,
        api,
        control,
        ..
    } = common::spawn(&users, SECRET, args);
    let (api, control) = (api.as_str(), control.as_str());
    let line = format!("READY api={api} control={control}");
    // e2e scripts take everything after " control=" as the control URL.
    assert!(
        api.starts_with("http://") && control.starts_with("http://") && !control.contains(' '),
        "READY line as before: {line:?}"
    );
    Backend {
        child,
        api: api.into(),
        control: control.into(),
        users,
    }
}

/// Minimal HTTP/1.1 request; returns (status, head, body), the head being
/// the status line and header lines.
fn http_raw(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    Ok((status, head, body))
}

/// Minimal HTTP/1.1 request; returns (status, body).
fn http(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    http_raw(url, method, headers, body).map(|(status, _, body)| (status, body))
}

/// The value of header `name` in a response head.
fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn fault(b: &Backend, query: &str) {
    let (status, _) = http(&format!("{}/fault?{query}", b.control), "POST", &[], b"").unwrap();
    assert_eq!(status, 200, "{query}");
}

fn stats(b: &Backend) -> serde_json::Value {
    let (_, body) = http(&format!("{}/stats", b.control), "GET", &[], b"").unwrap();
    serde_json::from_str(&body).unwrap()
}

/// `http://host:port` of the API listener, which serves all three APIs.
fn origin(b: &Backend) -> String {
    let rest = b.api.strip_prefix("http://").unwrap();
    format!("http://{}", rest.split('/').next().unwrap())
}

/// POSTs JSON to the JSON API at `{origin}/json/{op}`; returns (status, body as JSON).
fn json_call(
    b: &Backend,
    op: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, text) = http(
        &format!("{}/json/{op}", origin(b)),
        "POST",
        headers,
        body.as_bytes(),
    )
    .unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{op}: {e}: {text:?}"));
    (status, v)
}

/// The jsxc backend client for `b`, signing with `secret`, on a fresh connection pool.
fn client_with(b: &Backend, secret: &str) -> Jsxc {
    let http = Arc::new(HttpClient::new(Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(2),
    }));
    Jsxc::new(
        parse_url(&b.api).expect("API URL"),
        Secret::new(secret),
        http,
    )
}

fn client(b: &Backend) -> Jsxc {
    client_with(b, SECRET)
}

fn who<'a>(user: &'a str, domain: &'a str) -> Account<'a> {
    Account::new(user, domain)
}

#[tokio::test]
async fn jsxc_operations_with_the_real_client() {
    let b = start("ops");
    let c = client(&b);
    assert_eq!(
        c.auth(who("alice", "example.org"), "alice-pw").await,
        Ok(true)
    );
    assert_eq!(
        c.auth(who("alice", "example.org"), "wrong").await,
        Ok(false)
    );
    assert_eq!(
        c.auth(who("jürgen", "xn--mnchen-3ya.de"), "pässwörd").await,
        Ok(true),
        "user@domain is tried first"
    );
    assert_eq!(
        c.auth(who("jürgen", "other.de"), "pässwörd").await,
        Ok(false)
    );
    assert_eq!(c.is_user(who("bob", "example.org")).await, Ok(true));
    assert_eq!(c.is_user(who("mallory", "example.org")).await, Ok(false));
    let r = c
        .shared_roster(who("alice", "example.org"))
        .expect("jsxc gives rosters")
        .await
        .unwrap();
    assert_eq!(r["bob"].name, "Bob B");
    assert_eq!(r["bob"].groups, vec!["Team".to_string()]);
    assert!(c
        .shared_roster(who("carol", "example.org"))
        .expect("jsxc gives rosters")
        .await
        .unwrap()
        .is_empty());
    let st = stats(&b);
    assert_eq!(
        (
            st["auth"].as_u64(),
            st["isuser"].as_u64(),
            st["sharedroster"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
}

#[tokio::test]
async fn wrong_secret_is_rejected_like_ojsxc() {
    let b = start("sig");
    let r = client_with(&b, "wrong")
        .auth(who("alice", "example.org"), "alice-pw")
        .await;
    assert!(
        matches!(r, Err(BackendError::SignatureRejected { status: 500, .. })),
        "{r:?}"
    );
    let body = Operation::IsUser {
        username: "alice",
        domain: "x",
    }
    .body();
    let (status, text) = http(&b.api, "POST", &[], body.as_bytes()).unwrap();
    assert_eq!(status, 500);
    assert!(text.contains("No signature provided"));
    // Signed over other bytes than sent.
    let sig = signature::sign(
        &Secret::new(SECRET),
        b"operation=isuser&username=bob&domain=x",
    );
    let (status, text) = http(
        &b.api,
        "POST",
        &[("X-JSXC-Signature", &sig)],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        (status, text.contains("Signature does not match")),
        (500, true)
    );
    assert_eq!(stats(&b)["bad_signature"].as_u64(), Some(3));
}

#[tokio::test]
async fn faults_switch_at_run_time() {
    let b = start("faults");
    let c = client(&b);
    fault(&b, "mode=http500");
    assert!(matches!(
        c.is_user(who("bob", "x")).await,
        Err(BackendError::HttpStatus { status: 500, .. })
    ));
    fault(&b, "mode=nonjson");
    assert!(matches!(
        c.is_user(who("bob", "x")).await,
        Err(BackendError::Decode(_))
    ));
    fault(&b, "mode=redirect");
    assert!(matches!(
        c.is_user(who("bob", "x")).await,
        Err(BackendError::Redirect { .. })
    ));
    fault(&b, "mode=huge");
    assert!(matches!(
        c.is_user(who("bob", "x")).await,
        Err(BackendError::BodyTooLarge(_))
    ));
    fault(&b, "mode=delay&ms=600");
    let t = Instant::now();
    assert_eq!(c.is_user(who("bob", "x")).await, Ok(true));
    assert!(t.elapsed() >= Duration::from_millis(600));
    fault(&b, "mode=down");
    let fresh = client(&b); // no pooled connection
    assert!(matches!(
        fresh.is_user(who("bob", "x")).await,
        Err(BackendError::ConnectionRefused { .. })
    ));
    assert!(
        matches!(
            c.is_user(who("bob", "x")).await,
            Err(BackendError::ConnectionRefused { .. }
                | BackendError::Connect { .. }
                | BackendError::Body(_))
        ),
        "a pooled keep-alive connection does not get through either"
    );
    fault(&b, "mode=ok");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.is_user(who("bob", "x")).await {
            Ok(true) => break,
            r => assert!(
                Instant::now() < deadline,
                "not back up on the same port: {r:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = http(
        &format!("{}/fault?mode=explode", b.control),
        "POST",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn reload_and_reset() {
    let b = start("reload");
    let c = client(&b);
    assert_eq!(c.is_user(who("dave", "x")).await, Ok(false));
    std::fs::write(&b.users, r#"{"users": [{"uid": "dave", "password": "d"}]}"#).unwrap();
    let (status, _) = http(&format!("{}/reload", b.control), "POST", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert_eq!(c.is_user(who("dave", "x")).await, Ok(true));
    assert_eq!(c.is_user(who("alice", "x")).await, Ok(false));
    std::fs::write(&b.users, "not json").unwrap();
    let (status, _) = http(&format!("{}/reload", b.control), "POST", &[], b"").unwrap();
    assert_eq!(status, 500);
    assert_eq!(
        c.is_user(who("dave", "x")).await,
        Ok(true),
        "a broken file keeps the old users"
    );
    http(&format!("{}/stats/reset", b.control), "POST", &[], b"").unwrap();
    assert_eq!(stats(&b)["total"].as_u64(), Some(0));
    let (status, _) = http(&b.api, "GET", &[], b"").unwrap();
    assert_eq!(status, 405);
    let big = vec![b'a'; 70 * 1024];
    let (status, _) = http(&b.api, "POST", &[], &big).unwrap();
    assert_eq!(status, 413);
}

#[tokio::test]
async fn workers_limit_concurrency() {
    let b = start_with("workers", USERS, &["--workers", "2", "--delay-ms", "200"]);
    let c = client(&b);
    let t = Instant::now();
    let r = tokio::join!(
        c.is_user(who("bob", "x")),
        c.is_user(who("alice", "x")),
        c.is_user(who("carol", "x")),
        c.is_user(who("mallory", "x")),
    );
    let took = t.elapsed();
    assert_eq!(r, (Ok(true), Ok(true), Ok(true), Ok(false)));
    assert!(
        took >= Duration::from_millis(400),
        "4 requests, 2 workers, 200 ms each: two rounds, took {took:?}"
    );
    let st = stats(&b);
    assert_eq!(st["isuser"].as_u64(), Some(4));
    assert_eq!(st["peak_in_flight"].as_u64(), Some(2));
    assert_eq!(st["in_flight"].as_u64(), Some(0));

    // The same two workers serve all three APIs.
    http(&format!("{}/stats/reset", b.control), "POST", &[], b"").unwrap();
    let t = Instant::now();
    let calls: Vec<_> = [
        (
            "/json/login",
            "POST",
            r#"{"username": "alice@x", "password": "alice-pw"}"#,
        ),
        ("/json/exists", "POST", r#"{"username": "bob@x"}"#),
        ("/ocs/v2.php/cloud/nothing", "GET", ""),
        ("/ocs/v2.php/cloud/nothing", "GET", ""),
    ]
    .into_iter()
    .map(|(path, method, body)| {
        let url = format!("{}{path}", origin(&b));
        std::thread::spawn(move || http(&url, method, &[], body.as_bytes()).unwrap().0)
    })
    .collect();
    let statuses: Vec<u16> = calls.into_iter().map(|h| h.join().unwrap()).collect();
    let took = t.elapsed();
    assert_eq!(statuses, [200, 200, 404, 404]);
    assert!(
        took >= Duration::from_millis(400),
        "mixed APIs, two rounds: {took:?}"
    );
    let st = stats(&b);
    assert_eq!(
        (st["total"].as_u64(), st["peak_in_flight"].as_u64()),
        (Some(4), Some(2))
    );
}

#[tokio::test]
async fn without_workers_requests_overlap() {
    let b = start_with("noworkers", USERS, &["--delay-ms", "300"]);
    let c = client(&b);
    let t = Instant::now();
    let r = tokio::join!(
        c.is_user(who("bob", "x")),
        c.is_user(who("alice", "x")),
        c.is_user(who("carol", "x")),
    );
    assert_eq!(r, (Ok(true), Ok(true), Ok(true)));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "--delay-ms alone delays"
    );
    assert_eq!(
        stats(&b)["peak_in_flight"].as_u64(),
        Some(3),
        "no limit: all three were processed at once"
    );
}

#[test]
fn json_api_login_and_exists() {
    let b = start("json");
    let ok = serde_json::json!({"success": true});
    let call = |op, body| json_call(&b, op, &[("Content-Type", "application/json")], body);
    assert_eq!(
        call(
            "login",
            r#"{"username": "alice@example.org", "password": "alice-pw"}"#
        ),
        (200, ok.clone())
    );
    let (status, wrong) = call(
        "login",
        r#"{"username": "alice@example.org", "password": "nope"}"#,
    );
    assert_eq!(
        (status, &wrong["success"]),
        (200, &serde_json::json!(false))
    );
    assert!(
        wrong["message"].is_string(),
        "seed 002 reads message on failure: {wrong}"
    );
    let (status, unknown) = call(
        "login",
        r#"{"username": "mallory@example.org", "password": "alice-pw"}"#,
    );
    assert_eq!((status, unknown["success"].as_bool()), (200, Some(false)));
    assert_eq!(
        call(
            "login",
            r#"{"username": "jürgen@xn--mnchen-3ya.de", "password": "pässwörd"}"#
        ),
        (200, ok.clone()),
        "the full JID is tried as uid first"
    );
    assert_eq!(
        call("exists", r#"{"username": "bob@example.org"}"#),
        (200, ok.clone())
    );
    let (status, no) = call("exists", r#"{"username": "mallory@example.org"}"#);
    assert_eq!(
        (status, no["success"].as_bool(), no["message"].is_string()),
        (200, Some(false), true)
    );

    for (op, body, why) in [
        ("login", "username=alice&password=alice-pw", "not JSON"),
        (
            "login",
            r#"{"username": "alice@example.org"}"#,
            "no password",
        ),
        (
            "login",
            r#"{"username": 7, "password": "x"}"#,
            "username not a string",
        ),
        ("exists", r#"{}"#, "no username"),
    ] {
        let (status, v) = call(op, body);
        assert_eq!(
            (status, v["success"].as_bool()),
            (400, Some(false)),
            "{why}"
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{why}: {v}"
        );
    }
    let (status, _) = http(&format!("{}/json/login", origin(&b)), "GET", &[], b"").unwrap();
    assert_eq!(status, 405);

    let st = stats(&b);
    assert_eq!(
        (
            st["login"].as_u64(),
            st["exists"].as_u64(),
            st["bad_request"].as_u64(),
            st["auth"].as_u64()
        ),
        (Some(7), Some(3), Some(4), Some(0))
    );
    assert_eq!(st["total"].as_u64(), Some(10));
}

#[test]
fn json_api_bearer_token() {
    let token = test_dir("jsontoken").join("token");
    std::fs::write(&token, "s3cret-token\nignored second line\n").unwrap();
    let b = start_with(
        "jsontoken",
        USERS,
        &["--api-token-file", token.to_str().unwrap()],
    );
    let body = r#"{"username": "alice@example.org", "password": "alice-pw"}"#;
    let unauthorized = serde_json::json!({"success": false, "message": "unauthorized"});
    assert_eq!(
        json_call(&b, "login", &[], body),
        (401, unauthorized.clone()),
        "no token"
    );
    assert_eq!(
        json_call(
            &b,
            "login",
            &[("Authorization", "Bearer wrong-token")],
            body
        ),
        (401, unauthorized.clone())
    );
    assert_eq!(
        json_call(
            &b,
            "exists",
            &[("Authorization", "Bearer s3cret-tok")],
            body
        ),
        (401, unauthorized.clone()),
        "a prefix of the token"
    );
    assert_eq!(
        json_call(
            &b,
            "login",
            &[("Authorization", "Basic s3cret-token")],
            body
        ),
        (401, unauthorized),
        "another scheme"
    );
    assert_eq!(
        json_call(
            &b,
            "login",
            &[("Authorization", "Bearer s3cret-token")],
            body
        ),
        (200, serde_json::json!({"success": true}))
    );
    assert_eq!(
        json_call(
            &b,
            "exists",
            &[("Authorization", "bearer s3cret-token")],
            body
        )
        .1["success"],
        true,
        "the scheme is case-insensitive"
    );
    let st = stats(&b);
    assert_eq!(
        (st["unauthorized"].as_u64(), st["login"].as_u64()),
        (Some(4), Some(4))
    );
}

#[test]
fn faults_apply_to_the_json_api() {
    let b = start("jsonfaults");
    let url = format!("{}/json/login", origin(&b));
    let body = br#"{"username": "alice@example.org", "password": "alice-pw"}"#;
    fault(&b, "mode=http500");
    assert_eq!(http(&url, "POST", &[], body).unwrap().0, 500);
    fault(&b, "mode=redirect");
    let (status, head, _) = http_raw(&url, "POST", &[], body).unwrap();
    assert_eq!(
        (status, header_of(&head, "location")),
        (302, Some("https://127.0.0.1/json/login".to_string()))
    );
    fault(&b, "mode=nonjson");
    let (status, text) = http(&url, "POST", &[], body).unwrap();
    assert_eq!((status, text.contains("Maintenance")), (200, true));
    fault(&b, "mode=delay&ms=300");
    let t = Instant::now();
    assert_eq!(http(&url, "POST", &[], body).unwrap().0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    fault(&b, "mode=ok");
    assert_eq!(
        stats(&b)["login"].as_u64(),
        Some(4),
        "counted even when faulty"
    );
}

// --- Nextcloud OCS API ---------------------------------------------------------

/// As in the recording of a real Nextcloud: alice (staff, chess), bob (staff),
/// carol (chess), dave (no groups); plus an admin service account and a
/// subadmin of chess.
const OCS_USERS: &str = r#"{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff", "chess"],
   "login": "alice@mail.example", "app_passwords": ["alice-app-pw"]},
  {"uid": "bob", "password": "bob-pw", "name": "Bob", "groups": ["staff"]},
  {"uid": "carol", "password": "carol-pw", "groups": ["chess"]},
  {"uid": "dave", "password": "dave-pw"},
  {"uid": "svc", "password": "svc-pw", "admin": true, "app_passwords": ["svc-app-pw"]},
  {"uid": "chessmaster", "password": "cm-pw", "subadmin": ["chess"]}
]}"#;

const UNAUTHORISED_XML: &str = "<ocs><meta><status>failure</status><statuscode>997</statuscode><message>Unauthorised</message></meta><data/></ocs>";

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Ocs {
    status: u16,
    content_type: String,
    body: String,
}

impl Ocs {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
    fn statuscode(&self) -> Option<u64> {
        self.json()["ocs"]["meta"]["statuscode"].as_u64()
    }
}

/// GET `path` (with its query) at the OCS API, as `login` (none: no
/// Authorization header), with or without `OCS-APIRequest: true`.
fn ocs_get(b: &Backend, path: &str, login: Option<(&str, &str)>, api_request: bool) -> Ocs {
    let auth = login.map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes())));
    let mut headers = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if api_request {
        headers.push(("OCS-APIRequest", "true"));
    }
    let (status, head, body) =
        http_raw(&format!("{}{path}", origin(b)), "GET", &headers, b"").unwrap();
    Ocs {
        status,
        content_type: header_of(&head, "content-type").unwrap_or_default(),
        body,
    }
}

const ME: &str = "/ocs/v2.php/cloud/user?format=json";

#[test]
fn ocs_current_user_and_logins() {
    let b = start_with("ocsuser", OCS_USERS, &[]);
    let r = ocs_get(&b, ME, Some(("alice", "alice-pw")), true);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["ocs"]["meta"]["status"], "ok");
    assert_eq!(v["ocs"]["meta"]["statuscode"], 200);
    assert_eq!(v["ocs"]["data"]["id"], "alice");
    assert_eq!(v["ocs"]["data"]["display-name"], "Alice Liddell");
    assert_eq!(
        v["ocs"]["data"]["groups"],
        serde_json::json!(["staff", "chess"])
    );
    assert!(
        v["ocs"]["data"].get("displayname").is_none(),
        "only the dashed name here"
    );

    for (login, pw, why) in [
        ("alice", "wrong", "wrong password"),
        ("mallory", "alice-pw", "unknown user"),
        ("alice", "", "empty password"),
    ] {
        let r = ocs_get(&b, ME, Some((login, pw)), true);
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_str()),
            (401, "application/xml", UNAUTHORISED_XML),
            "{why}: XML even with format=json"
        );
    }
    let r = ocs_get(&b, ME, Some(("alice", "alice-pw")), false);
    assert_eq!(
        (r.status, r.json()),
        (412, serde_json::json!({"message": "CSRF check failed"}))
    );
    let r = ocs_get(&b, ME, None, true);
    assert_eq!(
        (r.status, r.statuscode()),
        (401, Some(997)),
        "no credentials at all"
    );

    // Logging in by e-mail address returns the uid; app passwords work.
    for (login, pw) in [
        ("alice@mail.example", "alice-pw"),
        ("Alice@Mail.Example", "alice-pw"),
        ("alice", "alice-app-pw"),
        ("alice@mail.example", "alice-app-pw"),
    ] {
        let r = ocs_get(&b, ME, Some((login, pw)), true);
        assert_eq!(
            (r.status, r.json()["ocs"]["data"]["id"].as_str()),
            (200, Some("alice")),
            "{login} {pw}"
        );
    }
    assert_eq!(
        ocs_get(&b, ME, Some(("alice@mail.example", "bob-pw")), true).status,
        401
    );

    // Nextcloud's default format is XML.
    let r = ocs_get(
        &b,
        "/ocs/v2.php/cloud/user",
        Some(("alice", "alice-pw")),
        true,
    );
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/xml")
    );
    assert!(
        r.body
            .starts_with("<ocs><meta><status>ok</status><statuscode>200</statuscode>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<id>alice</id>")
            && r.body
                .contains("<groups><element>staff</element><element>chess</element></groups>")
    );

    let st = stats(&b);
    assert_eq!(st["ocs_user"].as_u64(), Some(12));
    assert_eq!(st["ocs_login_failed"].as_u64(), Some(4));
    assert_eq!(st["ocs_csrf"].as_u64(), Some(1));
    assert_eq!(st["ocs_not_logged_in"].as_u64(), Some(1));
    assert_eq!(st["total"].as_u64(), Some(12));
}

#[test]
fn ocs_users_and_groups_permissions() {
    let b = start_with("ocsperm", OCS_USERS, &[]);
    let user = |who: &str, pw: &str, id: &str| {
        ocs_get(
            &b,
            &format!("/ocs/v2.php/cloud/users/{id}?format=json"),
            Some((who, pw)),
            true,
        )
    };
    let r = user("alice", "alice-pw", "alice");
    let d = r.json()["ocs"]["data"].clone();
    assert_eq!(r.status, 200);
    assert_eq!(
        (d["id"].as_str(), d["displayname"].as_str()),
        (Some("alice"), Some("Alice Liddell"))
    );
    assert_eq!(d["groups"], serde_json::json!(["staff", "chess"]));
    let r = user("alice", "alice-pw", "bob");
    assert_eq!(
        (r.status, r.statuscode()),
        (404, Some(998)),
        "another user, not admin"
    );
    let r = user("svc", "svc-app-pw", "bob");
    assert_eq!(r.status, 200, "admin, by app password");
    assert_eq!(
        r.json()["ocs"]["data"]["groups"],
        serde_json::json!(["staff"])
    );
    let r = user("chessmaster", "cm-pw", "carol");
    assert_eq!(r.status, 200, "subadmin of carol's group");
    let r = user("svc", "svc-pw", "nobody");
    assert_eq!((r.status, r.statuscode()), (404, Some(404)));

    let groups = |who: &str, pw: &str, id: &str| {
        ocs_get(
            &b,
            &format!("/ocs/v2.php/cloud/users/{id}/groups?format=json"),
            Some((who, pw)),
            true,
        )
    };
    let r = groups("alice", "alice-pw", "alice");
    assert_eq!(
        (r.status, r.json()["ocs"]["data"]["groups"].clone()),
        (200, serde_json::json!(["staff", "chess"]))
    );
    let r = groups("svc", "svc-pw", "alice");
    assert_eq!(
        (r.status, r.json()["ocs"]["data"]["groups"].clone()),
        (200, serde_json::json!(["staff", "chess"]))
    );
    let r = groups("chessmaster", "cm-pw", "alice");
    assert_eq!(
        r.json()["ocs"]["data"]["groups"],
        serde_json::json!(["chess"]),
        "a subadmin sees its groups only"
    );
    let r = groups("alice", "alice-pw", "bob");
    assert_eq!(
        (r.status, r.content_type.as_str(), r.statuscode()),
        (401, "application/json; charset=utf-8", Some(997))
    );

    let details = |who: &str, pw: &str, g: &str| {
        ocs_get(
            &b,
            &format!("/ocs/v2.php/cloud/groups/{g}/users/details?format=json"),
            Some((who, pw)),
            true,
        )
    };
    let r = details("alice", "alice-pw", "staff");
    assert_eq!((r.status, r.statuscode()), (403, Some(403)));
    assert_eq!(
        r.json()["ocs"]["meta"]["message"],
        "Logged in user must be at least a sub admin"
    );
    let r = details("svc", "svc-pw", "staff");
    assert_eq!(r.status, 200);
    let users = r.json()["ocs"]["data"]["users"].clone();
    let ids: Vec<&String> = users.as_object().unwrap().keys().collect();
    assert_eq!(ids, ["alice", "bob"]);
    assert_eq!(users["alice"]["id"], "alice");
    assert_eq!(users["alice"]["displayname"], "Alice Liddell");
    assert_eq!(users["bob"]["groups"], serde_json::json!(["staff"]));
    let r = details("chessmaster", "cm-pw", "chess");
    assert_eq!(
        r.json()["ocs"]["data"]["users"]
            .as_object()
            .map(|m| m.len()),
        Some(2)
    );
    let r = details("chessmaster", "cm-pw", "staff");
    assert_eq!(
        (r.status, r.statuscode()),
        (404, Some(998)),
        "subadmin of another group"
    );
    let r = details("svc", "svc-pw", "nosuchgroup");
    assert_eq!((r.status, r.statuscode()), (404, Some(998)));

    for path in [
        "/ocs/v2.php/cloud/nothing?format=json",
        "/ocs/v1.php/cloud/user?format=json",
    ] {
        let r = ocs_get(&b, path, Some(("alice", "alice-pw")), true);
        assert_eq!((r.status, r.statuscode()), (404, Some(998)), "{path}");
    }
    let r = ocs_get(
        &b,
        "/ocs/v2.php/cloud/nothing",
        Some(("alice", "wrong")),
        true,
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, UNAUTHORISED_XML),
        "login before routing"
    );

    let st = stats(&b);
    assert_eq!(
        ["ocs_users", "ocs_groups", "ocs_group_members", "ocs_other"].map(|k| st[k].as_u64()),
        [Some(5), Some(4), Some(5), Some(3)]
    );
}

#[test]
fn faults_apply_to_the_ocs_api() {
    let b = start_with("ocsfaults", OCS_USERS, &[]);
    fault(&b, "mode=http500");
    assert_eq!(
        ocs_get(&b, ME, Some(("alice", "alice-pw")), true).status,
        500
    );
    fault(&b, "mode=redirect");
    let (status, head, _) = http_raw(&format!("{}{ME}", origin(&b)), "GET", &[], b"").unwrap();
    assert_eq!(
        (status, header_of(&head, "location")),
        (
            302,
            Some("https://127.0.0.1/ocs/v2.php/cloud/user".to_string())
        )
    );
    fault(&b, "mode=ok");
    assert_eq!(
        ocs_get(&b, ME, Some(("alice", "alice-pw")), true).status,
        200
    );
}

fn throttle(b: &Backend, method: &str, query: &str) -> serde_json::Value {
    let (status, body) = http(&format!("{}/throttle{query}", b.control), method, &[], b"").unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn ocs_brute_force_throttle() {
    let b = start_with("throttle", OCS_USERS, &[]);
    let timed = |login: (&str, &str)| {
        let t = Instant::now();
        let r = ocs_get(&b, ME, Some(login), true);
        (r.status, t.elapsed())
    };
    // Off by default: failures are not recorded.
    assert_eq!(timed(("alice", "wrong")).0, 401);
    assert_eq!(stats(&b)["throttle_failures"].as_u64(), Some(0));

    // scale 100: each second of Nextcloud's delay takes 100 ms here.
    let state = throttle(&b, "POST", "?on=1&scale_ms_per_s=100");
    assert_eq!(
        (state["on"].as_bool(), state["scale_ms_per_s"].as_u64()),
        (Some(true), Some(100))
    );
    let (status, first) = timed(("alice", "wrong"));
    assert_eq!(status, 401);
    assert!(
        first >= Duration::from_millis(20),
        "the first failure sleeps 0.2 s x 0.1: {first:?}"
    );
    for _ in 0..3 {
        assert_eq!(
            timed(("bob", "wrong")).0,
            401,
            "any user: the address counts"
        );
    }
    assert_eq!(
        throttle(&b, "GET", "")["failures"]["127.0.0.1"].as_u64(),
        Some(4)
    );
    // 4 failures: Nextcloud delays 0.1 s x 2^4 = 1.6 s, scaled 160 ms.
    let (status, slow) = timed(("alice", "alice-pw"));
    assert_eq!(status, 200, "the right password still works, no 429");
    assert!(
        slow >= Duration::from_millis(160),
        "right password after 4 failures: {slow:?}"
    );
    let st = stats(&b);
    assert_eq!(st["throttle_failures"].as_u64(), Some(4));
    // Delayed: the first failure (after), the three next (before), the login.
    assert_eq!(st["throttle_delayed"].as_u64(), Some(5));
    assert_eq!(
        st["throttle_delay_ms"].as_u64(),
        Some(20 + 20 + 40 + 80 + 160)
    );

    // The JSON API is not behind the throttle (nor is the JSXC one).
    let (status, v) = json_call(
        &b,
        "login",
        &[],
        r#"{"username": "alice@x", "password": "alice-pw"}"#,
    );
    assert_eq!((status, v["success"].as_bool()), (200, Some(true)));
    assert_eq!(stats(&b)["throttle_delayed"].as_u64(), Some(5));

    // Reset (occ security:bruteforce:reset): the next login is not delayed.
    let state = throttle(&b, "POST", "/reset");
    assert_eq!(state["failures"], serde_json::json!({}));
    assert_eq!(timed(("alice", "alice-pw")).0, 200);
    assert_eq!(
        stats(&b)["throttle_delayed"].as_u64(),
        Some(5),
        "not delayed after reset"
    );

    // A reset of another address leaves this one's failures.
    assert_eq!(timed(("alice", "wrong")).0, 401);
    throttle(&b, "POST", "/reset?addr=10.0.0.1");
    assert_eq!(
        throttle(&b, "GET", "")["failures"]["127.0.0.1"].as_u64(),
        Some(1)
    );
    // Switched off: no delay, failures kept for when it is on again.
    throttle(&b, "POST", "?on=0");
    assert_eq!(timed(("alice", "alice-pw")).0, 200);
    assert_eq!(
        stats(&b)["throttle_delayed"].as_u64(),
        Some(6),
        "only the failure's own sleep"
    );

    for bad in ["", "?on=maybe", "?scale_ms_per_s=fast"] {
        let (status, _) = http(&format!("{}/throttle{bad}", b.control), "POST", &[], b"").unwrap();
        assert_eq!(status, 400, "{bad:?}");
    }
}
