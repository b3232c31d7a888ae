//! Serves one request stream: decode frames, decide (overlapping where the
//! cloud is involved), and write replies strictly in request order.

use std::io;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use tracing::{debug, error, warn};

use crate::codec::{Incoming, Reply};
use crate::handler::{Handler, Step};
use crate::request::Dialect;

/// Requests decided concurrently on one stream before reading pauses.
pub const MAX_IN_FLIGHT: usize = 64;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed its side.
    Eof,
    /// The peer sent `quit` or `exit`.
    Quit,
    /// The process is shutting down; requests already read were answered.
    Shutdown,
}

/// Reads requests from `reader` and writes replies to `writer` until EOF,
/// `quit` or `shutdown` turning true; every request read is answered before
/// returning.
pub async fn serve<R, W, C>(
    reader: R,
    writer: W,
    handler: Arc<Handler>,
    dialect: Dialect,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    C: Decoder<Item = Incoming, Error = io::Error>
        + Encoder<Reply, Error = io::Error>
        + Default
        + Send
        + 'static,
{
    let mut frames = FramedRead::new(reader, C::default());
    let (queue, pending) = mpsc::channel::<oneshot::Receiver<Reply>>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_in_order(
        FramedWrite::new(writer, C::default()),
        pending,
    ));

    let mut end = End::Eof;
    loop {
        let item = tokio::select! {
            item = frames.next() => item,
            _ = shutdown.wait_for(|stop| *stop) => {
                end = End::Shutdown;
                break;
            }
        };
        let Some(item) = item else { break };
        let incoming = match item {
            Ok(i) => i,
            Err(e) => {
                error!("reading requests failed: {e}");
                break;
            }
        };
        let (tx, rx) = oneshot::channel();
        match handler.triage(incoming, dialect) {
            Step::Quit => {
                debug!("quit requested");
                end = End::Quit;
                break;
            }
            Step::Answer(reply) => {
                let _ = tx.send(reply);
            }
            Step::Ask(req) => {
                let h = Arc::clone(&handler);
                tokio::spawn(async move {
                    let _ = tx.send(h.ask(req).await);
                });
            }
        }
        if queue.send(rx).await.is_err() {
            break; // the writer is gone (stdout closed)
        }
    }
    drop(queue);
    match writer.await {
        Ok(r) => r.map(|()| end),
        Err(e) => Err(io::Error::other(format!("reply writer failed: {e}"))),
    }
}

async fn write_in_order<W, E>(
    mut sink: FramedWrite<W, E>,
    mut pending: mpsc::Receiver<oneshot::Receiver<Reply>>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    E: Encoder<Reply, Error = io::Error>,
{
    while let Some(mut rx) = pending.recv().await {
        let reply = match rx.try_recv() {
            Ok(r) => r,
            Err(oneshot::error::TryRecvError::Empty) => {
                // Everything before this one goes out now, not after the slow answer.
                sink.flush().await?;
                rx.await.unwrap_or_else(|_| {
                    warn!("a decision task ended without answering; answered no");
                    Reply::No
                })
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                warn!("a decision task ended without answering; answered no");
                Reply::No
            }
        };
        sink.feed(reply).await?;
        if pending.is_empty() {
            sink.flush().await?;
        }
    }
    sink.flush().await
}
