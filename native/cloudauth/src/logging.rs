//! Log set-up: `<dir>/cloudauth.log`, or stderr. Never stdout, which
//! carries only replies.
//!
//! File lines are buffered: warnings and errors are flushed at once, other
//! lines within [`FLUSH_EVERY`] (call [`flush`] periodically and at exit),
//! so that a decision does not cost a write(2) of its own.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogTarget;

/// File name inside the log directory.
pub const LOG_FILE: &str = "cloudauth.log";
/// Longest time an info line stays in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The open log file, shared by all writers, swappable on reopen.
struct LogFile {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
}

static LOG: OnceLock<Arc<LogFile>> = OnceLock::new();

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Hands out one writer per log event.
#[derive(Clone)]
struct LogHandle(Arc<LogFile>);

/// Writer for one event; `urgent` events are flushed at once.
struct LogLine {
    file: Arc<LogFile>,
    urgent: bool,
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = self
            .file
            .out
            .lock()
            .map_err(|_| io::Error::other("log lock poisoned"))?;
        out.write_all(buf)?;
        if self.urgent {
            out.flush()?;
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
            builder.with_writer(io::stderr).init();
            None
        }
        LogTarget::Dir(dir) => {
            let path = dir.join(LOG_FILE);
            match fs::create_dir_all(dir).and_then(|()| open_append(&path)) {
                Ok(file) => {
                    let log = Arc::new(LogFile {
                        path,
                        out: Mutex::new(BufWriter::with_capacity(64 * 1024, file)),
                    });
                    let _ = LOG.set(Arc::clone(&log));
                    builder.with_writer(LogHandle(log)).init();
                    None
                }
                Err(e) => {
                    builder.with_writer(io::stderr).init();
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
            let _ = out.flush();
        }
    }
}

/// Flushes every [`FLUSH_EVERY`], forever (spawn it on the runtime).
pub async fn flush_periodically() {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush();
    }
}

/// Reopens the log file (after logrotate moved it). `Ok(false)` when
/// logging does not go to a file.
pub fn reopen() -> io::Result<bool> {
    let Some(log) = LOG.get() else {
        return Ok(false);
    };
    let fresh = open_append(&log.path)?;
    let mut out = log
        .out
        .lock()
        .map_err(|_| io::Error::other("log lock poisoned"))?;
    out.flush()?;
    *out = BufWriter::with_capacity(64 * 1024, fresh);
    Ok(true)
}
