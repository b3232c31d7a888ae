//! Socket mode: every listener on one async runtime, one task per
//! connection, a bound on open connections (accepting pauses at the bound),
//! graceful shutdown on SIGTERM/SIGINT (requests already read are answered),
//! and log reopening on SIGHUP.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Protocol;
use crate::handler::Handler;
use crate::listen::Listener;
use crate::protocols::serve_protocol;

/// Open connections per listener before that listener pauses accepting.
/// Per listener, so that a flood on one (say the loopback Postfix port)
/// cannot starve the others.
pub const MAX_CONNECTIONS: usize = 1024;

/// What every connection of every listener shares.
#[derive(Clone)]
struct Shared {
    handler: Arc<Handler>,
    stop: watch::Receiver<bool>,
    connections: TaskTracker,
    idle: Duration,
}

/// Serves all `listeners` until SIGTERM or SIGINT, then drains for at most
/// `drain`; connections silent for `idle` are closed.
pub async fn run(
    listeners: Vec<(Protocol, Listener)>,
    handler: Arc<Handler>,
    drain: Duration,
    idle: Duration,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections = TaskTracker::new();
    let shared = Shared {
        handler,
        stop: stop_rx,
        connections: connections.clone(),
        idle,
    };
    let mut acceptors = Vec::new();
    for (protocol, listener) in listeners {
        info!("listening for {protocol:?} on {}", listener.describe());
        acceptors.push(tokio::spawn(accept_loop(
            protocol,
            listener,
            shared.clone(),
            Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        )));
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    let _ = stop_tx.send(true);
    for a in acceptors {
        let _ = a.await;
    }
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        warn!("connections still busy after {drain:?}; exiting anyway");
    }
    info!("shut down");
    Ok(())
}

async fn accept_loop(
    protocol: Protocol,
    listener: Listener,
    shared: Shared,
    slots: Arc<Semaphore>,
) {
    let mut stop = shared.stop.clone();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (reader, writer, peer) = match accepted {
            Ok(parts) => parts,
            Err(e) => {
                warn!("accept on {} failed: {e}", listener.describe());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (h, s, idle) = (
            Arc::clone(&shared.handler),
            shared.stop.clone(),
            shared.idle,
        );
        let monitor = Arc::clone(h.monitor());
        shared.connections.spawn(async move {
            let _open = monitor.connection(protocol);
            debug!("{protocol:?} connection from {peer}");
            match serve_protocol(protocol, reader, writer, h, s, Some(idle)).await {
                Ok(end) => debug!("{protocol:?} connection from {peer} ended ({end:?})"),
                Err(e) => debug!("{protocol:?} connection from {peer} failed: {e}"),
            }
            drop(permit);
        });
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

async fn accept(listener: &Listener) -> io::Result<(Reader, Writer, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w), peer.to_string()))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w), "unix socket".to_string()))
        }
    }
}
