//! Command line, exit codes and the end of stdin.

mod common;

use std::process::{Command, Stdio};

use common::{Conn, Relay, Server, YES};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cloudauth-connect"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: [&[&str]; 9] = [
        &[],
        &["--timeout", "0", "/run/x.sock"],
        &["--timeout", "soon", "/run/x.sock"],
        &["--timeout"],
        &["--on-trouble", "maybe", "/run/x.sock"],
        &["--bogus", "/run/x.sock"],
        &["/run/a.sock", "/run/b.sock"],
        &["192.0.2.1:23662"],
        &["localhost:23662"],
    ];
    for args in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("cloudauth-connect: "), "{err}");
    }
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Usage: cloudauth-connect"), "{text}");
    assert!(text.contains("--on-trouble"));
    let out = run(&["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("cloudauth-connect "));
}

#[test]
fn empty_stdin_exits_0_without_connecting() {
    let server = Server::unix(Conn::serve);
    let end = Relay::start(&[&server.addr]).finish();
    end.assert_clean_exit("yes");
    assert_eq!(end.stderr, "");
    assert_eq!(server.connections(), 0, "connects lazily");
}

#[test]
fn end_inside_a_frame_exits_0_and_forwards_nothing() {
    for partial in [&[0u8][..], &[0, 30, b'a', b'u', b't', b'h'][..]] {
        let server = Server::unix(Conn::serve);
        let mut relay = Relay::start(&[&server.addr]);
        relay.send_raw(partial);
        let end = relay.finish();
        end.assert_clean_exit("auth");
        assert!(server.requests().is_empty());
    }
}

#[test]
fn request_in_flight_at_the_end_is_answered_before_exit() {
    let server = Server::tcp(Conn::serve);
    let mut relay = Relay::start(&[&server.addr]);
    assert_eq!(relay.ask(b"auth:a:b:pw-yes"), YES);
    relay.send(b"auth:a:b:pw-yes");
    let end = relay.finish(); // stdin closed right after the request
    assert_eq!(end.status.code(), Some(0));
    assert_eq!(end.extra_stdout, YES, "the last reply, nothing else");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn dead_server_mid_session_then_eof() {
    let server = Server::unix(|c| {
        if let Some(p) = c.read_frame() {
            c.send(&common::decide(&p));
        }
    });
    let mut relay = Relay::start(&["--on-trouble", "fail", &server.addr]);
    assert_eq!(relay.ask(b"auth:a:b:pw-yes"), YES);
    std::fs::remove_file(&server.addr).unwrap(); // nobody can connect any more
    assert_eq!(relay.ask(b"auth:a:b:pw-yes"), common::NO);
    let end = relay.finish();
    end.assert_clean_exit("pw-yes");
    assert!(end.stderr.contains("cannot connect"), "{}", end.stderr);
}
