//! The OCS API of the real `jsxc-test-backend` binary with
//! `--nextcloud-version 32|34`, over HTTP: one test per row of the shared
//! notes' tables ("Nextcloud 32 and 34") that the emulation reproduces.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;

/// The recorded set-up: groups' ids differ from their names, frank is
/// disabled, grace logs in with her e-mail, erin has two-factor, svc is
/// subadmin of staff and chess, svcadmin an admin.
const USERS: &str = r#"{"group_names": {"staff": "Staff Team", "chess": "Chess Club"},
 "users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff", "chess"],
   "app_passwords": ["alice-app"]},
  {"uid": "bob", "password": "bob-pw", "groups": ["staff"]},
  {"uid": "carol", "password": "carol-pw", "groups": ["chess"]},
  {"uid": "dave", "password": "dave-pw"},
  {"uid": "frank", "password": "frank-pw", "groups": ["staff"], "disabled": true},
  {"uid": "grace", "password": "grace-pw", "login": "grace@example.org"},
  {"uid": "erin", "password": "erin-pw", "groups": ["tfa", "staff"], "two_factor": true,
   "app_passwords": ["erin-app"]},
  {"uid": "svc", "password": "svc-pw", "subadmin": ["staff", "chess"], "app_passwords": ["svc-app"]},
  {"uid": "svcadmin", "password": "svcadmin-pw", "admin": true}
]}"#;

struct Nc {
    child: Child,
    base: String,
    control: String,
}

impl Drop for Nc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &str, args: &[&str]) -> Nc {
    let dir = std::env::temp_dir().join(format!("nc32-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.json");
    std::fs::write(&users, USERS).unwrap();
    let common::Spawned {
        child,
        control,
        host,
        ..
    } = common::spawn(&users, "unused", args);
    Nc {
        child,
        base: format!("http://{host}"),
        control,
    }
}

/// One answer: status, head (status line and headers), body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    fn meta(&self) -> (u64, String) {
        let j = self.json();
        (
            j["ocs"]["meta"]["statuscode"].as_u64().unwrap(),
            j["ocs"]["meta"]["message"].as_str().unwrap().to_string(),
        )
    }
}

fn request(url: &str, method: &str, headers: &[(&str, String)]) -> Reply {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn basic(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}");
    let mut out = String::new();
    for c in raw.as_bytes().chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// `GET {base}{path}` as `user` with `OCS-APIRequest: true`.
fn ocs(nc: &Nc, path: &str, as_: Option<(&str, &str)>) -> Reply {
    ocs_with(nc, path, as_, &[])
}

fn ocs_with(nc: &Nc, path: &str, as_: Option<(&str, &str)>, extra: &[(&str, String)]) -> Reply {
    let mut h = vec![("OCS-APIRequest", "true".to_string())];
    if let Some((u, p)) = as_ {
        h.push(("Authorization", basic(u, p)));
    }
    h.extend(extra.iter().cloned());
    request(&format!("{}{path}", nc.base), "GET", &h)
}

fn throttle(nc: &Nc) -> Value {
    let r = request(&format!("{}/throttle", nc.control), "GET", &[]);
    serde_json::from_str(&r.body).unwrap()
}

fn failures(nc: &Nc, addr: &str) -> u64 {
    throttle(nc)["failures"][addr].as_u64().unwrap_or(0)
}

const ME: &str = "/ocs/v2.php/cloud/user?format=json";

#[test]
fn password_checks() {
    let nc = start("passwords", &["--nextcloud-version", "32"]);
    for (u, p) in [
        ("alice", "alice-pw"),
        ("alice", "alice-app"),
        ("ALICE", "alice-pw"),
    ] {
        let r = ocs(&nc, ME, Some((u, p)));
        assert_eq!(r.status, 200, "{u}");
        assert_eq!(r.json()["ocs"]["data"]["id"], "alice");
        assert_eq!(r.json()["ocs"]["data"]["display-name"], "Alice Liddell");
    }
    // The e-mail address logs in; data.id is the uid.
    let r = ocs(&nc, ME, Some(("grace@example.org", "grace-pw")));
    assert_eq!(
        (r.status, r.json()["ocs"]["data"]["id"].clone()),
        (200, "grace".into())
    );
    // Wrong password, unknown user: JSON as asked, WWW-Authenticate, counted.
    for (u, p) in [("alice", "wrong"), ("nobody", "x")] {
        let r = ocs(&nc, ME, Some((u, p)));
        assert_eq!(r.status, 401);
        assert_eq!(r.meta(), (997, "Unauthorised".into()));
        assert_eq!(r.json()["ocs"]["data"], serde_json::json!([]));
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Basic realm=\"Authorisation Required\"")
        );
    }
    assert_eq!(failures(&nc, "127.0.0.1"), 2);
    // Accept: application/json also picks JSON; neither: XML.
    let path = "/ocs/v2.php/cloud/user";
    let r = ocs_with(
        &nc,
        path,
        Some(("alice", "bad")),
        &[("Accept", "application/json".into())],
    );
    assert_eq!(r.meta().0, 997);
    let r = ocs(&nc, path, Some(("alice", "bad")));
    assert!(
        r.body.starts_with('<') && r.body.contains("<statuscode>997</statuscode>"),
        "{}",
        r.body
    );
    assert_eq!(failures(&nc, "127.0.0.1"), 4);
    // Disabled account, right password: 401 Unauthorised, not counted.
    let r = ocs(&nc, ME, Some(("frank", "frank-pw")));
    assert_eq!((r.status, r.meta()), (401, (997, "Unauthorised".into())));
    // Two-factor account: the password is never checked; not counted; no
    // WWW-Authenticate; app passwords work.
    for p in ["erin-pw", "wrong"] {
        let r = ocs(&nc, ME, Some(("erin", p)));
        assert_eq!(
            (r.status, r.meta()),
            (401, (997, "Current user is not logged in".into()))
        );
        assert_eq!(r.header("www-authenticate"), None);
    }
    assert_eq!(ocs(&nc, ME, Some(("erin", "erin-app"))).status, 200);
    assert_eq!(
        failures(&nc, "127.0.0.1"),
        4,
        "disabled and two-factor not counted"
    );
    // No OCS-APIRequest: 412; no credentials: 401, not counted.
    let r = request(
        &format!("{}{ME}", nc.base),
        "GET",
        &[("Authorization", basic("alice", "alice-pw"))],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (412, r#"{"message":"CSRF check failed"}"#)
    );
    let r = ocs(&nc, ME, None);
    assert_eq!(
        (r.status, r.meta()),
        (401, (997, "Current user is not logged in".into()))
    );
    // The 412 request logged alice in (the login comes before the CSRF
    // check), which cleared her 3 failures; nobody's remains.
    assert_eq!(failures(&nc, "127.0.0.1"), 1);
}

#[test]
fn a_block_after_the_eleventh_failure() {
    let nc = start("block", &["--nextcloud-version", "34"]);
    for n in 0..11 {
        assert_eq!(
            ocs(&nc, ME, Some((&format!("user{n}"), "x"))).status,
            401,
            "{n}"
        );
    }
    assert_eq!(throttle(&nc)["blocked"], serde_json::json!(["127.0.0.1"]));
    // Every request with credentials: right passwords, app passwords, the
    // service account; JSON as asked, else XML; no Retry-After; not counted.
    for (path, u, p) in [
        (ME, "alice", "alice-pw"),
        (ME, "alice", "alice-app"),
        ("/ocs/v2.php/cloud/users/bob?format=json", "svc", "svc-app"),
    ] {
        let r = ocs(&nc, path, Some((u, p)));
        assert_eq!(r.status, 429, "{u}");
        assert_eq!(r.meta(), (429, "Reached maximum delay".into()));
        assert_eq!(r.header("retry-after"), None);
    }
    let r = ocs(&nc, "/ocs/v2.php/cloud/user", Some(("alice", "alice-pw")));
    assert!(
        r.status == 429 && r.body.contains("<statuscode>429</statuscode>"),
        "{}",
        r.body
    );
    assert_eq!(failures(&nc, "127.0.0.1"), 11, "429s are not counted");
    // Without credentials the API still answers: capabilities and status.php.
    let caps = ocs(&nc, "/ocs/v2.php/cloud/capabilities?format=json", None);
    assert_eq!(caps.status, 200);
    let bf = &caps.json()["ocs"]["data"]["capabilities"]["bruteforce"];
    assert_eq!(
        (bf["delay"].as_u64(), bf["allow-listed"].as_bool()),
        (Some(25_000), Some(false))
    );
    let st = request(&format!("{}/status.php", nc.base), "GET", &[]);
    assert_eq!(st.status, 200);
    assert_eq!(st.json()["versionstring"], "34.0.1");
    // occ security:bruteforce:reset 127.0.0.1
    let r = request(
        &format!("{}/throttle/reset?addr=127.0.0.1", nc.control),
        "POST",
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(ocs(&nc, ME, Some(("alice", "alice-pw"))).status, 200);
    let caps = ocs(&nc, "/ocs/v2.php/cloud/capabilities?format=json", None);
    assert_eq!(
        caps.json()["ocs"]["data"]["capabilities"]["bruteforce"]["delay"],
        0
    );
}

#[test]
fn a_success_clears_only_that_login_names_failures() {
    let nc = start("clears", &["--nextcloud-version", "32"]);
    for u in ["alice", "alice", "alice", "alice", "bob", "carol"] {
        assert_eq!(ocs(&nc, ME, Some((u, "wrong"))).status, 401);
    }
    let caps = ocs(&nc, "/ocs/v2.php/cloud/capabilities?format=json", None);
    assert_eq!(
        caps.json()["ocs"]["data"]["capabilities"]["bruteforce"]["delay"],
        6400
    );
    assert_eq!(ocs(&nc, ME, Some(("alice", "alice-pw"))).status, 200);
    assert_eq!(failures(&nc, "127.0.0.1"), 2);
}

#[test]
fn allow_listed_records_nothing() {
    let nc = start(
        "allow",
        &["--nextcloud-version", "32", "--allow-listed", "127.0.0.1"],
    );
    for _ in 0..15 {
        assert_eq!(ocs(&nc, ME, Some(("alice", "wrong"))).status, 401);
    }
    assert_eq!(failures(&nc, "127.0.0.1"), 0);
    assert_eq!(ocs(&nc, ME, Some(("alice", "alice-pw"))).status, 200);
    let caps = ocs(&nc, "/ocs/v2.php/cloud/capabilities?format=json", None);
    let bf = &caps.json()["ocs"]["data"]["capabilities"]["bruteforce"];
    assert_eq!(
        (bf["delay"].as_u64(), bf["allow-listed"].as_bool()),
        (Some(0), Some(true))
    );
}

#[test]
fn forwarded_address_counts_only_behind_a_trusted_proxy() {
    let xff = [("X-Forwarded-For", "192.0.2.10".to_string())];
    let trusted = start(
        "proxy",
        &["--nextcloud-version", "34", "--trusted-proxy", "127.0.0.1"],
    );
    for _ in 0..3 {
        assert_eq!(
            ocs_with(&trusted, ME, Some(("alice", "wrong")), &xff).status,
            401
        );
    }
    assert_eq!(
        (
            failures(&trusted, "192.0.2.10"),
            failures(&trusted, "127.0.0.1")
        ),
        (3, 0)
    );
    // The forwarded address's own state in capabilities.
    let caps = ocs_with(
        &trusted,
        "/ocs/v2.php/cloud/capabilities?format=json",
        None,
        &xff,
    );
    assert_eq!(
        caps.json()["ocs"]["data"]["capabilities"]["bruteforce"]["delay"],
        800
    );
    let plain = start("noproxy", &["--nextcloud-version", "34"]);
    for _ in 0..3 {
        assert_eq!(
            ocs_with(&plain, ME, Some(("alice", "wrong")), &xff).status,
            401
        );
    }
    assert_eq!(
        (
            failures(&plain, "192.0.2.10"),
            failures(&plain, "127.0.0.1")
        ),
        (0, 3)
    );
}

const SUB: Option<(&str, &str)> = Some(("svc", "svc-app"));
const ADMIN: Option<(&str, &str)> = Some(("svcadmin", "svcadmin-pw"));

fn users_path(rest: &str) -> String {
    format!("/ocs/v2.php/cloud/users/{rest}?format=json")
}

#[test]
fn provisioning_as_subadmin_and_admin() {
    let nc = start("provisioning", &["--nextcloud-version", "34"]);
    // Visible user; a disabled one is enabled:false.
    let r = ocs(&nc, &users_path("bob"), SUB);
    assert_eq!(
        (r.status, r.json()["ocs"]["data"]["enabled"].clone()),
        (200, true.into())
    );
    let r = ocs(&nc, &users_path("frank"), SUB);
    assert_eq!(
        (r.status, r.json()["ocs"]["data"]["enabled"].clone()),
        (200, false.into())
    );
    // Outside the subadmin's groups: 404 998; the admin sees them.
    for who in ["dave", "svcadmin"] {
        let r = ocs(&nc, &users_path(who), SUB);
        assert_eq!((r.status, r.meta().0), (404, 998), "{who}");
        assert_eq!(ocs(&nc, &users_path(who), ADMIN).status, 200, "{who}");
    }
    // Unknown: 404 404 for both.
    for as_ in [SUB, ADMIN] {
        let r = ocs(&nc, &users_path("nobody"), as_);
        assert_eq!(
            (r.status, r.meta()),
            (404, (404, "User does not exist".into()))
        );
    }
    // E-mail address: 998 for the subadmin, the uid for the admin.
    let r = ocs(&nc, &users_path("grace@example.org"), SUB);
    assert_eq!((r.status, r.meta().0), (404, 998));
    let r = ocs(&nc, &users_path("grace@example.org"), ADMIN);
    assert_eq!(
        (r.status, r.json()["ocs"]["data"]["id"].clone()),
        (200, "grace".into())
    );
    // users/{id}/groups: the subadmin's groups only; 998 for unknown or
    // invisible users.
    let groups = |as_, who: &str| ocs(&nc, &users_path(&format!("{who}/groups")), as_);
    assert_eq!(
        groups(SUB, "erin").json()["ocs"]["data"]["groups"],
        serde_json::json!(["staff"])
    );
    assert_eq!(
        groups(ADMIN, "erin").json()["ocs"]["data"]["groups"],
        serde_json::json!(["tfa", "staff"])
    );
    for (as_, who) in [(SUB, "nobody"), (SUB, "dave"), (ADMIN, "nobody")] {
        let r = groups(as_, who);
        assert_eq!((r.status, r.meta().0), (404, 998), "{who}");
    }
    // users/{id}/groups/details: display names.
    let r = ocs(&nc, &users_path("alice/groups/details"), SUB);
    assert_eq!(r.status, 200);
    let g = &r.json()["ocs"]["data"]["groups"];
    assert_eq!(
        (g[0]["id"].as_str(), g[0]["displayname"].as_str()),
        (Some("staff"), Some("Staff Team"))
    );
    assert_eq!(
        (g[0]["usercount"].as_u64(), g[0]["disabled"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(
        (g[1]["id"].as_str(), g[1]["displayname"].as_str()),
        (Some("chess"), Some("Chess Club"))
    );
    // users/disabled (34, admin): frank's full record.
    let r = ocs(&nc, &users_path("disabled"), ADMIN);
    let users = &r.json()["ocs"]["data"]["users"];
    assert_eq!(
        users
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["frank".to_string()])
    );
    assert_eq!(users["frank"]["enabled"], false);
    // Wrong service app password: 401, counted.
    let r = ocs(&nc, &users_path("bob"), Some(("svc", "revoked")));
    assert_eq!((r.status, r.meta()), (401, (997, "Unauthorised".into())));
    assert_eq!(failures(&nc, "127.0.0.1"), 1);
    // Status with the version.
    let st = request(&format!("{}/status.php", nc.base), "GET", &[]);
    assert_eq!(
        (
            st.json()["version"].as_str(),
            st.json()["productname"].as_str()
        ),
        (Some("34.0.1.2"), Some("Nextcloud"))
    );
}

#[test]
fn group_members_paged_and_group_details() {
    let nc = start("groups", &["--nextcloud-version", "32"]);
    let members = |q: &str, as_| {
        ocs(
            &nc,
            &format!("/ocs/v2.php/cloud/groups/staff/users/details?format=json{q}"),
            as_,
        )
    };
    let all = members("", SUB).json();
    let users = all["ocs"]["data"]["users"].as_object().unwrap().clone();
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["alice", "bob", "erin", "frank"],
        "disabled members included"
    );
    assert_eq!(users["frank"]["enabled"], false);
    let mut paged = Vec::new();
    for offset in [0, 2] {
        let r = members(&format!("&limit=2&offset={offset}"), SUB).json();
        let page = r["ocs"]["data"]["users"].as_object().unwrap().clone();
        assert_eq!(page.len(), 2);
        paged.extend(page.keys().cloned());
    }
    assert_eq!(paged, ["alice", "bob", "erin", "frank"]);
    let past = members("&limit=2&offset=4", SUB).json();
    assert_eq!(
        past["ocs"]["data"]["users"],
        serde_json::json!([]),
        "a list past the end"
    );
    // A group it does not manage, or an unknown one: 404 998.
    for g in ["tfa", "nope"] {
        let r = ocs(
            &nc,
            &format!("/ocs/v2.php/cloud/groups/{g}/users/details?format=json"),
            SUB,
        );
        assert_eq!(
            (r.status, r.meta()),
            (404, (998, "The requested group could not be found".into()))
        );
    }
    // A plain user: 403.
    let r = members("", Some(("bob", "bob-pw")));
    assert_eq!(
        (r.status, r.meta()),
        (
            403,
            (403, "Logged in account must be at least a sub admin".into())
        )
    );
    // groups/details: 403 to the subadmin, display names to the admin.
    let r = ocs(&nc, "/ocs/v2.php/cloud/groups/details?format=json", SUB);
    assert_eq!(r.status, 403);
    assert!(r
        .meta()
        .1
        .starts_with("Logged in account must be an admin, a sub admin"));
    let r = ocs(&nc, "/ocs/v2.php/cloud/groups/details?format=json", ADMIN);
    let names: Vec<(String, String)> = r.json()["ocs"]["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().into(),
                g["displayname"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        names.contains(&("staff".into(), "Staff Team".into())),
        "{names:?}"
    );
    assert!(
        names.contains(&("chess".into(), "Chess Club".into())),
        "{names:?}"
    );
    // users/disabled is 34's: on 32 it is the user "disabled", unknown.
    let r = ocs(&nc, &users_path("disabled"), ADMIN);
    assert_eq!((r.status, r.meta().0), (404, 404));
}

#[test]
fn version_24_stays_the_default() {
    let nc = start("v24", &[]);
    let r = ocs(&nc, ME, Some(("alice", "wrong")));
    assert_eq!(r.status, 401);
    assert!(r.body.starts_with("<ocs>"), "24's fixed XML: {}", r.body);
    assert_eq!(
        ocs(&nc, "/ocs/v2.php/cloud/capabilities?format=json", None).status,
        404
    );
    assert_eq!(
        ocs(&nc, &users_path("alice/groups/details"), ADMIN).status,
        404
    );
    assert_eq!(throttle(&nc)["model"], "delay");
}
