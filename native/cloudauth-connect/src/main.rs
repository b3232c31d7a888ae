//! `cloudauth-connect`: an ejabberd `extauth_program` that relays the
//! extauth frames read on stdin to one long-lived `cloudauth --listen
//! ejabberd=ADDRESS` and writes its 4-byte replies to stdout. std only.

mod args;
mod relay;
mod report;
mod target;
mod wire;

use std::io::{self, Write};
use std::process::ExitCode;

use args::{Command, Settings};
use relay::Relay;
use report::Report;

/// Exit code for an invalid command line.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(settings)) => run(&settings),
        Ok(Command::Help) => print(args::HELP),
        Ok(Command::Version) => print(&format!(
            "cloudauth-connect {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        Err(e) => {
            report::fatal(&e);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Relays until stdin ends (exit 0); exit 1 when stdin or stdout fails.
fn run(settings: &Settings) -> ExitCode {
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut relay = Relay::new(settings.target.clone(), settings.timeout);
    let mut report = Report::new(&settings.target, settings.on_trouble);
    let mut frame = Vec::new();
    loop {
        match wire::read_frame(&mut input, &mut frame) {
            Ok(true) => {}
            Ok(false) => return ExitCode::SUCCESS,
            Err(e) => {
                report::fatal(&format_args!("cannot read stdin: {e}"));
                return ExitCode::FAILURE;
            }
        }
        let reply = match relay.forward(&frame) {
            Ok(reply) => {
                report.relayed();
                reply
            }
            Err(e) => {
                report.trouble(&e);
                settings.on_trouble
            }
        };
        if let Err(e) = output.write_all(&reply).and_then(|()| output.flush()) {
            report::fatal(&format_args!("cannot write stdout: {e}"));
            return ExitCode::FAILURE;
        }
    }
}
