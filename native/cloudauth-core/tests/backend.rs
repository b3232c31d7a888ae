//! The shared HTTP client and the jsxc backend against a scripted HTTP
//! server on loopback.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::sync::Arc;

use cloudauth_core::backend::jsxc::{Jsxc, Operation};
use cloudauth_core::backend::{http::parse_url, Account, Backend};
use cloudauth_core::signature;
use cloudauth_core::{BackendError, HttpClient, Secret, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{json, start, Answer};

const SECRET: &str = "0123456789ABCDEF";

/// The jsxc backend at `url`, with both deadlines `total_ms`.
fn jsxc(url: &str, total_ms: u64) -> Jsxc {
    let http = Arc::new(HttpClient::new(Timeouts {
        connect: Duration::from_millis(total_ms),
        total: Duration::from_millis(total_ms),
    }));
    let url = parse_url(url).expect("test URL");
    Jsxc::new(url, Secret::new(SECRET), http)
}

fn who<'a>(user: &'a str, domain: &'a str) -> Account<'a> {
    Account::new(user, domain)
}

#[tokio::test]
async fn yes_no_and_signed_body() {
    let srv = start(|req| {
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("password=right") {
            json(200, r#"{"result":"success","data":{"uid":"alice"}}"#)
        } else {
            json(200, r#"{"result":"noauth"}"#)
        }
    })
    .await;
    let c = jsxc(&srv.url, 2000);
    assert_eq!(c.auth(who("alice", "example.org"), "right").await, Ok(true));
    assert_eq!(
        c.auth(who("alice", "example.org"), "wrong").await,
        Ok(false)
    );
    let seen = srv.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let expected_body = Operation::Auth {
        username: "alice",
        domain: "example.org",
        password: "right",
    }
    .body();
    assert_eq!(seen[0].body, expected_body.as_bytes());
    let sig = signature::sign(&Secret::new(SECRET), expected_body.as_bytes());
    assert!(
        seen[0]
            .head
            .lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("x-jsxc-signature: {sig}"))),
        "{}",
        seen[0].head
    );
    assert!(seen[0]
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/x-www-form-urlencoded"));
    assert!(seen[0]
        .head
        .starts_with("POST /index.php/apps/ojsxc/ajax/externalApi.php "));
}

#[tokio::test]
async fn one_keep_alive_connection_for_sequential_requests() {
    let srv = start(|_| json(200, r#"{"result":"success","data":{"isUser":true}}"#)).await;
    let c = jsxc(&srv.url, 2000);
    for _ in 0..20 {
        assert_eq!(c.is_user(who("bob", "example.org")).await, Ok(true));
    }
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1);
}

/// A predicate on the error a case must produce.
type ErrorCheck = fn(&BackendError) -> bool;

#[tokio::test]
async fn trouble_is_never_a_no() {
    let cases: Vec<(Answer, ErrorCheck)> = vec![
        (
            json(
                500,
                r#"{"result":"error","data":{"msg":"Signature does not match"}}"#,
            ),
            |e| matches!(e, BackendError::SignatureRejected { status: 500, .. }),
        ),
        (
            Answer::Http {
                status: 500,
                extra: "",
                body: b"Internal Server Error".to_vec(),
            },
            |e| matches!(e, BackendError::HttpStatus { status: 500, .. }),
        ),
        (
            Answer::Http {
                status: 200,
                extra: "",
                body: b"<html>Maintenance</html>".to_vec(),
            },
            |e| matches!(e, BackendError::Decode(_)),
        ),
        (
            json(200, r#"{"result":"error","data":{"msg":"boom"}}"#),
            |e| matches!(e, BackendError::Api(m) if m == "boom"),
        ),
        (json(200, r#"{"result":"success","data":{}}"#), |e| {
            matches!(e, BackendError::Decode(_))
        }),
        (
            Answer::Http {
                status: 302,
                extra: "Location: https://elsewhere/\r\n",
                body: vec![],
            },
            |e| matches!(e, BackendError::Redirect { status: 302, location } if location == "https://elsewhere/"),
        ),
        (
            Answer::Http {
                status: 200,
                extra: "",
                body: vec![b' '; cloudauth_core::backend::http::MAX_BODY + 10],
            },
            |e| matches!(e, BackendError::BodyTooLarge(_)),
        ),
        (Answer::Close, |e| {
            matches!(e, BackendError::Connect { .. } | BackendError::Body(_))
        }),
    ];
    for (answer, check) in cases {
        let srv = start(move |_| answer.clone()).await;
        let r = jsxc(&srv.url, 2000)
            .is_user(who("bob", "example.org"))
            .await;
        match r {
            Err(e) => assert!(check(&e), "unexpected error {e:?}"),
            Ok(v) => panic!("trouble answered as {v}"),
        }
    }
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let srv = start(|req| {
        if req.head.starts_with("POST /other") {
            json(200, r#"{"result":"success","data":{"uid":"x"}}"#)
        } else {
            Answer::Http {
                status: 307,
                extra: "Location: /other\r\n",
                body: vec![],
            }
        }
    })
    .await;
    let r = jsxc(&srv.url, 2000).auth(who("a", "b"), "c").await;
    assert!(
        matches!(r, Err(BackendError::Redirect { status: 307, .. })),
        "{r:?}"
    );
    assert_eq!(srv.seen.lock().unwrap().len(), 1);
}

/// `http://host:port` of `url`.
fn origin(url: &str) -> &str {
    let path = url["http://".len()..]
        .find('/')
        .map_or(url.len(), |i| i + "http://".len());
    &url[..path]
}

/// Issue 24: a redirect's full `Location` (its query, a `user:password@`)
/// was logged; only its scheme, host and path are.
#[tokio::test]
async fn a_redirect_is_logged_without_query_or_credentials() {
    let srv = start(|req| Answer::Http {
        status: 302,
        extra: if req.body.ends_with(b"password=c") {
            "Location: https://u:hunter2@login.example/sso/start?token=hunter2&user=alice#hunter2\r\n"
        } else {
            "Location: /index.php/login?redirect_url=%2Fapps&password=hunter2\r\n"
        },
        body: vec![],
    })
    .await;
    let b = jsxc(&srv.url, 2000);
    let absolute = b.auth(who("a", "b"), "c").await.unwrap_err();
    let relative = b.auth(who("a", "b"), "d").await.unwrap_err();
    for (e, want) in [
        (&absolute, "https://login.example/sso/start".to_string()),
        (&relative, format!("{}/index.php/login", origin(&srv.url))),
    ] {
        let text = e.to_string();
        assert!(matches!(e, BackendError::Redirect { .. }), "{e:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("alice"),
            "{text}"
        );
        assert!(text.contains(&format!("{want:?}")), "{text} (want {want})");
    }
}

/// Issue 24: a backend reflecting the request put the bearer token of
/// `api-token-file` into `doctor`'s output (and a status error's log line).
#[tokio::test]
async fn a_reflected_authorization_reaches_neither_doctor_nor_the_log() {
    let srv = start(|req| Answer::Http {
        status: 500,
        extra: "Content-Type: text/plain\r\n",
        // As a debug page would: the credentials first.
        body: req
            .head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .chain(["Bad request", req.head.as_str()])
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    })
    .await;
    let dir = std::env::temp_dir().join(format!("cloudauth-reflect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "tok-hunter2\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let values = cloudauth_core::settings::values::Values::from_pairs(&[
        ("backend", "json"),
        ("url", &srv.url),
        ("api-token-file", token.to_str().unwrap()),
    ])
    .unwrap();
    let settings = cloudauth_core::domains::Builder::new(Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(2),
    })
    .build(&values)
    .unwrap();
    let report = settings.backend.doctor("example.org").await;
    let shown: Vec<String> = report.checks.iter().map(ToString::to_string).collect();
    assert!(!shown.is_empty());
    for line in &shown {
        assert!(!line.contains("hunter2"), "{line}");
    }
    assert!(shown.iter().any(|l| l.contains("HTTP 500")), "{shown:?}");
    let e = settings
        .backend
        .auth(who("alice", "example.org"), "pw-hunter2")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("text/plain"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn slow_backend_times_out_within_the_deadline() {
    let srv = start(|_| Answer::Sleep(Duration::from_secs(30))).await;
    let started = Instant::now();
    let r = jsxc(&srv.url, 300).auth(who("a", "b"), "c").await;
    assert!(matches!(r, Err(BackendError::Timeout(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connection_is_its_own_cause() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let r = jsxc(&format!("http://{addr}/x"), 1000)
        .auth(who("a", "b"), "c")
        .await;
    assert!(
        matches!(r, Err(BackendError::ConnectionRefused { .. })),
        "{r:?}"
    );
    // A bad URL never gets this far: the settings refuse it at start-up.
    assert!(parse_url("not a url").is_err());
    assert!(parse_url("ftp://x/").is_err());
}

#[tokio::test]
async fn tls_to_a_plain_http_server_is_a_tls_failure() {
    // Answers any bytes (a TLS ClientHello here) with plain HTTP, as a
    // misconfigured https:// URL pointing at an http port would.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let r = jsxc(&format!("https://{addr}/x"), 2000)
        .auth(who("a", "b"), "c")
        .await;
    assert!(matches!(r, Err(BackendError::Tls { .. })), "{r:?}");
}

#[tokio::test]
async fn shared_roster_object_and_empty() {
    let srv = start(|req| {
        if String::from_utf8_lossy(&req.body).contains("username=alice") {
            json(200, r#"{"result":"success","data":{"sharedRoster":{"bob":{"name":"Bob","groups":["Team"]}}}}"#)
        } else {
            json(200, r#"{"result":"success","data":{"sharedRoster":[]}}"#)
        }
    })
    .await;
    let c = jsxc(&srv.url, 2000);
    let r = c
        .shared_roster(who("alice", "example.org"))
        .expect("jsxc gives rosters");
    assert_eq!(r.await.unwrap()["bob"].groups, vec!["Team".to_string()]);
    let r = c
        .shared_roster(who("carol", "example.org"))
        .expect("jsxc gives rosters");
    assert!(r.await.unwrap().is_empty());
}
