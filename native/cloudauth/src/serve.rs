//! Serves one request stream: decode frames, decide (overlapping where the
//! cloud is involved), and write replies strictly in request order.
//!
//! One loop owns both directions. An answer that needs no I/O (a token, a
//! bad frame) is written at once when nothing is pending before it; cloud
//! questions run as tasks, and their answers queue in request order.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use tracing::{debug, warn};

use crate::codec::{Incoming, Reply};
use crate::config::Protocol;
use crate::handler::{Handler, Note, Step};

/// Requests decided concurrently on one stream before reading pauses.
pub const MAX_IN_FLIGHT: usize = 64;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed its side.
    Eof,
    /// Nothing arrived within the idle timeout (socket connections only).
    Idle,
    /// The peer sent `quit` or `exit`.
    Quit,
    /// The process is shutting down; requests already read were answered.
    Shutdown,
}

type Pending = Pin<Box<dyn Future<Output = (Reply, Option<Note>)> + Send>>;

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Reads requests from `reader` and writes replies to `writer` until EOF,
/// `quit`, `shutdown` turning true or, with `idle` set, that long without a
/// request while nothing is pending; every request read is answered before
/// returning.
pub async fn serve<R, W, C>(
    reader: R,
    writer: W,
    handler: Arc<Handler>,
    protocol: Protocol,
    mut shutdown: watch::Receiver<bool>,
    idle: Option<Duration>,
) -> io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    C: Decoder<Item = Incoming, Error = io::Error> + Encoder<Reply, Error = io::Error> + Default,
{
    let mut frames = FramedRead::new(reader, C::default());
    let mut sink = FramedWrite::new(writer, C::default());
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut end = None;
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
                sink.feed(reply).await?;
                sink.flush().await?;
                if let Some(n) = note {
                    n.emit();
                }
                rearm(quiet.as_mut());
            }
            () = stopped(&mut shutdown), if end.is_none() => {
                end = Some(End::Shutdown);
            }
            () = &mut quiet, if idle.is_some() && end.is_none() && pending.is_empty() => {
                end = Some(End::Idle);
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
                rearm(quiet.as_mut());
                match handler.triage(incoming, protocol) {
                    Step::Quit => {
                        debug!("quit requested");
                        end = Some(End::Quit);
                    }
                    Step::Answer(reply, note) if pending.is_empty() => {
                        sink.feed(reply).await?;
                        sink.flush().await?;
                        if let Some(n) = note {
                            n.emit();
                        }
                    }
                    Step::Answer(reply, note) => {
                        pending.push_back(Box::pin(std::future::ready((reply, note))))
                    }
                    Step::Ask(req) => {
                        let h = Arc::clone(&handler);
                        // A task of its own: a panic in a decision cannot take the session down.
                        let task = tokio::spawn(async move { h.ask(req, protocol).await });
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
    sink.flush().await?;
    Ok(end.unwrap_or(End::Eof))
}
