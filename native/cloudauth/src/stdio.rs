//! Non-blocking standard input and output.
//!
//! When stdin/stdout are pipes (as ejabberd and Prosody set them up) they
//! are driven by the event loop directly, with no helper threads; anything
//! else (a terminal, a file) falls back to tokio's thread-backed stdio.

use std::os::fd::AsFd;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;

/// Readable end of the process's stdin.
pub type Input = Pin<Box<dyn AsyncRead + Send>>;
/// Writable end of the process's stdout.
pub type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// Standard input, as a pipe receiver when it is a pipe. Needs a runtime.
pub fn stdin() -> Input {
    let pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok());
    match pipe {
        Some(rx) => Box::pin(rx),
        None => Box::pin(tokio::io::stdin()),
    }
}

/// Standard output, as a pipe sender when it is a pipe. Needs a runtime.
pub fn stdout() -> Output {
    let pipe = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| pipe::Sender::from_owned_fd(fd).ok());
    match pipe {
        Some(tx) => Box::pin(tx),
        None => Box::pin(tokio::io::stdout()),
    }
}
