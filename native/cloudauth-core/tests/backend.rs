//! The backend client against a scripted HTTP server on loopback.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cloudauth_core::api::Operation;
use cloudauth_core::signature;
use cloudauth_core::{BackendClient, BackendError, DomainSettings, Secret, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{json, start, Answer};

fn settings(url: &str) -> DomainSettings {
    DomainSettings::new(url, Secret::new("0123456789ABCDEF"), None)
}

fn client(total_ms: u64) -> BackendClient {
    BackendClient::new(Timeouts {
        connect: Duration::from_millis(total_ms),
        total: Duration::from_millis(total_ms),
    })
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
    let c = client(2000);
    let s = settings(&srv.url);
    assert_eq!(c.auth(&s, "alice", "example.org", "right").await, Ok(true));
    assert_eq!(c.auth(&s, "alice", "example.org", "wrong").await, Ok(false));
    let seen = srv.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let expected_body = Operation::Auth {
        username: "alice",
        domain: "example.org",
        password: "right",
    }
    .body();
    assert_eq!(seen[0].body, expected_body.as_bytes());
    let sig = signature::sign(&s.secret, expected_body.as_bytes());
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
    let c = client(2000);
    let s = settings(&srv.url);
    for _ in 0..20 {
        assert_eq!(c.is_user(&s, "bob", "example.org").await, Ok(true));
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
                body: vec![b' '; cloudauth_core::backend::MAX_BODY + 10],
            },
            |e| matches!(e, BackendError::BodyTooLarge(_)),
        ),
        (Answer::Close, |e| {
            matches!(e, BackendError::Connect { .. } | BackendError::Body(_))
        }),
    ];
    for (answer, check) in cases {
        let srv = start(move |_| answer.clone()).await;
        let r = client(2000)
            .is_user(&settings(&srv.url), "bob", "example.org")
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
    let r = client(2000).auth(&settings(&srv.url), "a", "b", "c").await;
    assert!(
        matches!(r, Err(BackendError::Redirect { status: 307, .. })),
        "{r:?}"
    );
    assert_eq!(srv.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn slow_backend_times_out_within_the_deadline() {
    let srv = start(|_| Answer::Sleep(Duration::from_secs(30))).await;
    let started = Instant::now();
    let r = client(300).auth(&settings(&srv.url), "a", "b", "c").await;
    assert!(matches!(r, Err(BackendError::Timeout(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connection_and_bad_url_are_distinct() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let r = client(1000)
        .auth(&settings(&format!("http://{addr}/x")), "a", "b", "c")
        .await;
    assert!(
        matches!(r, Err(BackendError::ConnectionRefused { .. })),
        "{r:?}"
    );
    let r = client(1000)
        .auth(&settings("not a url"), "a", "b", "c")
        .await;
    assert!(matches!(r, Err(BackendError::BadUrl(_))), "{r:?}");
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
    let r = client(2000)
        .auth(&settings(&format!("https://{addr}/x")), "a", "b", "c")
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
    let c = client(2000);
    let s = settings(&srv.url);
    let r = c.shared_roster(&s, "alice", "example.org").await.unwrap();
    assert_eq!(r["bob"].groups, vec!["Team".to_string()]);
    assert!(c
        .shared_roster(&s, "carol", "example.org")
        .await
        .unwrap()
        .is_empty());
}
