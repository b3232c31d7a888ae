//! Monitoring: what the handler and the sockets count, rendered with the
//! core's metrics as OpenMetrics text, served on `--listen metrics=ADDR`
//! (loopback or a unix socket, like every listener) to any `GET`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cloudauth_core::metrics::{self, Requests, Sample};
use cloudauth_core::{Authenticator, HttpClient};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::vocab::{End, ListenerKind};

/// Longest request head read from a scraper.
const MAX_HEAD: usize = 8 * 1024;
/// A scraper that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything counted for monitoring in this process.
pub struct Monitor {
    /// Decisions by protocol, operation, outcome and path.
    pub requests: Requests,
    /// Open connections, by [`ListenerKind::index`].
    connections: Box<[AtomicU64]>,
    /// Connections closed by the listener, by [`ListenerKind::index`] and [`Closed`] reason.
    closed: Box<[[AtomicU64; Closed::ALL.len()]]>,
    auth: Arc<Authenticator>,
    http: Arc<HttpClient>,
}

/// Why the listener closed (or refused) a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Idle longest while the listener was full.
    Evicted,
    /// Idle longest of its peer's share, or refused: the share was full of busy ones.
    PeerLimit,
    /// Its peer did not read a reply within the write timeout.
    Unread,
}

impl Closed {
    const ALL: [Closed; 3] = [Closed::Evicted, Closed::PeerLimit, Closed::Unread];

    fn label(self) -> &'static str {
        match self {
            Closed::Evicted => "evicted",
            Closed::PeerLimit => "peer_limit",
            Closed::Unread => "unread",
        }
    }
}

/// Counts one open connection while alive.
pub struct OpenConnection<'a>(&'a AtomicU64);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Monitor {
    /// Counters for a process deciding with `auth` over `http`.
    pub fn new(auth: Arc<Authenticator>, http: Arc<HttpClient>) -> Self {
        Monitor {
            requests: Requests::default(),
            connections: (0..ListenerKind::count())
                .map(|_| AtomicU64::new(0))
                .collect(),
            closed: (0..ListenerKind::count())
                .map(|_| Default::default())
                .collect(),
            auth,
            http,
        }
    }

    /// Counts a connection on a `kind` listener until the guard is dropped.
    pub fn connection(&self, kind: ListenerKind) -> OpenConnection<'_> {
        // Both tables have `ListenerKind::count()` rows, and an index is below it.
        let open = &self.connections[kind.index()];
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(open)
    }

    /// Counts a connection the listener closed or refused.
    pub fn closed(&self, kind: ListenerKind, why: Closed) {
        self.closed[kind.index()][why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut extra = Vec::new();
        for (p, c) in ListenerKind::all().zip(self.connections.iter()) {
            extra.push(Sample {
                name: "cloudauth_open_connections",
                kind: "gauge",
                help: "Open connections, by listener protocol.",
                labels: format!("protocol=\"{}\"", p.label()),
                value: c.load(Ordering::Relaxed),
            });
        }
        for (p, per_reason) in ListenerKind::all().zip(self.closed.iter()) {
            for (why, c) in Closed::ALL.iter().zip(per_reason) {
                extra.push(Sample {
                    name: "cloudauth_connections_closed",
                    kind: "counter",
                    help: "Connections the listener closed to make room (evicted, peer_limit) or because the peer did not read (unread), by listener protocol.",
                    labels: format!("protocol=\"{}\",reason=\"{}\"", p.label(), why.label()),
                    value: c.load(Ordering::Relaxed),
                });
            }
        }
        metrics::render_for(&self.requests, &self.http, &self.auth, extra)
    }
}

/// Answers one scraper: reads the request head (bounded in size and time),
/// writes the exposition, closes.
pub async fn serve_scrape<R, W>(
    mut reader: R,
    mut writer: W,
    monitor: &Monitor,
) -> std::io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(READ_TIMEOUT, read_head).await.is_err() {
        return Ok(End::Idle);
    }
    let response = if head.starts_with(b"GET ") {
        let body = monitor.render();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
    };
    writer.write_all(response.as_bytes()).await?;
    writer.shutdown().await?;
    Ok(End::Eof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_declaration_order() {
        for (i, why) in Closed::ALL.iter().enumerate() {
            assert_eq!(*why as usize, i, "{why:?}");
        }
    }
}
