//! Log set-up: `<dir>/cloudauth.log`, or stderr. Never stdout, which
//! carries only replies.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::Level;

use crate::config::LogTarget;

/// File name inside the log directory.
pub const LOG_FILE: &str = "cloudauth.log";

/// Installs the global logger. Returns a warning when the log file could
/// not be opened and stderr is used instead.
pub fn init(target: &LogTarget, debug: bool) -> Option<String> {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    match target {
        LogTarget::Stderr => {
            builder.with_writer(io::stderr).init();
            None
        }
        LogTarget::Dir(dir) => {
            let path = dir.join(LOG_FILE);
            let opened = fs::create_dir_all(dir).and_then(|()| open_append(&path));
            match opened {
                Ok(file) => {
                    let shared = Arc::new(Mutex::new(file));
                    let _ = LOG_FILE_HANDLE.set((path, Arc::clone(&shared)));
                    builder
                        .with_writer(move || SharedFile(Arc::clone(&shared)))
                        .init();
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

static LOG_FILE_HANDLE: OnceLock<(PathBuf, Arc<Mutex<File>>)> = OnceLock::new();

/// A log file shared by all writers, swappable on reopen.
struct SharedFile(Arc<Mutex<File>>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Err(io::Error::other("log file lock poisoned")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock() {
            Ok(mut f) => f.flush(),
            Err(_) => Err(io::Error::other("log file lock poisoned")),
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Reopens the log file (after logrotate moved it). `Ok(false)` when
/// logging does not go to a file.
pub fn reopen() -> io::Result<bool> {
    let Some((path, shared)) = LOG_FILE_HANDLE.get() else {
        return Ok(false);
    };
    let fresh = open_append(path)?;
    match shared.lock() {
        Ok(mut f) => *f = fresh,
        Err(_) => return Err(io::Error::other("log file lock poisoned")),
    }
    Ok(true)
}
