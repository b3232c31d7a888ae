//! The core's log events, in ejabberd's log: a `tracing` subscriber that
//! queues each event (level and text) and a task on the NIF's runtime that
//! sends them as `{cloudauth_log, Level, Text}` to the sink process the
//! Erlang side registered (`ejabberd_auth_cloud_log`), which logs them
//! with ejabberd's logger at that level.
//!
//! Events are queued rather than sent where they happen because
//! `OwnedEnv::send_and_clear` must not run on a BEAM scheduler thread, and
//! some events (settings warnings) happen on one. The queue is bounded:
//! beyond [`QUEUE`] events waiting, new ones are counted and dropped, and
//! the count is reported with the next event that gets through.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use cloudauth_core::log_text::escape;
use rustler::{Encoder, LocalPid, OwnedEnv};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::runtime::runtime;

/// Events waiting to be sent, at most.
const QUEUE: usize = 1024;

mod atoms {
    rustler::atoms! { cloudauth_log, error, warning, info, debug }
}

/// Where events go: the sink process, once Erlang has named it.
static SINK: Mutex<Option<LocalPid>> = Mutex::new(None);
/// The queue's sending side, once the forwarding task runs.
static QUEUE_TX: OnceLock<mpsc::Sender<(Level, String)>> = OnceLock::new();
/// Events dropped because the queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Whether events reach ejabberd's log yet (the sink process starts just
/// after the first host: `ejabberd_auth_cloud:start/1`).
pub fn ready() -> bool {
    QUEUE_TX.get().is_some()
}

/// Makes `pid` the sink (a new one replaces the old) and, the first time,
/// installs the subscriber and starts the forwarding task.
pub fn set_sink(pid: LocalPid) -> Result<(), String> {
    if let Ok(mut s) = SINK.lock() {
        *s = Some(pid);
    }
    if QUEUE_TX.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    if QUEUE_TX.set(tx).is_err() {
        return Ok(());
    }
    runtime()?.spawn(forward(rx));
    // Only this library's copy of `tracing` is affected: the VM and other
    // NIF libraries keep their own.
    tracing::subscriber::set_global_default(ToErlang)
        .map_err(|e| format!("cannot install the log subscriber: {e}"))
}

async fn forward(mut rx: mpsc::Receiver<(Level, String)>) {
    while let Some((level, mut text)) = rx.recv().await {
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = write!(text, " ({dropped} earlier log events dropped: queue full)");
        }
        let Some(pid) = SINK.lock().ok().and_then(|s| *s) else {
            continue;
        };
        let level = match level {
            Level::ERROR => atoms::error(),
            Level::WARN => atoms::warning(),
            Level::INFO => atoms::info(),
            _ => atoms::debug(),
        };
        // Escaped as in cloudauth's own log: ejabberd's logger writes the
        // text as it is, and a user name or a backend's message must not
        // forge a line of it (controls, line separators, bidi marks).
        let text = escape(&text);
        let mut env = OwnedEnv::new();
        // A sink that died is replaced at the next start; until then events are lost.
        let _ = env.send_and_clear(&pid, |e| (atoms::cloudauth_log(), level, text).encode(e));
    }
}

/// Collects an event's message and other fields as one line.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// Sends events to the queue; spans are not used by the core.
struct ToErlang;

impl Subscriber for ToErlang {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        // ejabberd filters by its own log level; debug events are sent too.
        *meta.level() <= Level::DEBUG
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(tx) = QUEUE_TX.get() else { return };
        let mut line = Line(String::new());
        event.record(&mut line);
        if tx.try_send((*event.metadata().level(), line.0)).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
