//! Serves one request stream: decode frames, decide (overlapping where the
//! cloud is involved), and write replies strictly in request order.
//!
//! One loop owns both directions. An answer that needs no I/O (a token, a
//! bad frame) is written at once when nothing is pending before it; cloud
//! questions run as tasks, and their answers queue in request order.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudauth_core::backend::gate::through_door;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::codec::{Encoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::handler::{Handler, Note, Session, Step};
use crate::vocab::Protocol;
use crate::wire::Reply;

/// Requests decided concurrently on one stream before reading pauses.
pub const MAX_IN_FLIGHT: usize = 64;

pub use crate::vocab::End;

/// What the listener sees of one connection, to pick one to close when
/// full: since when it is idle, whether a request is in flight, and the
/// signal that closes it.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last request read or reply written.
    last_ms: AtomicU64,
    /// A request read and its reply not yet written.
    busy: AtomicBool,
    evict: CancellationToken,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            evict: CancellationToken::new(),
        }
    }
}

impl Activity {
    fn touch(&self, busy: bool) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// How long nothing happened on the connection; `None` while a request is in flight.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::Relaxed) {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }

    /// Asks the connection to close (requests already read are answered first).
    pub fn evict(&self) {
        self.evict.cancel();
    }
}

/// How a socket connection is watched.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Closed after this long without a request while nothing is pending.
    pub idle: Duration,
    /// Closed when a reply cannot be written for this long (the peer does not read).
    pub write: Duration,
    /// Shared with the listener's slot table.
    pub activity: Arc<Activity>,
}

/// Writes one reply, within `deadline` when there is one; `Ok(false)` when
/// it elapsed (the peer does not read).
async fn write_reply<W, C>(
    sink: &mut FramedWrite<W, C>,
    reply: Reply,
    deadline: Option<Duration>,
) -> io::Result<bool>
where
    W: AsyncWrite + Unpin,
    C: Encoder<Reply, Error = io::Error>,
{
    let write = async {
        sink.feed(reply).await?;
        sink.flush().await
    };
    match deadline {
        None => write.await.map(|()| true),
        Some(d) => match tokio::time::timeout(d, write).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        },
    }
}

type Pending = Pin<Box<dyn Future<Output = (Reply, Option<Note>)> + Send>>;

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Reads `protocol`'s requests from `reader` and writes replies to `writer` until EOF,
/// `quit`, `shutdown` turning true or, with `watch` set, its idle time
/// without a request while nothing is pending, its eviction, or a reply
/// the peer does not read within its write timeout; every request read is
/// answered before returning, except to a peer that does not read.
pub async fn serve<R, W>(
    protocol: Protocol,
    reader: R,
    writer: W,
    handler: Arc<Handler>,
    mut shutdown: watch::Receiver<bool>,
    watch: Option<Watch>,
) -> io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = FramedRead::new(reader, protocol.requests());
    let mut sink = FramedWrite::new(writer, protocol.requests());
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut session = Session::default();
    let mut end = None;
    let idle = watch.as_ref().map(|w| w.idle);
    let write_deadline = watch.as_ref().map(|w| w.write);
    let activity = watch.as_ref().map(|w| Arc::clone(&w.activity));
    let evicted = activity.as_ref().map(|a| a.evict.clone());
    let touch = |busy: bool| {
        if let Some(a) = &activity {
            a.touch(busy);
        }
    };
    // Restarted by every request and every reply; only armed with `idle`.
    let quiet = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(365 * 86_400)));
    tokio::pin!(quiet);
    let rearm = |quiet: std::pin::Pin<&mut tokio::time::Sleep>| {
        if let Some(d) = idle {
            quiet.reset(tokio::time::Instant::now() + d);
        }
    };
    loop {
        if end.is_some() && pending.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some((reply, note)) = pending.next(), if !pending.is_empty() => {
                // Its own deadline: the idle timer does not run while a write is blocked.
                if !write_reply(&mut sink, reply, write_deadline).await? {
                    return Ok(End::Unread);
                }
                if let Some(n) = note {
                    n.emit();
                }
                touch(!pending.is_empty());
                rearm(quiet.as_mut());
            }
            () = stopped(&mut shutdown), if end.is_none() => {
                end = Some(End::Shutdown);
            }
            () = &mut quiet, if idle.is_some() && end.is_none() && pending.is_empty() => {
                end = Some(End::Idle);
            }
            () = async { if let Some(e) = &evicted { e.cancelled().await } }, if evicted.is_some() && end.is_none() => {
                end = Some(End::Evicted);
            }
            item = frames.next(), if end.is_none() && pending.len() < MAX_IN_FLIGHT => {
                let incoming = match item {
                    None => {
                        end = Some(End::Eof);
                        continue;
                    }
                    Some(Ok(i)) => i,
                    Some(Err(e)) => {
                        match e.kind() {
                            // The peer's doing, not ours.
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                                debug!("peer closed the connection: {e}")
                            }
                            _ => warn!("reading requests failed: {e}"),
                        }
                        end = Some(End::Eof);
                        continue;
                    }
                };
                touch(true);
                rearm(quiet.as_mut());
                match handler.triage(incoming, protocol, &mut session) {
                    Step::Quit => {
                        debug!("quit requested");
                        end = Some(End::Quit);
                        touch(!pending.is_empty());
                    }
                    Step::Answer(reply, note) if pending.is_empty() => {
                        if !write_reply(&mut sink, reply, write_deadline).await? {
                            return Ok(End::Unread);
                        }
                        if let Some(n) = note {
                            n.emit();
                        }
                        touch(false);
                    }
                    Step::Answer(reply, note) => {
                        pending.push_back(Box::pin(std::future::ready((reply, note))))
                    }
                    Step::Ask(req) => {
                        let h = Arc::clone(&handler);
                        // A task of its own: a panic in a decision cannot take the session down.
                        // Its backend requests take this protocol's (front door's) share.
                        let task = tokio::spawn(through_door(protocol.label(), async move {
                            h.ask(req, protocol).await
                        }));
                        pending.push_back(Box::pin(async move {
                            task.await.unwrap_or_else(|e| {
                                warn!("a decision task failed ({e}); answered no");
                                (Reply::No, None)
                            })
                        }));
                    }
                }
            }
        }
    }
    let flushed = match write_deadline {
        None => sink.flush().await.map(|()| true),
        Some(d) => match tokio::time::timeout(d, sink.flush()).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        },
    };
    if !flushed? {
        return Ok(End::Unread);
    }
    Ok(end.unwrap_or(End::Eof))
}
