//! Log set-up: `<dir>/cloudauth.log`, the journal (under systemd, when no
//! log directory is configured), or stderr. Never stdout, which carries
//! only replies.
//!
//! File lines are buffered: warnings and errors are flushed at once, other
//! lines within [`FLUSH_EVERY`] (call [`flush`] periodically and at exit),
//! so that a decision does not cost a write(2) of its own.
//!
//! Log rotation works without telling us, as with xcauth's
//! `WatchedFileHandler` (xcauth's logrotate file has no postrotate): every
//! flush tick checks whether the path still names the open file, and
//! reopens it when it was moved or removed. `SIGHUP` reopens at once.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudauth_core::log_text::sanitize;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

use crate::vocab::LogTarget;

/// File name inside the log directory.
pub const LOG_FILE: &str = "cloudauth.log";
/// Longest time an info line stays in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The open log file, shared by all writers, swappable on reopen.
struct LogFile {
    path: PathBuf,
    out: Mutex<Open>,
}

/// The file as opened: its writer and which inode it is.
struct Open {
    writer: BufWriter<File>,
    id: (u64, u64),
}

impl Open {
    fn new(file: File) -> io::Result<Self> {
        let m = file.metadata()?;
        Ok(Open {
            id: (m.dev(), m.ino()),
            writer: BufWriter::with_capacity(64 * 1024, file),
        })
    }
}

static LOG: OnceLock<Arc<LogFile>> = OnceLock::new();

/// Opens for appending, created 0640, never through a symlink (a log
/// directory writable by someone else must not redirect our writes).
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Hands out one writer per log event.
#[derive(Clone)]
struct LogHandle(Arc<LogFile>);

/// Writer for one event; `urgent` events are flushed at once.
struct LogLine {
    file: Arc<LogFile>,
    urgent: bool,
}

/// Standard error, each event sanitized.
struct SafeStderr;

impl Write for SafeStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write_all(&sanitize(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = self
            .file
            .out
            .lock()
            .map_err(|_| io::Error::other("log lock poisoned"))?;
        out.writer.write_all(&sanitize(buf))?;
        if self.urgent {
            out.writer.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogHandle {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            file: Arc::clone(&self.0),
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LogLine {
        LogLine {
            file: Arc::clone(&self.0),
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// UTC timestamps `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`; the part up to the
/// seconds is formatted once per second.
struct UtcMicros;

thread_local! {
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, micros) = (now.as_secs(), now.subsec_micros());
        SECOND.with(|cell| {
            let mut cached = cell.borrow_mut();
            if cached.0 != secs {
                *cached = (
                    secs,
                    cloudauth_core::timestamp::format(secs).replacen(' ', "T", 1),
                );
            }
            write!(w, "{}.{micros:06}Z", cached.1)
        })
    }
}

/// Lines for the journal: `<N>` syslog priority prefixes (sd-daemon(3)),
/// no timestamp (the journal has its own).
struct JournalLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JournalLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        write!(w, "<{priority}>")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// True when standard error is connected to the journal: systemd sets
/// `JOURNAL_STREAM` to its device and inode (systemd.exec(5)).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(m) = fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino())
}

/// Installs the global logger. Returns a warning when the log file could
/// not be opened and stderr is used instead.
pub fn init(target: &LogTarget, debug: bool) -> Option<String> {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .with_timer(UtcMicros);
    match target {
        LogTarget::Stderr => {
            builder.with_writer(|| SafeStderr).init();
            None
        }
        LogTarget::Journal => {
            builder
                .event_format(JournalLine)
                .with_writer(|| SafeStderr)
                .init();
            None
        }
        LogTarget::Dir(dir) => {
            let path = dir.join(LOG_FILE);
            let opened = fs::create_dir_all(dir)
                .and_then(|()| open_append(&path))
                .and_then(Open::new);
            match opened {
                Ok(open) => {
                    let log = Arc::new(LogFile {
                        path,
                        out: Mutex::new(open),
                    });
                    let _ = LOG.set(Arc::clone(&log));
                    builder.with_writer(LogHandle(log)).init();
                    None
                }
                Err(e) => {
                    builder.with_writer(|| SafeStderr).init();
                    Some(format!(
                        "cannot open log file {}: {e}; logging to stderr",
                        path.display()
                    ))
                }
            }
        }
    }
}

/// Writes buffered lines out. Cheap when there are none.
pub fn flush() {
    if let Some(log) = LOG.get() {
        if let Ok(mut out) = log.out.lock() {
            let _ = out.writer.flush();
        }
    }
}

/// Flushes every [`FLUSH_EVERY`] and follows a rotated or removed log
/// file, forever (spawn it on the runtime).
pub async fn flush_periodically() {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush();
        if rotated() {
            match reopen() {
                Ok(_) => tracing::info!("log file was moved or removed: reopened"),
                Err(e) => tracing::warn!("log file was moved or removed; cannot reopen it: {e}"),
            }
        }
    }
}

/// True when the log path no longer names the open file.
fn rotated() -> bool {
    let Some(log) = LOG.get() else {
        return false;
    };
    let now = fs::symlink_metadata(&log.path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    match log.out.lock() {
        Ok(out) => now != Some(out.id),
        Err(_) => false,
    }
}

/// Reopens the log file (after logrotate moved it). `Ok(false)` when
/// logging does not go to a file.
pub fn reopen() -> io::Result<bool> {
    let Some(log) = LOG.get() else {
        return Ok(false);
    };
    let fresh = Open::new(open_append(&log.path)?)?;
    let mut out = log
        .out
        .lock()
        .map_err(|_| io::Error::other("log lock poisoned"))?;
    out.writer.flush()?;
    *out = fresh;
    Ok(true)
}

/// Reopens the log file on every `SIGHUP`, forever (spawn it on the
/// runtime): what logrotate's postrotate and systemd's ExecReload send.
pub async fn reopen_on_hangup() {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot handle SIGHUP (log reopening): {e}");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match reopen() {
            Ok(true) => tracing::info!("SIGHUP: log file reopened"),
            Ok(false) => tracing::debug!("SIGHUP: not logging to a file"),
            Err(e) => tracing::warn!("SIGHUP: cannot reopen the log file: {e}"),
        }
    }
}
