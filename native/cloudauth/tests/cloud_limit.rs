//! The cloud concurrency limit end to end: the real `cloudauth` binary in
//! socket mode against the real test backend (`jsxc-test-backend`, whose
//! workers and delay stand in for a Nextcloud's PHP workers), counted by the
//! backend itself.
//!
//! The test backend is another package's binary: it is looked for next to
//! `cloudauth` (the same target directory; `cargo test --workspace` builds
//! it), or at `$JSXC_TEST_BACKEND`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cloudauth");
const SECRET: &str = "cloud-limit-secret";
const YES: [u8; 4] = [0, 2, 0, 1];
const NO: [u8; 4] = [0, 2, 0, 0];
const TEMPFAIL: [u8; 4] = [0, 2, 0, 2];

fn backend_bin() -> PathBuf {
    let p = std::env::var_os("JSXC_TEST_BACKEND")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN).with_file_name("jsxc-test-backend"));
    assert!(
        p.exists(),
        "{} is missing: build it (cargo build -p jsxc-test-backend; cargo test --workspace does) or set JSXC_TEST_BACKEND",
        p.display()
    );
    p
}

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Backend {
    _child: Killed,
    url: String,
    control: String,
}

impl Backend {
    /// The test backend with `users` users (`u{i}`, password `pw-{i}`),
    /// `workers` requests processed at once, each taking `delay_ms`.
    fn start(dir: &std::path::Path, users: usize, workers: usize, delay_ms: u64) -> Backend {
        let list: Vec<String> = (0..users)
            .map(|i| format!("{{\"uid\":\"u{i}\",\"password\":\"pw-{i}\"}}"))
            .collect();
        let file = dir.join("users.json");
        std::fs::write(&file, format!("{{\"users\":[{}]}}", list.join(","))).unwrap();
        let mut child = Command::new(backend_bin())
            .args(["--secret", SECRET, "--quiet", "--users"])
            .arg(&file)
            .args(["--workers", &workers.to_string()])
            .args(["--delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let child = Killed(child);
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        let (url, control) = line
            .trim()
            .strip_prefix("READY api=")
            .and_then(|r| r.split_once(" control="))
            .unwrap_or_else(|| panic!("unexpected backend output {line:?}"));
        Backend {
            url: url.to_string(),
            control: control.to_string(),
            _child: child,
        }
    }

    /// `GET /stats`.
    fn stats(&self) -> serde_json::Value {
        let addr = self.control.strip_prefix("http://").unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "GET /stats HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        let body = answer.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// cloudauth in socket mode, ejabberd protocol on a TCP port, with `extra` arguments.
fn cloudauth(dir: &std::path::Path, url: &str, extra: &[&str]) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["-c", "/dev/null", "-s", SECRET, "-u", url, "-l"])
        .arg(dir)
        .arg("--listen")
        .arg(format!("ejabberd=127.0.0.1:{port}"))
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "cloudauth did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

fn frame(p: &str) -> Vec<u8> {
    let mut v = u16::try_from(p.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(p.as_bytes());
    v
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloudauth-limit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Sends every user's auth over `conns` connections at once (each
/// connection's requests written back to back), then reads every answer,
/// with the time it came, from the start.
fn storm(port: u16, users: &[usize], conns: usize) -> Vec<([u8; 4], Duration)> {
    let mut streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut mine: Vec<Vec<usize>> = vec![Vec::new(); conns];
    for (k, &i) in users.iter().enumerate() {
        mine[k % conns].push(i);
    }
    for (s, list) in streams.iter_mut().zip(&mine) {
        let batch: Vec<u8> = list
            .iter()
            .flat_map(|i| frame(&format!("auth:u{i}:example.org:pw-{i}")))
            .collect();
        s.write_all(&batch).unwrap();
    }
    let readers: Vec<_> = streams
        .into_iter()
        .zip(mine)
        .map(|(mut s, list)| {
            std::thread::spawn(move || {
                list.iter()
                    .map(|_| {
                        let mut r = [0u8; 4];
                        s.read_exact(&mut r).unwrap();
                        (r, started.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    readers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn concurrent_logins_never_exceed_the_cloud_concurrency() {
    let dir = workdir("three");
    // The backend could take 8 at once: only cloudauth's limit keeps it at 3.
    let backend = Backend::start(&dir, 24, 8, 100);
    let (_cloudauth, port) = cloudauth(&dir, &backend.url, &["--cloud-concurrency", "3"]);
    let users: Vec<usize> = (0..24).collect();
    let started = Instant::now();
    let answers = storm(port, &users, 8);
    let took = started.elapsed();
    assert_eq!(answers.len(), 24);
    assert!(
        answers.iter().all(|(r, _)| *r == YES),
        "every right password accepted: {answers:?}"
    );
    let stats = backend.stats();
    assert_eq!(stats["auth"], 24, "{stats}");
    let peak = stats["peak_in_flight"].as_u64().unwrap();
    assert!(
        (2..=3).contains(&peak),
        "at most 3 at the backend at once, and more than one (the limit, not the connections, bounds it): {peak}"
    );
    // 24 checks of 100 ms, 3 at a time: 8 rounds.
    assert!(
        took >= Duration::from_millis(750),
        "24 checks, 3 at a time, cannot take less than 800 ms: {took:?}"
    );
}

#[test]
fn past_the_queue_or_the_deadline_logins_get_tempfail_never_no() {
    let dir = workdir("queue");
    let backend = Backend::start(&dir, 5, 8, 1500);
    let (_cloudauth, port) = cloudauth(
        &dir,
        &backend.url,
        &[
            "--cloud-concurrency",
            "1",
            "--cloud-queue",
            "2",
            "--timeout",
            "2",
        ],
    );
    // One at the backend (answered after 1.5 s, within the 2 s), two waiting
    // (the first gets its turn at 1.5 s with 0.5 s left: too late; the
    // second's 2 s pass in the queue), two that do not fit the queue.
    let users: Vec<usize> = (0..5).collect();
    let answers = storm(port, &users, 5);
    let count = |a: [u8; 4]| answers.iter().filter(|(r, _)| *r == a).count();
    assert_eq!(count(NO), 0, "never no for a right password: {answers:?}");
    assert_eq!(count(YES), 1, "{answers:?}");
    assert_eq!(count(TEMPFAIL), 4, "{answers:?}");
    let at_once = answers
        .iter()
        .filter(|(r, t)| *r == TEMPFAIL && *t < Duration::from_millis(1000))
        .count();
    assert_eq!(
        at_once, 2,
        "the two past the queue answered at once: {answers:?}"
    );
    let stats = backend.stats();
    assert!(
        stats["peak_in_flight"].as_u64().unwrap() <= 1,
        "one at a time at the backend: {stats}"
    );
    // The two past the queue are this server's own trouble in the log, not
    // the backend's (the log is flushed within a second).
    let log = dir.join("cloudauth.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let own = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let own: Vec<String> = text
            .lines()
            .filter(|l| l.contains("requests already wait for the backend"))
            .map(str::to_string)
            .collect();
        if own.len() >= 2 || Instant::now() > deadline {
            break own;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(own.len(), 2, "{own:?}");
    for line in &own {
        assert!(
            line.contains(": cannot tell via backend in ")
                && line.contains("this server's own trouble")
                && !line.contains("backend trouble"),
            "{line}"
        );
    }
}

/// Issue 24: the backend gate was shared by all listeners, and a flood of
/// Postfix lookups pushed Prosody logins to 10.1 s, past the module's
/// timeout. Each front door has its own share: an ejabberd login behind 80
/// queued Postfix lookups (2 at a time, 200 ms each: 8 s of work) waits for
/// one place, not for the flood.
#[test]
fn a_flood_of_postfix_lookups_does_not_hold_up_a_login() {
    let dir = workdir("doors");
    let backend = Backend::start(&dir, 4, 8, 200);
    let postfix = free_port();
    let (_cloudauth, port) = cloudauth(
        &dir,
        &backend.url,
        &[
            "--cloud-concurrency",
            "2",
            "--cloud-queue",
            "200",
            "--timeout",
            "20",
            "--listen",
            &format!("postfix=127.0.0.1:{postfix}"),
        ],
    );
    let mut flood: Vec<TcpStream> = (0..8)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", postfix)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    for (c, s) in flood.iter_mut().enumerate() {
        let batch: String = (0..10)
            .map(|i| format!("get nobody-{c}-{i}@example.org\n"))
            .collect();
        s.write_all(batch.as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut login = TcpStream::connect(("127.0.0.1", port)).unwrap();
    login
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    login.write_all(&frame("auth:u1:example.org:pw-1")).unwrap();
    let mut reply = [0u8; 4];
    login.read_exact(&mut reply).unwrap();
    let took = started.elapsed();
    assert_eq!(reply, YES);
    assert!(
        took < Duration::from_millis(1000),
        "the login waited {took:?} behind the Postfix flood"
    );
    // The flood is answered too, in full.
    for s in flood {
        let mut lines = BufReader::new(s);
        for _ in 0..10 {
            let mut line = String::new();
            lines.read_line(&mut line).unwrap();
            assert!(line.starts_with("500 "), "{line:?}");
        }
    }
}
