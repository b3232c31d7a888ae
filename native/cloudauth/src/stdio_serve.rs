//! Serving stdin/stdout as ejabberd's extauth pool and Prosody use it: one
//! requester, mostly one request at a time, on pipes.
//!
//! The main thread reads with plain blocking reads and answers what needs
//! no I/O (a token, a bad frame) at once, like a minimal responder: one
//! `read` and one `write` per request, no event loop in between. Cloud
//! questions run as tasks on the async runtime, so several may overlap.
//! Replies are written strictly in request order by whichever thread
//! completes the next one; log lines follow their replies.
//!
//! Socket connections, where many requesters share one process, are served
//! by [`crate::serve`] instead.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::BytesMut;
use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio_util::codec::{Decoder, Encoder};
use tracing::{debug, warn};

use crate::handler::{Handler, Note, Session, Step};
use crate::serve::{End, MAX_IN_FLIGHT};
use crate::vocab::Protocol;
use crate::wire::{Reply, Requests};

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;
/// Replies decided but not yet written (waiting behind a slower one), at
/// most: past it the reader stops reading until they are written, so a
/// flood of cheap requests behind one slow request cannot grow memory.
pub const MAX_PENDING_REPLIES: u64 = 1024;

/// Replies not yet written, and where they go.
struct Pending {
    /// Sequence number of the next reply to write.
    next: u64,
    /// Replies decided out of order, waiting for their turn.
    ready: BTreeMap<u64, (Reply, Option<Note>)>,
    codec: Requests,
    buf: BytesMut,
    out: File,
    /// A failed write ends the session.
    broken: Option<io::ErrorKind>,
    /// The reader waits for replies to be written (back-pressure, end).
    reader_waits: bool,
}

/// Writes replies in request order, from any thread.
struct Ordered {
    pending: Mutex<Pending>,
    written: Condvar,
}

impl Ordered {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records the reply to request `seq` and writes every reply now due.
    fn complete(&self, seq: u64, reply: Reply, note: Option<Note>) {
        let mut notes = Vec::new();
        let wake_reader = {
            let mut p = self.lock();
            p.ready.insert(seq, (reply, note));
            let mut due = false;
            loop {
                let next = p.next;
                let Some((r, n)) = p.ready.remove(&next) else {
                    break;
                };
                let Pending { codec, buf, .. } = &mut *p;
                if let Err(e) = codec.encode(r, buf) {
                    warn!("encoding a reply failed: {e}");
                }
                notes.extend(n);
                p.next += 1;
                due = true;
            }
            if due && p.broken.is_none() {
                let Pending { buf, out, .. } = &mut *p;
                if let Err(e) = out.write_all(buf) {
                    warn!("writing replies failed: {e}");
                    p.broken = Some(e.kind());
                }
                p.buf.clear();
            }
            p.reader_waits
        };
        // A futex call only when someone listens: most replies have no waiter.
        if wake_reader {
            self.written.notify_all();
        }
        for n in notes {
            n.emit();
        }
    }

    /// Blocks while `issued - written >= limit`; the write error, if any.
    fn wait_below(&self, issued: u64, limit: u64) -> Result<(), io::ErrorKind> {
        let mut p = self.lock();
        while p.broken.is_none() && issued - p.next >= limit {
            p.reader_waits = true;
            p = match self.written.wait(p) {
                Ok(p) => p,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        p.reader_waits = false;
        p.broken.map_or(Ok(()), Err)
    }
}

/// Serves `protocol` on the process's stdin/stdout until EOF or
/// `quit`; every request read is answered before returning. Cloud
/// questions are spawned on `runtime`, which must run on other threads.
pub fn serve_stdio(protocol: Protocol, handler: Arc<Handler>, runtime: &Handle) -> io::Result<End> {
    let mut input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let ordered = Arc::new(Ordered {
        pending: Mutex::new(Pending {
            next: 0,
            ready: BTreeMap::new(),
            codec: protocol.requests(),
            buf: BytesMut::new(),
            out,
            broken: None,
            reader_waits: false,
        }),
        written: Condvar::new(),
    });
    // Spawns made while deciding (a roster sync after a login) need the runtime.
    let _in_runtime = runtime.enter();
    let mut decoder = protocol.requests();
    let mut session = Session::default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let (mut issued, mut eof) = (0u64, false);
    let end = 'session: loop {
        loop {
            let item = if eof {
                decoder.decode_eof(&mut buf)?
            } else {
                decoder.decode(&mut buf)?
            };
            let Some(item) = item else { break };
            let seq = issued;
            match handler.triage(item, protocol, &mut session) {
                Step::Quit => {
                    debug!("quit requested");
                    break 'session End::Quit;
                }
                Step::Answer(reply, note) => {
                    if issued - ordered.lock().next >= MAX_PENDING_REPLIES
                        && ordered.wait_below(issued, MAX_PENDING_REPLIES).is_err()
                    {
                        break 'session End::Eof;
                    }
                    issued += 1;
                    ordered.complete(seq, reply, note);
                }
                Step::Ask(req) => {
                    let max = MAX_IN_FLIGHT as u64;
                    if ordered.wait_below(issued, max).is_err() {
                        break 'session End::Eof;
                    }
                    issued += 1;
                    let (h, o) = (Arc::clone(&handler), Arc::clone(&ordered));
                    runtime.spawn(async move {
                        // Every request gets its reply, or the order would stall.
                        let (reply, note) = AssertUnwindSafe(h.ask(req, protocol))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                warn!("a decision panicked; answered no");
                                (Reply::No, None)
                            });
                        o.complete(seq, reply, note);
                    });
                }
            }
            if ordered.lock().broken.is_some() {
                break 'session End::Eof;
            }
        }
        if eof {
            break End::Eof;
        }
        match input.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                warn!("reading requests failed: {e}");
                break End::Eof;
            }
        }
    };
    // Answer everything read before leaving.
    let _ = ordered.wait_below(issued, 1);
    Ok(end)
}
