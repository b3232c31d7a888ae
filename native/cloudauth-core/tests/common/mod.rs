//! A scripted HTTP/1.1 server on loopback for backend tests, and the
//! authenticator the decision tests build over an in-test backend.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

/// What the server answers.
#[derive(Clone)]
pub enum Answer {
    Http {
        status: u16,
        extra: &'static str,
        body: Vec<u8>,
    },
    Sleep(Duration),
    Close,
    /// Waits, then answers.
    Delayed(Duration, Box<Answer>),
}

pub fn json(status: u16, body: &str) -> Answer {
    Answer::Http {
        status,
        extra: "Content-Type: application/json\r\n",
        body: body.as_bytes().to_vec(),
    }
}

pub struct Server {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
}

async fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        head,
        body: buf[head_end..head_end + len].to_vec(),
    })
}

pub async fn start(answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let (s2, c2) = (Arc::clone(&seen), Arc::clone(&connections));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            let (seen, answer) = (Arc::clone(&s2), Arc::clone(&answer));
            tokio::spawn(async move {
                while let Some(req) = read_request(&mut sock).await {
                    seen.lock().unwrap().push(req.clone());
                    let mut reply = answer(&req);
                    if let Answer::Delayed(d, inner) = reply {
                        tokio::time::sleep(d).await;
                        reply = *inner;
                    }
                    match reply {
                        Answer::Http {
                            status,
                            extra,
                            body,
                        } => {
                            let head = format!(
                                "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\n\r\n",
                                body.len()
                            );
                            if sock.write_all(head.as_bytes()).await.is_err()
                                || sock.write_all(&body).await.is_err()
                            {
                                return;
                            }
                        }
                        Answer::Sleep(d) => tokio::time::sleep(d).await,
                        Answer::Close | Answer::Delayed(..) => return,
                    }
                }
            });
        }
    });
    Server {
        url: format!("http://{addr}/index.php/apps/ojsxc/ajax/externalApi.php"),
        seen,
        connections,
    }
}

/// An authenticator for every domain over `backend` (no token formats),
/// with a memory password cache (bcrypt cost 4), on `clock`.
pub fn cached_authenticator(
    backend: Arc<dyn cloudauth_core::Backend>,
    clock: &Arc<cloudauth_core::FixedClock>,
) -> cloudauth_core::Authenticator {
    use cloudauth_core::cache::{CacheTtls, MemoryStore, PasswordCache};
    let settings = cloudauth_core::DomainSettings {
        backend,
        tokens: Vec::new(),
        auth_domain: None,
        values: cloudauth_core::settings::values::Values::default(),
        generation: 1,
    };
    let cache = PasswordCache::new(Box::new(MemoryStore::default()), CacheTtls::default(), 4)
        .expect("OS randomness");
    cloudauth_core::Authenticator::new(
        Arc::new(cloudauth_core::SingleDomain::new(settings)),
        Arc::clone(clock) as Arc<dyn cloudauth_core::Clock>,
    )
    .with_cache(cache)
}
