//! The relay against fake servers: order, reconnects, timeouts, bad replies.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{dead_tcp_addr, decide, frame, temp_dir, Conn, Relay, Server, NO, TEMPFAIL, YES};

/// A failure that needs no waiting must be answered this fast.
const QUICK: Duration = Duration::from_secs(1);

fn requests() -> Vec<Vec<u8>> {
    let mut biggest = vec![b'x'; 65532];
    biggest.extend_from_slice(b"yes");
    vec![
        b"auth:alice:localhost:pw-yes".to_vec(),
        b"isuser:bob:localhost".to_vec(),
        "auth:jürgen:localhost:pässwörd-tmp".as_bytes().to_vec(),
        Vec::new(),
        biggest,
        b"auth:carol:localhost:a:b:c".to_vec(),
    ]
}

fn relays_in_order(server: Server) {
    let reqs = requests();
    let mut relay = Relay::start(&[&server.addr]);
    for q in &reqs {
        assert_eq!(relay.ask(q), decide(q));
    }
    // All at once: still one at a time, answered in order.
    let all: Vec<u8> = reqs.iter().flat_map(|q| frame(q)).collect();
    relay.send_raw(&all);
    for q in &reqs {
        assert_eq!(relay.reply(), decide(q));
    }
    let end = relay.finish();
    end.assert_clean_exit("pw-yes");
    assert_eq!(end.stderr, "");
    assert_eq!(server.connections(), 1, "one kept connection");
    let seen = server.requests();
    assert_eq!(seen.len(), 2 * reqs.len());
    for (i, (conn, payload)) in seen.iter().enumerate() {
        assert_eq!(*conn, 0);
        assert_eq!(
            payload,
            &reqs[i % reqs.len()],
            "request {i} forwarded as-is"
        );
    }
}

#[test]
fn relays_in_order_over_unix() {
    relays_in_order(Server::unix(Conn::serve));
}

#[test]
fn relays_in_order_over_tcp() {
    relays_in_order(Server::tcp(Conn::serve));
}

#[test]
fn reply_in_pieces_is_put_together() {
    let server = Server::unix(|c| {
        while c.read_frame().is_some() {
            c.send(&[0, 2]);
            sleep(Duration::from_millis(50));
            c.send(&[0, 1]);
        }
    });
    let mut relay = Relay::start(&[&server.addr]);
    assert_eq!(relay.ask(b"isuser:a:b"), YES);
    assert_eq!(relay.ask(b"isuser:a:b"), YES);
    relay.finish().assert_clean_exit("isuser");
    assert_eq!(server.connections(), 1);
}

#[test]
fn no_server_is_trouble_at_once() {
    let dir = temp_dir("absent");
    let missing = dir.join("nobody.sock").display().to_string();
    for addr in [missing, dead_tcp_addr()] {
        for (flags, trouble) in [(&[][..], TEMPFAIL), (&["--on-trouble", "fail"][..], NO)] {
            let mut args = flags.to_vec();
            args.push(&addr);
            let mut relay = Relay::start(&args);
            for _ in 0..3 {
                let (reply, took) = relay.ask_timed(b"auth:alice:localhost:secret-pw");
                assert_eq!(reply, trouble, "{addr} {flags:?}");
                assert!(took < QUICK, "{addr}: took {took:?}");
            }
            let end = relay.finish();
            end.assert_clean_exit("secret-pw");
            assert!(end.stderr.contains("cannot connect"), "{}", end.stderr);
            assert_eq!(
                end.stderr.lines().count(),
                1,
                "repeats are not reported: {}",
                end.stderr
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn server_that_comes_back_is_used_without_restart() {
    let dir = temp_dir("later");
    let path = dir.join("ejabberd.sock");
    let mut relay = Relay::start(&[path.to_str().unwrap()]);
    assert_eq!(relay.ask(b"auth:a:b:pw-yes"), TEMPFAIL);
    let server = Server::unix_at(&path, Conn::serve);
    assert_eq!(relay.ask(b"auth:a:b:pw-yes"), YES);
    let end = relay.finish();
    end.assert_clean_exit("pw-yes");
    assert!(end.stderr.contains("relaying again"), "{}", end.stderr);
    assert_eq!(server.requests(), vec![(0, b"auth:a:b:pw-yes".to_vec())]);
    let _ = std::fs::remove_dir_all(dir);
}

/// The server closes connections idle for 200 ms, as cloudauth does after 5 minutes.
fn idle_close_reconnects(server: Server) {
    let mut relay = Relay::start(&[&server.addr]);
    let reqs = [&b"1-yes"[..], b"2-no", b"3-tmp"];
    for q in reqs {
        let (reply, took) = relay.ask_timed(q);
        assert_eq!(reply, decide(q));
        assert!(took < QUICK, "took {took:?}");
        sleep(Duration::from_millis(500));
    }
    let end = relay.finish();
    end.assert_clean_exit("yes");
    assert_eq!(end.stderr, "", "an idle close is routine");
    assert_eq!(server.connections(), 3);
    let expected: Vec<(usize, Vec<u8>)> = reqs
        .iter()
        .enumerate()
        .map(|(i, q)| (i, q.to_vec()))
        .collect();
    assert_eq!(server.requests(), expected, "each request sent once");
}

fn close_when_idle(c: &mut Conn) {
    c.close_when_idle(Duration::from_millis(200));
    c.serve();
}

#[test]
fn idle_close_reconnects_over_unix() {
    idle_close_reconnects(Server::unix(close_when_idle));
}

#[test]
fn idle_close_reconnects_over_tcp() {
    idle_close_reconnects(Server::tcp(close_when_idle));
}

/// Closing right after each answer races the next request: it may be
/// written before the close, and then is never read.
fn close_racing_the_next_request(server: Server) {
    let mut relay = Relay::start(&[&server.addr]);
    let reqs: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("isuser:u{i}:yes").into_bytes())
        .collect();
    for q in &reqs {
        assert_eq!(relay.ask(q), YES);
    }
    relay.finish().assert_clean_exit("yes");
    let seen: Vec<Vec<u8>> = server.requests().into_iter().map(|(_, p)| p).collect();
    assert_eq!(seen, reqs, "each request read once");
}

fn one_answer_per_connection(c: &mut Conn) {
    if let Some(p) = c.read_frame() {
        c.send(&decide(&p));
    }
}

#[test]
fn close_racing_the_next_request_over_unix() {
    close_racing_the_next_request(Server::unix(one_answer_per_connection));
}

#[test]
fn close_racing_the_next_request_over_tcp() {
    close_racing_the_next_request(Server::tcp(one_answer_per_connection));
}

#[test]
fn reused_connection_closed_after_reading_is_retried_once() {
    // Connection 0 answers once, then reads the next request and dies
    // without answering (a crash): the relay sends it again on a new one.
    let server = Server::unix(|c| {
        if c.index == 0 {
            if let Some(p) = c.read_frame() {
                c.send(&decide(&p));
            }
            let _ = c.read_frame();
        } else {
            c.serve();
        }
    });
    let mut relay = Relay::start(&[&server.addr]);
    assert_eq!(relay.ask(b"1-yes"), YES);
    assert_eq!(relay.ask(b"2-yes"), YES);
    relay.finish().assert_clean_exit("yes");
    assert_eq!(
        server.requests(),
        vec![
            (0, b"1-yes".to_vec()),
            (0, b"2-yes".to_vec()),
            (1, b"2-yes".to_vec())
        ]
    );
}

#[test]
fn fresh_connection_closed_without_reply_is_not_retried() {
    let server = Server::tcp(|c| {
        let _ = c.read_frame();
    });
    let mut relay = Relay::start(&[&server.addr]);
    for n in 1..=3 {
        let (reply, took) = relay.ask_timed(b"auth:a:b:secret-pw");
        assert_eq!(reply, TEMPFAIL);
        assert!(took < QUICK);
        assert_eq!(
            server.connections(),
            n,
            "one connection per request, no retry"
        );
    }
    let end = relay.finish();
    end.assert_clean_exit("secret-pw");
    assert!(end.stderr.contains("without a reply"), "{}", end.stderr);
}

#[test]
fn no_answer_is_trouble_after_the_timeout_and_a_late_answer_is_ignored() {
    // Connection 0 answers "yes" only after 2 s; later ones answer at once.
    let server = Server::unix(|c| {
        if c.index == 0 {
            if c.read_frame().is_some() {
                sleep(Duration::from_secs(2));
                c.send(&YES);
            }
        } else {
            c.serve();
        }
    });
    let mut relay = Relay::start(&["--timeout", "1", &server.addr]);
    let (reply, took) = relay.ask_timed(b"auth:a:b:secret-pw");
    assert_eq!(reply, TEMPFAIL);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1900),
        "took {took:?}"
    );
    sleep(Duration::from_millis(1500)); // the late "yes" is sent meanwhile
    assert_eq!(relay.ask(b"auth:a:b:wrong-pw"), NO);
    let end = relay.finish();
    end.assert_clean_exit("secret-pw");
    assert!(end.stderr.contains("no reply within 1 s"), "{}", end.stderr);
    assert_eq!(server.connections(), 2);
    assert_eq!(
        server.requests().len(),
        2,
        "a timed-out request is not sent again"
    );
}

#[test]
fn timeout_with_fail_answers_no() {
    let server = Server::tcp(|c| {
        let _ = c.read_frame();
        sleep(Duration::from_secs(3));
    });
    let mut relay = Relay::start(&["--timeout=0.5", "--on-trouble=fail", &server.addr]);
    let (reply, took) = relay.ask_timed(b"isuser:a:b");
    assert_eq!(reply, NO);
    assert!(
        took >= Duration::from_millis(450) && took < QUICK,
        "took {took:?}"
    );
    relay.finish().assert_clean_exit("isuser");
}

#[test]
fn bad_reply_is_trouble_then_reconnect() {
    let bad: [&[u8]; 5] = [
        &[0, 2, 0, 5],
        &[0, 2, 1, 1],
        b"HTTP/1.1 400 Bad Request\r\n",
        &[0, 2],    // then closed: a partial reply
        &[0, 1, 1], // wrong length, then closed
    ];
    for answer in bad {
        let server = Server::unix(move |c| {
            if c.index == 0 {
                if c.read_frame().is_some() {
                    c.send(answer);
                }
            } else {
                c.serve();
            }
        });
        let mut relay = Relay::start(&[&server.addr]);
        let (reply, took) = relay.ask_timed(b"auth:a:b:secret-pw");
        assert_eq!(reply, TEMPFAIL, "{answer:?}");
        assert!(took < QUICK);
        assert_eq!(relay.ask(b"auth:a:b:pw-yes"), YES);
        let end = relay.finish();
        end.assert_clean_exit("secret-pw");
        assert!(
            end.stderr.contains("invalid reply") || end.stderr.contains("of 4 reply bytes"),
            "{}",
            end.stderr
        );
        assert_eq!(server.connections(), 2, "{answer:?}");
        assert_eq!(
            server.requests().len(),
            2,
            "{answer:?}: answered, so not sent again"
        );
    }
}
