//! Starting the test backend binary for a test: the one way its READY line
//! is read (`READY api=URL control=URL`, as the e2e scripts read it).

// Each test crate compiles this module and reads only some of its fields.
#![allow(dead_code)]
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running test backend.
pub struct Spawned {
    pub child: Child,
    /// The JSXC API's URL.
    pub api: String,
    /// The control server's base URL.
    pub control: String,
    /// `host:port` of the API (the OCS API's base is `http://{host}`).
    pub host: String,
}

/// Runs the binary with `users` as its users file, `secret`, and extra `args`.
pub fn spawn(users: &Path, secret: &str, args: &[&str]) -> Spawned {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jsxc-test-backend"))
        .args(["--secret", secret, "--quiet", "--users"])
        .arg(users)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test backend starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut line)
        .expect("its READY line");
    let rest = line.trim().strip_prefix("READY api=").expect("READY line");
    let (api, control) = rest.split_once(" control=").expect("a control URL");
    let host = api
        .strip_prefix("http://")
        .and_then(|a| a.split('/').next())
        .expect("an http API URL")
        .to_string();
    Spawned {
        child,
        api: api.into(),
        control: control.into(),
        host,
    }
}
