//! Log set-up: `<dir>/cloudauth.log`, or stderr. Never stdout, which
//! carries only replies.

use std::fs::{self, OpenOptions};
use std::io;
use std::sync::Mutex;

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
            let opened = fs::create_dir_all(dir)
                .and_then(|()| OpenOptions::new().create(true).append(true).open(&path));
            match opened {
                Ok(file) => {
                    builder.with_writer(Mutex::new(file)).init();
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
