//! The generic protocol's `roster:` request end to end: the real `cloudauth`
//! binary in socket mode against the real test backend (`jsxc-test-backend`,
//! next to `cloudauth` or at `$JSXC_TEST_BACKEND`) with one group of 5,000
//! members: bounded lines, `=` for the version it gave, one bucket after a
//! member left, `!` (never an empty roster) while the backend is down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cloudauth");
const SECRET: &str = "roster-wire-secret";
const MEMBERS: usize = 5000;

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

/// The users file: u0..u(MEMBERS-1), the first `in_group` in "Staff Team".
fn write_users(file: &Path, in_group: usize) {
    let list: Vec<String> = (0..MEMBERS)
        .map(|i| {
            let groups = if i < in_group { "[\"Staff Team\"]" } else { "[]" };
            format!("{{\"uid\":\"u{i}\",\"password\":\"pw\",\"name\":\"User {i}\",\"groups\":{groups}}}")
        })
        .collect();
    std::fs::write(file, format!("{{\"users\":[{}]}}", list.join(","))).unwrap();
}

fn control(url: &str, path: &str) {
    let addr = url.strip_prefix("http://").unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// One roster answer: its header and the lines after it.
struct Answer {
    head: String,
    lines: Vec<String>,
}

impl Answer {
    fn version(&self) -> &str {
        self.head.split('\t').nth(3).unwrap()
    }

    fn buckets(&self) -> usize {
        self.lines.iter().filter(|l| l.starts_with("#\t")).count()
    }

    fn contacts(&self) -> usize {
        self.lines.len() - self.buckets()
    }
}

fn ask(conn: &mut BufReader<TcpStream>, version: &str) -> Answer {
    conn.get_mut()
        .write_all(format!("roster:u0:localhost:{version}\n").as_bytes())
        .unwrap();
    let mut read = || {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "cut short: {line:?}");
        line.pop();
        line
    };
    let head = read();
    let mut lines = Vec::new();
    if let Some(rest) = head.strip_prefix("+\t") {
        let count: usize = rest.split('\t').next().unwrap().parse().unwrap();
        lines = (0..count).map(|_| read()).collect();
    }
    Answer { head, lines }
}

#[test]
fn a_5000_member_group_in_bounded_lines_then_only_what_changed() {
    let dir = std::env::temp_dir().join(format!("cloudauth-roster-wire-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.json");
    write_users(&users, MEMBERS);
    let mut child = Command::new(backend_bin())
        .args(["--secret", SECRET, "--quiet", "--users"])
        .arg(&users)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _backend = Killed(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let (url, ctl) = line
        .trim()
        .strip_prefix("READY api=")
        .and_then(|r| r.split_once(" control="))
        .unwrap_or_else(|| panic!("unexpected backend output {line:?}"));
    let port = free_port();
    let _cloudauth = Killed(
        Command::new(BIN)
            .args(["-c", "/dev/null", "-s", SECRET, "-u", url, "-l"])
            .arg(&dir)
            .args(["--timeout", "2", "--listen"])
            .arg(format!("generic=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cloudauth did not listen: {e}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut conn = BufReader::new(stream);

    let first = ask(&mut conn, "-");
    assert!(first.head.starts_with("+\t"), "{:?}", first.head);
    assert_eq!(first.contacts(), MEMBERS - 1, "everybody but u0");
    assert_eq!(first.buckets(), 32);
    assert!(!first.lines.iter().any(|l| l.starts_with("u0@")));
    assert!(first
        .lines
        .iter()
        .any(|l| l == "u1@localhost\tUser 1\tStaff Team"));
    let longest = first.lines.iter().map(String::len).max().unwrap();
    assert!(
        first.head.len() <= 600 && longest <= 600,
        "bounded lines: head {}, longest {longest}",
        first.head.len()
    );

    let version = first.version().to_string();
    assert_eq!(ask(&mut conn, &version).head, "=", "nothing changed");

    write_users(&users, MEMBERS - 1); // u4999 leaves
    control(ctl, "/reload");
    let after = ask(&mut conn, &version);
    assert_eq!(after.buckets(), 1, "{:?}", after.head);
    assert!(
        after.contacts() < 2 * MEMBERS / 32,
        "{} contacts resent",
        after.contacts()
    );
    assert!(!after.lines.iter().any(|l| l.starts_with("u4999@")));

    control(ctl, "/fault?mode=down");
    assert_eq!(
        ask(&mut conn, after.version()).head,
        "!",
        "cannot tell, never an empty roster"
    );
    conn.get_mut()
        .write_all(b"roster:u0:localhost:2.x\n")
        .unwrap();
    let mut refused = String::new();
    conn.read_line(&mut refused).unwrap();
    assert_eq!(
        refused, "0\n",
        "a version cloudauth never gave is a bad request"
    );
}
