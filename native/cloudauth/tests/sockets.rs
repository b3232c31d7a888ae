//! Socket mode of the `cloudauth` binary: every protocol on one process,
//! many concurrent connections, garbage, graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudauth_core::{token, Secret};

const SECRET: &str = "socket-test-secret";
const BIN: &str = env!("CARGO_BIN_EXE_cloudauth");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

struct Server {
    child: Child,
    dir: PathBuf,
    ports: [u16; 3],
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts cloudauth with ejabberd, generic and postfix on TCP and saslauthd
/// on a unix socket; the cloud URL is `cloud`.
fn start(name: &str, cloud: &str) -> Server {
    start_with(name, cloud, &[])
}

/// Like [`start`], with extra command-line arguments.
fn start_with(name: &str, cloud: &str, extra: &[&str]) -> Server {
    start_timeout(name, cloud, "1", extra)
}

/// Like [`start_with`], with the backend `timeout`.
fn start_timeout(name: &str, cloud: &str, timeout: &str, extra: &[&str]) -> Server {
    let dir = std::env::temp_dir().join(format!("cloudauth-sock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let child = Command::new(BIN)
        .args([
            "-c",
            "/dev/null",
            "-s",
            SECRET,
            "-u",
            cloud,
            "--timeout",
            timeout,
            "-l",
        ])
        .arg(&dir)
        .arg("--listen")
        .arg(format!("ejabberd=127.0.0.1:{}", ports[0]))
        .arg("--listen")
        .arg(format!("generic=127.0.0.1:{}", ports[1]))
        .arg("--listen")
        .arg(format!("postfix=127.0.0.1:{}", ports[2]))
        .arg("--listen")
        .arg(format!("saslauthd={}", dir.join("mux").display()))
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", ports[2])).is_err() || !dir.join("mux").exists() {
        assert!(
            Instant::now() < deadline,
            "cloudauth did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, dir, ports }
}

fn dead_cloud() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/x", l.local_addr().unwrap())
}

fn frame(p: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(p.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(p);
    v
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn thousand_concurrent_connections_get_correct_answers() {
    // All from 127.0.0.1: the per-peer share would close the first ones.
    let srv = start_with("many", &dead_cloud(), &["--max-connections-per-peer", "0"]);
    let users: Vec<(String, String)> = (0..1000)
        .map(|i| {
            let u = format!("user{i}");
            let t = token::mint(&Secret::new(SECRET), &u, "example.org", now() + 600);
            (u, t)
        })
        .collect();
    // Open all connections first, so that they are concurrent.
    let mut conns: Vec<TcpStream> = (0..users.len()).map(|_| connect(srv.ports[0])).collect();
    for (i, (c, (u, t))) in conns.iter_mut().zip(&users).enumerate() {
        // Even: own token (yes); odd: the neighbour's token (no).
        let tok = if i % 2 == 0 { t } else { &users[i - 1].1 };
        c.write_all(&frame(format!("auth:{u}:example.org:{tok}").as_bytes()))
            .unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut reply = [0u8; 4];
        c.read_exact(&mut reply).unwrap();
        let expected = if i % 2 == 0 {
            [0, 2, 0, 1]
        } else {
            [0, 2, 0, 0]
        };
        assert_eq!(reply, expected, "connection {i}");
    }
}

#[test]
fn garbage_never_kills_the_listener() {
    let srv = start("garbage", &dead_cloud());
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xff; 5000],
        vec![0, 0, 0, 0, 0, 0],
        b"\x00\x05\xff\xfe\xfd\xfc\xfb".to_vec(),
        (0..=255u8).cycle().take(70_000).collect(),
        b"\n\n\n\r\n".to_vec(),
        vec![0x7f, 0xff],
    ];
    for g in &garbage {
        for port in srv.ports {
            let mut c = connect(port);
            let _ = c.write_all(g);
            let _ = c.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink);
        }
        let mut u = UnixStream::connect(srv.dir.join("mux")).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = u.write_all(g);
        let _ = u.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = u.read_to_end(&mut sink);
    }
    // Every protocol still answers correctly afterwards.
    let mut e = connect(srv.ports[0]);
    e.write_all(&frame(format!("auth:alice:example.org:{tok}").as_bytes()))
        .unwrap();
    let mut r = [0u8; 4];
    e.read_exact(&mut r).unwrap();
    assert_eq!(r, [0, 2, 0, 1]);
    let mut g = BufReader::new(connect(srv.ports[1]));
    g.get_mut()
        .write_all(format!("auth:alice:example.org:{tok}\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    g.read_line(&mut line).unwrap();
    assert_eq!(line, "1\n");
    let mut p = BufReader::new(connect(srv.ports[2]));
    p.get_mut().write_all(b"get alice@example.org\n").unwrap();
    line.clear();
    p.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("400 "),
        "cloud down: temporary failure, got {line:?}"
    );
    let mut u = UnixStream::connect(srv.dir.join("mux")).unwrap();
    let req = [
        frame(b"alice"),
        frame(tok.as_bytes()),
        frame(b"smtp"),
        frame(b"example.org"),
    ]
    .concat();
    u.write_all(&req).unwrap();
    let mut sasl = [0u8; 4];
    u.read_exact(&mut sasl).unwrap();
    assert_eq!(&sasl, b"\x00\x02OK");
    let log = std::fs::read_to_string(srv.dir.join("cloudauth.log")).unwrap();
    assert!(log.contains("bad input") || log.contains("bad request"));
    assert!(!log.contains(&tok) && !log.contains(SECRET));
}

fn saslauthd_field(v: &[u8]) -> Vec<u8> {
    let mut f = u16::try_from(v.len()).unwrap().to_be_bytes().to_vec();
    f.extend_from_slice(v);
    f
}

/// One saslauthd check on the unix socket; the reply's text.
fn saslauthd_check(srv: &Server, user: &str, password: &str) -> String {
    let mut c = UnixStream::connect(srv.dir.join("mux")).unwrap();
    saslauthd_check_on(&mut c, user, password)
}

/// One saslauthd check on an open connection; the reply's text.
fn saslauthd_check_on(c: &mut UnixStream, user: &str, password: &str) -> String {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    for f in [
        user.as_bytes(),
        password.as_bytes(),
        b"smtp",
        b"example.org",
    ] {
        req.extend(saslauthd_field(f));
    }
    c.write_all(&req).unwrap();
    let mut len = [0u8; 2];
    c.read_exact(&mut len).unwrap();
    let mut text = vec![0u8; usize::from(u16::from_be_bytes(len))];
    c.read_exact(&mut text).unwrap();
    String::from_utf8(text).unwrap()
}

#[test]
fn a_flood_of_idle_connections_on_one_listener_starves_no_other_and_times_out() {
    let srv = start_with("flood", &dead_cloud(), &["--idle-timeout", "2s"]);
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    // More idle connections on the Postfix port than one listener takes.
    let flood: Vec<TcpStream> = (0..1100).map(|_| connect(srv.ports[2])).collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(saslauthd_check(&srv, "alice", &tok), "OK");
    let mut c = connect(srv.ports[0]);
    c.write_all(&frame(format!("auth:alice:example.org:{tok}").as_bytes()))
        .unwrap();
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0, 2, 0, 1]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "other listeners answered at once ({:?})",
        started.elapsed()
    );
    // The Postfix listener itself serves a new client at once too (the
    // flood's connections idle longest make room).
    let started = Instant::now();
    let mut p = connect(srv.ports[2]);
    p.write_all(b"get alice@example.org\n").unwrap();
    let mut line = String::new();
    BufReader::new(&mut p).read_line(&mut line).unwrap();
    assert!(line.starts_with("400 "), "{line:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The idle ones are closed after the idle timeout: reading gives EOF.
    let mut last = flood.into_iter().last().unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(last.read(&mut buf).unwrap(), 0, "idle connection closed");
}

/// A TCP connection to `port` from the loopback address `from`.
fn connect_from(rt: &tokio::runtime::Runtime, from: [u8; 4], port: u16) -> TcpStream {
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((from, 0))).unwrap();
        sock.connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One JSXC-token login on an ejabberd connection; the reply and how long it took.
fn ejabberd_token_login(c: &mut TcpStream) -> ([u8; 4], Duration) {
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    let started = Instant::now();
    c.write_all(&frame(format!("auth:alice:example.org:{tok}").as_bytes()))
        .unwrap();
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).unwrap();
    (reply, started.elapsed())
}

/// 5,000 idle connections from one address (as a local user can open)
/// filled the listener's 1,024 slots, and a real client's connection waited
/// in the backlog until the idle timeout (5 min): now the connections idle
/// longest make room, and the real client is answered at once.
#[test]
fn five_thousand_idle_connections_cannot_lock_out_a_real_client() {
    let srv = start("loris", &dead_cloud());
    let flood: Vec<TcpStream> = (0..5000).map(|_| connect(srv.ports[0])).collect();
    let started = Instant::now();
    let mut real = connect(srv.ports[0]);
    let (reply, took) = ejabberd_token_login(&mut real);
    assert_eq!(reply, [0, 2, 0, 1]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the real client waited {:?} (its request {took:?})",
        started.elapsed()
    );
    // The flood's oldest connections were closed to make room.
    let mut first = flood.into_iter().next().unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        first.read(&mut buf).unwrap(),
        0,
        "the idlest connection was closed"
    );
}

/// The same flood spread over ten loopback addresses: the listener's own
/// bound makes room for a client from an eleventh; and one user past its
/// share only closes its own connections, whichever loopback address each
/// came from (the share is the connecting socket's owner's).
#[test]
fn flood_from_many_addresses_and_the_per_peer_share() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let srv = start_with(
        "peers",
        &dead_cloud(),
        &["--max-connections-per-peer", "500"],
    );
    let mut flood = Vec::new();
    for host in 2..12u8 {
        for _ in 0..500 {
            flood.push(connect_from(&rt, [127, 0, 0, host], srv.ports[0]));
        }
    }
    let started = Instant::now();
    let mut real = connect_from(&rt, [127, 0, 0, 1], srv.ports[0]);
    let (reply, _) = ejabberd_token_login(&mut real);
    assert_eq!(reply, [0, 2, 0, 1]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(flood);

    // Per peer: 3 connections at most from one user; the 4th and 5th
    // close its idlest ones, though each came from another address.
    let srv = start_with("share", &dead_cloud(), &["--max-connections-per-peer", "3"]);
    let mut mine: Vec<TcpStream> = Vec::new();
    for host in 2..7u8 {
        mine.push(connect_from(&rt, [127, 0, 0, host], srv.ports[0]));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut buf = [0u8; 1];
    for (i, c) in mine.iter_mut().enumerate().take(2) {
        assert_eq!(c.read(&mut buf).unwrap(), 0, "connection {i} closed");
    }
    for c in mine.iter_mut().skip(2) {
        assert_eq!(ejabberd_token_login(c).0, [0, 2, 0, 1]);
    }
}

/// A backend that accepts connections and never answers: every password
/// check waits for the timeout.
fn silent_cloud() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = l.incoming().filter_map(Result::ok).collect();
        drop(held);
    });
    url
}

/// Issue 24: any local user can bind 127.0.0.2, .3 … (and 127.0.0.1) as
/// the source, so a share per address let one user fill a listener with
/// busy connections from two addresses (a real Postfix lookup got no answer
/// in 9 s). On loopback the share is the connecting socket's owner's (the
/// kernel's `/proc/net/tcp`): another user, `nobody` here, holding busy
/// connections from three addresses, 127.0.0.1 among them, gets its share
/// and no more, and this test's user is answered at once.
#[test]
fn one_local_user_cannot_take_another_users_share_over_loopback_tcp() {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if uid.ok() != Some(0) {
        eprintln!("skipped: only root can connect as another user (setpriv)");
        return;
    }
    let srv = start_timeout(
        "owner",
        &silent_cloud(),
        "8",
        &["--max-connections", "6", "--max-connections-per-peer", "3"],
    );
    let flood = r#"
import socket, sys, time
port = int(sys.argv[1])
held = []
for host in ["127.0.0.2"] * 3 + ["127.0.0.3"] * 3 + ["127.0.0.1"] * 2:
    s = socket.socket()
    s.bind((host, 0))
    s.connect(("127.0.0.1", port))
    req = b"auth:mallory:example.org:guess"
    s.sendall(len(req).to_bytes(2, "big") + req)
    held.append(s)
    time.sleep(0.05)
print("ready", flush=True)
time.sleep(30)
"#;
    let mut attacker = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["/usr/bin/python3", "-c", flood])
        .arg(srv.ports[0].to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv and /usr/bin/python3");
    let mut ready = String::new();
    BufReader::new(attacker.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut real = connect_from(&rt, [127, 0, 0, 1], srv.ports[0]);
    let (reply, _) = ejabberd_token_login(&mut real);
    let took = started.elapsed();
    let _ = attacker.kill();
    let _ = attacker.wait();
    assert_eq!(reply, [0, 2, 0, 1]);
    assert!(
        took < Duration::from_secs(2),
        "the real client waited {took:?} behind another user's connections"
    );
}

/// On a unix socket the share is per user (SO_PEERCRED): 3 connections at
/// most from this test's user; the 4th and 5th close its idlest ones, and a
/// TCP peer is counted apart.
#[test]
fn on_a_unix_socket_the_share_is_per_user() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let srv = start_with("uid", &dead_cloud(), &["--max-connections-per-peer", "3"]);
    let mut tcp = connect_from(&rt, [127, 0, 0, 1], srv.ports[0]);
    let mut mine: Vec<UnixStream> = Vec::new();
    for _ in 0..5 {
        mine.push(UnixStream::connect(srv.dir.join("mux")).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    let mut buf = [0u8; 1];
    for (i, c) in mine.iter_mut().enumerate().take(2) {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read(&mut buf).unwrap(), 0, "connection {i} closed");
    }
    for c in mine.iter_mut().skip(2) {
        assert_eq!(saslauthd_check_on(c, "alice", &tok), "OK");
    }
    assert_eq!(
        ejabberd_token_login(&mut tcp).0,
        [0, 2, 0, 1],
        "the TCP peer untouched"
    );
}

/// A client that writes requests and never reads kept its slot for good
/// (the idle timer stops while a reply write is blocked): now a reply not
/// read within --write-timeout closes it, with one log line, and the slot
/// serves the next client.
#[test]
fn a_peer_that_never_reads_loses_its_slot_after_the_write_timeout() {
    let srv = start_with(
        "unread",
        &dead_cloud(),
        &[
            "--max-connections",
            "1",
            "--write-timeout",
            "1s",
            "--idle-timeout",
            "1h",
        ],
    );
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    let mut req = Vec::new();
    for f in [b"alice".as_slice(), tok.as_bytes(), b"smtp", b"example.org"] {
        req.extend(saslauthd_field(f));
    }
    // Thousands of requests, replies never read: the server's writes block.
    let mut hog = UnixStream::connect(srv.dir.join("mux")).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let many = req.repeat(5000);
    let writer = {
        let mut hog = hog.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = hog.write_all(&many);
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // The listener's only slot is the hog's: a new client waits for it.
    let started = Instant::now();
    let mut next = UnixStream::connect(srv.dir.join("mux")).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    next.write_all(&req).unwrap();
    let mut reply = [0u8; 4];
    next.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\x00\x02OK");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the next client waited {took:?}"
    );
    let _ = writer.join();
    // The hog's connection is closed: after its unread replies, EOF (or a reset).
    hog.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let ended = match hog.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(ended, "the hog's connection is still open");
    let log_path = srv.dir.join("cloudauth.log");
    drop(srv);
    let log = std::fs::read_to_string(log_path).unwrap();
    assert_eq!(log.matches("was not read for").count(), 1, "{log}");
}

#[test]
fn busy_connections_are_not_idle() {
    let srv = start_with("busy", &dead_cloud(), &["--idle-timeout", "1s"]);
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    let mut c = connect(srv.ports[0]);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(400));
        c.write_all(&frame(format!("auth:alice:example.org:{tok}").as_bytes()))
            .unwrap();
        let mut reply = [0u8; 4];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(reply, [0, 2, 0, 1]);
    }
}

#[test]
fn sigterm_answers_requests_in_flight_then_exits() {
    // A cloud that accepts connections and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", hang.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut keep = Vec::new();
        for s in hang.incoming().take(8).flatten() {
            keep.push(s);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut srv = start("term", &url);
    let mut c = connect(srv.ports[0]);
    c.write_all(&frame(b"auth:alice:example.org:password"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = srv.child.id().to_string();
    let started = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(
        reply,
        [0, 2, 0, 2],
        "the pending request is answered (tempfail after the 1 s timeout)"
    );
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        TcpStream::connect(("127.0.0.1", srv.ports[0])).is_err(),
        "listener closed"
    );
    drop(held);
}

#[test]
fn systemd_socket_activation_names_select_protocols() {
    let activate = "/usr/bin/systemd-socket-activate";
    assert!(
        std::path::Path::new(activate).exists(),
        "systemd-socket-activate missing (Debian package systemd)"
    );
    let dir = std::env::temp_dir().join(format!("cloudauth-sd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pe, pp) = (free_port(), free_port());
    let mut child = Command::new(activate)
        .arg("-l")
        .arg(format!("127.0.0.1:{pe}"))
        .arg("-l")
        .arg(format!("127.0.0.1:{pp}"))
        .args([
            "--fdname=ejabberd:postfix",
            BIN,
            "-c",
            "/dev/null",
            "-s",
            SECRET,
            "-u",
            &dead_cloud(),
            "-l",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", pp)).is_err() {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tok = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    let mut e = connect(pe);
    e.write_all(&frame(format!("auth:alice:example.org:{tok}").as_bytes()))
        .unwrap();
    let mut r = [0u8; 4];
    e.read_exact(&mut r).unwrap();
    assert_eq!(
        r,
        [0, 2, 0, 1],
        "ejabberd protocol on the socket named ejabberd"
    );
    let mut p = BufReader::new(connect(pp));
    p.get_mut().write_all(b"get alice@example.org\n").unwrap();
    let mut line = String::new();
    p.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("400 "),
        "postfix protocol on the socket named postfix: {line:?}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// `--listen metrics=SOCKET`: OpenMetrics text for any GET, counting the
/// decisions made so far by protocol, operation, outcome and path, the open
/// connections, and backend trouble.
#[test]
fn metrics_listener_counts_decisions_connections_and_backend_trouble() {
    let dir =
        std::env::temp_dir().join(format!("cloudauth-sock-{}-metricsdir", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics_sock = dir.join("metrics.sock");
    let listen = format!("metrics={}", metrics_sock.display());
    let srv = start_with("metrics", &dead_cloud(), &["--listen", &listen]);
    let scrape = || {
        let mut s = UnixStream::connect(&metrics_sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let mut c = connect(srv.ports[0]);
    let t = token::mint(&Secret::new(SECRET), "alice", "example.org", now() + 600);
    for (payload, want) in [
        (format!("auth:alice:example.org:{t}"), [0, 2, 0, 1]),
        (format!("auth:bob:example.org:{t}"), [0, 2, 0, 0]),
        ("auth:carol:example.org:password".to_string(), [0, 2, 0, 2]),
    ] {
        c.write_all(&frame(payload.as_bytes())).unwrap();
        let mut reply = [0u8; 4];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(reply, want, "{payload}");
    }
    let text = scrape();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("application/openmetrics-text"));
    for line in [
        "cloudauth_requests_total{protocol=\"ejabberd\",operation=\"auth\",outcome=\"yes\",path=\"token\"} 1",
        "cloudauth_requests_total{protocol=\"ejabberd\",operation=\"auth\",outcome=\"no\",path=\"token\"} 1",
        "cloudauth_requests_total{protocol=\"ejabberd\",operation=\"auth\",outcome=\"trouble\",path=\"backend\"} 1",
        "cloudauth_open_connections{protocol=\"ejabberd\"} 1",
        "cloudauth_open_connections{protocol=\"metrics\"} 1",
        "cloudauth_backend_failures_total 1",
        "cloudauth_backend_request_seconds_count 1",
        "cloudauth_coalesced_total 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    assert!(scrape().contains("cloudauth_open_connections{protocol=\"ejabberd\"} 0"));
    let mut s = UnixStream::connect(&metrics_sock).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
}
