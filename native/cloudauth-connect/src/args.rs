//! Command line: `cloudauth-connect [--timeout SECS] [--on-trouble tempfail|fail] ADDRESS`.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use crate::target::{Target, TargetError};
use crate::wire::{Reply, REPLY_NO, REPLY_TEMPFAIL};

/// Default for `--timeout`: below ejabberd's hard-coded 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

/// Longest `--timeout` accepted (one hour).
const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// The `--help` text.
pub const HELP: &str = "\
cloudauth-connect: ejabberd extauth_program that relays requests to a cloudauth socket

Usage: cloudauth-connect [OPTIONS] ADDRESS

  ADDRESS                   a unix socket path (/run/cloudauth/ejabberd.sock) or a
                            loopback TCP address (127.0.0.1:23662) where
                            `cloudauth --listen ejabberd=ADDRESS` serves

Options:
  --timeout SECS            longest wait for one answer, connecting included
                            (default 25, below ejabberd's fixed 30 s)
  --on-trouble tempfail|fail
                            answer when the socket cannot be used: tempfail
                            (default, 00 02 00 02: ejabberd fails the operation
                            and caches nothing) or fail (00 02 00 00, \"no\")
  -h, --help                this text
  -V, --version             the version

Reads ejabberd's extauth frames (2-byte big-endian length + payload) on stdin,
one at a time, and writes the 4-byte answers to stdout. Connects on the first
request and keeps the connection; after any failure it answers the trouble
reply, drops the connection and connects afresh on the next request. Exits 0
at the end of stdin, 2 on invalid arguments. Requests are never printed.

ejabberd.yml:
  auth_method: external
  extauth_program: \"/usr/bin/cloudauth-connect /run/cloudauth/ejabberd.sock\"
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Relay with these settings.
    Run(Settings),
    /// Print [`HELP`].
    Help,
    /// Print the version.
    Version,
}

/// Settings of a relay run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where cloudauth listens.
    pub target: Target,
    /// Longest time for one request, from reading it to having its answer.
    pub timeout: Duration,
    /// The answer sent when the socket cannot be used.
    pub on_trouble: Reply,
}

/// An invalid command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// An option that needs a value came last.
    MissingValue(String),
    /// An option this program does not know.
    UnknownOption(String),
    /// `--timeout` is not a positive number of seconds up to an hour.
    BadTimeout(String),
    /// `--on-trouble` is neither `tempfail` nor `fail`.
    BadOnTrouble(String),
    /// No ADDRESS.
    NoAddress,
    /// More than one ADDRESS.
    ExtraArgument(String),
    /// ADDRESS is unusable.
    Target(TargetError),
    /// An argument that is not valid UTF-8.
    NotUnicode(OsString),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::MissingValue(o) => write!(f, "{o} needs a value"),
            ArgsError::UnknownOption(o) => write!(f, "unknown option {o:?} (see --help)"),
            ArgsError::BadTimeout(v) => {
                write!(
                    f,
                    "--timeout {v:?}: expected seconds, more than 0 and at most 3600"
                )
            }
            ArgsError::BadOnTrouble(v) => {
                write!(f, "--on-trouble {v:?}: expected tempfail or fail")
            }
            ArgsError::NoAddress => write!(f, "missing ADDRESS (see --help)"),
            ArgsError::ExtraArgument(a) => write!(f, "unexpected argument {a:?}: only one ADDRESS"),
            ArgsError::Target(e) => e.fmt(f),
            ArgsError::NotUnicode(a) => write!(f, "argument {a:?} is not valid UTF-8"),
        }
    }
}

impl std::error::Error for ArgsError {}

impl From<TargetError> for ArgsError {
    fn from(e: TargetError) -> Self {
        ArgsError::Target(e)
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, ArgsError> {
    let mut args = args
        .into_iter()
        .map(|a| a.into_string().map_err(ArgsError::NotUnicode));
    let mut timeout = DEFAULT_TIMEOUT;
    let mut on_trouble = REPLY_TEMPFAIL;
    let mut address: Option<String> = None;
    let mut only_operands = false;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if only_operands || !arg.starts_with('-') || arg == "-" {
            if address.is_some() {
                return Err(ArgsError::ExtraArgument(arg));
            }
            address = Some(arg);
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| match inline.clone() {
            Some(v) => Ok(v),
            None => args
                .next()
                .unwrap_or_else(|| Err(ArgsError::MissingValue(name.to_string()))),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--" => only_operands = true,
            "--timeout" => timeout = parse_timeout(&value("--timeout")?)?,
            "--on-trouble" => on_trouble = parse_on_trouble(&value("--on-trouble")?)?,
            _ => return Err(ArgsError::UnknownOption(name)),
        }
    }
    let address = address.ok_or(ArgsError::NoAddress)?;
    Ok(Command::Run(Settings {
        target: Target::parse(&address)?,
        timeout,
        on_trouble,
    }))
}

fn parse_timeout(text: &str) -> Result<Duration, ArgsError> {
    let bad = || ArgsError::BadTimeout(text.to_string());
    let secs: f64 = text.trim().parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs <= 0.0 || secs > MAX_TIMEOUT_SECS {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_on_trouble(text: &str) -> Result<Reply, ArgsError> {
    match text {
        "tempfail" => Ok(REPLY_TEMPFAIL),
        "fail" => Ok(REPLY_NO),
        _ => Err(ArgsError::BadOnTrouble(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, ArgsError> {
        parse(args.iter().map(OsString::from))
    }

    fn settings(args: &[&str]) -> Settings {
        match run(args).unwrap() {
            Command::Run(s) => s,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = settings(&["/run/cloudauth/ejabberd.sock"]);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.on_trouble, REPLY_TEMPFAIL);
        assert_eq!(
            s.target,
            Target::Unix("/run/cloudauth/ejabberd.sock".into())
        );
    }

    #[test]
    fn options_both_spellings() {
        let s = settings(&["--timeout", "2.5", "--on-trouble=fail", "127.0.0.1:23662"]);
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.on_trouble, REPLY_NO);
        let s = settings(&["127.0.0.1:1", "--timeout=7", "--on-trouble", "tempfail"]);
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.on_trouble, REPLY_TEMPFAIL);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(run(&["--help"]).unwrap(), Command::Help);
        assert_eq!(run(&["x", "-h"]).unwrap(), Command::Help);
        assert_eq!(run(&["-V"]).unwrap(), Command::Version);
    }

    #[test]
    fn errors() {
        assert_eq!(run(&[]), Err(ArgsError::NoAddress));
        assert_eq!(
            run(&["--timeout"]),
            Err(ArgsError::MissingValue("--timeout".into()))
        );
        for t in ["0", "-1", "abc", "nan", "inf", "3601"] {
            assert!(
                matches!(run(&["--timeout", t, "/s"]), Err(ArgsError::BadTimeout(_))),
                "{t}"
            );
        }
        assert!(matches!(
            run(&["--on-trouble", "no", "/s"]),
            Err(ArgsError::BadOnTrouble(_))
        ));
        assert!(matches!(
            run(&["--bogus", "/s"]),
            Err(ArgsError::UnknownOption(_))
        ));
        assert!(matches!(
            run(&["/a", "/b"]),
            Err(ArgsError::ExtraArgument(_))
        ));
        assert!(matches!(run(&["10.1.2.3:5"]), Err(ArgsError::Target(_))));
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'/', 0xff]);
        assert!(matches!(parse([odd]), Err(ArgsError::NotUnicode(_))));
    }

    #[test]
    fn the_man_page_describes_every_option_of_the_help() {
        let man = include_str!("../cloudauth-connect.1").replace("\\-", "-");
        let options: Vec<&str> = HELP
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '`' | '|'))
            .filter(|w| w.starts_with('-') && w.len() > 1 && *w != "--")
            .collect();
        assert!(options.contains(&"--on-trouble") && options.contains(&"-V"));
        for option in options {
            assert!(
                man.contains(option),
                "{option} missing from cloudauth-connect.1"
            );
        }
        let default = format!("default {}", DEFAULT_TIMEOUT.as_secs());
        assert!(man.contains(&default) && HELP.contains(&default));
        assert!(man.contains(&format!("at most {MAX_TIMEOUT_SECS}")));
    }

    #[test]
    fn double_dash_ends_options() {
        let s = settings(&["--", "./-odd.sock"]);
        assert_eq!(s.target, Target::Unix("./-odd.sock".into()));
    }
}
