//! The `cloudauth` binary over real pipes: framing, bad input, ordering,
//! stdout purity, log hygiene, one-shot exit codes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cloudauth_core::{token, Secret};

const SECRET: &str = "port-test-secret";
const BIN: &str = env!("CARGO_BIN_EXE_cloudauth");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn tok(user: &str, domain: &str) -> String {
    token::mint(&Secret::new(SECRET), user, domain, now() + 3600)
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloudauth-port-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// A URL where nothing listens: every cloud request is backend trouble.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/externalApi.php", l.local_addr().unwrap())
}

/// `cloudauth` with no config file, the test secret, `url`, `timeout` and
/// its log in `log_dir`.
fn cloudauth(url: &str, timeout: &str, log_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["-c", "/dev/null", "-s", SECRET, "-u", url])
        .args(["--timeout", timeout, "-l"])
        .arg(log_dir);
    cmd
}

/// Runs `cmd` with `stdin` as its whole input; what it wrote.
fn feed(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn run(args: &[&str], stdin: &[u8], log_dir: &Path) -> Output {
    feed(cloudauth(&dead_url(), "1", log_dir).args(args), stdin)
}

fn frame(p: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(p.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(p);
    v
}

const YES: [u8; 4] = [0, 2, 0, 1];
const NO: [u8; 4] = [0, 2, 0, 0];
const TEMPFAIL: [u8; 4] = [0, 2, 0, 2];

fn log_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("cloudauth.log")).unwrap_or_default()
}

#[test]
fn ejabberd_bad_input_gets_no_and_serving_goes_on() {
    let dir = workdir("ejabberd");
    let alice = tok("alice", "localhost");
    let bob = tok("bob", "localhost");
    let mut input = Vec::new();
    let requests: Vec<(Vec<u8>, [u8; 4])> = vec![
        (format!("auth:alice:localhost:{alice}").into_bytes(), YES),
        (Vec::new(), NO),                                // zero-length frame
        (b"auth:alice:localhost:\xff\xfe".to_vec(), NO), // invalid UTF-8
        (b"auth:al\0ice:localhost:x".to_vec(), NO),      // NUL byte
        (b"auth:alice".to_vec(), NO),                    // missing fields
        (vec![b'a'; 9000], NO),                          // oversized
        (b"setpass:alice:localhost:x".to_vec(), NO),
        (b"tryregister:alice:localhost:x".to_vec(), NO),
        (b"removeuser:alice:localhost".to_vec(), NO),
        (b"removeuser3:alice:localhost:x".to_vec(), NO),
        (b"certauth:alice:localhost".to_vec(), NO),
        (b"frobnicate".to_vec(), NO),
        (format!("auth:alice:localhost:{bob}").into_bytes(), NO), // another user's token
        (b"isuser:alice:localhost".to_vec(), TEMPFAIL),           // cloud down
        (b"auth:alice:localhost:pass:with:colons".to_vec(), TEMPFAIL), // cloud down
        (format!("auth:alice:localhost:{alice}").into_bytes(), YES),
    ];
    for (r, _) in &requests {
        input.extend(frame(r));
    }
    input.extend_from_slice(&[0, 50, b'a', b'u']); // truncated frame at EOF
    let out = run(&["-t", "ejabberd"], &input, &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected: Vec<u8> = requests.iter().flat_map(|(_, a)| *a).collect();
    expected.extend(NO);
    assert_eq!(
        out.stdout, expected,
        "replies, in order, and nothing else on stdout"
    );

    let log = log_text(&dir);
    for needle in [
        "not valid UTF-8",
        "NUL byte",
        "malformed auth",
        "oversized frame",
        "truncated frame",
        "setpass: not supported",
        "backend trouble",
        "connection refused",
        "yes via token",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    for secret in [alice.as_str(), bob.as_str(), SECRET, "pass:with:colons"] {
        assert!(!log.contains(secret), "log leaks a secret");
    }
}

#[test]
fn trouble_policy_fail_answers_no() {
    let dir = workdir("fail");
    let mut input = frame(b"isuser:alice:localhost");
    input.extend(frame(b"auth:alice:localhost:pw"));
    let out = run(
        &["-t", "ejabberd", "--on-backend-trouble", "fail"],
        &input,
        &dir,
    );
    assert_eq!(out.stdout, [NO, NO].concat());
    let out = run(&["-t", "ejabberd"], &input, &dir);
    assert_eq!(
        out.stdout,
        [TEMPFAIL, TEMPFAIL].concat(),
        "tempfail is the default"
    );
}

#[test]
fn generic_protocol_lines_and_quit() {
    let dir = workdir("generic");
    let alice = tok("alice", "localhost");
    let input = format!(
        "auth:alice:localhost:{alice}\r\nisuser:alice\n\nauth:alice:localhost:wrong\nquit\nauth:alice:localhost:{alice}\n"
    );
    let out = run(&["-t", "prosody"], input.as_bytes(), &dir);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n0\n0\n0\n",
        "nothing after quit is answered"
    );
}

/// `authfrom` only once `hello:client-address` was granted on the
/// connection; a bad address is bad input (answered no), the session goes on.
#[test]
fn generic_protocol_authfrom_after_hello_client_address() {
    let dir = workdir("authfrom");
    let alice = tok("alice", "localhost");
    let input = format!(
        "authfrom:192.0.2.7:alice:localhost:{alice}\n\
         hello:tristate,client-address\n\
         authfrom:192.0.2.7:alice:localhost:{alice}\n\
         authfrom:[2001:db8::7]:alice:localhost:{alice}\n\
         authfrom:2001:db8::7:alice:localhost:{alice}\n\
         authfrom:[2001:db8::7]:alice:localhost:wrong\n\
         auth:alice:localhost:{alice}\n"
    );
    let out = run(&["-t", "generic"], input.as_bytes(), &dir);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0\nhello:tristate,client-address\n1\n1\n0\n?\n1\n",
        "a password no backend here can check is \"cannot tell\" (tristate granted)"
    );
    // Not on the ejabberd protocol: no hello there, so no authfrom either.
    let line = format!("authfrom:192.0.2.7:alice:localhost:{alice}");
    let mut framed = (line.len() as u16).to_be_bytes().to_vec();
    framed.extend(line.as_bytes());
    let out = run(&["-t", "ejabberd"], &framed, &dir);
    assert_eq!(out.stdout, NO);
}

#[test]
fn invalid_utf8_line_does_not_end_the_session() {
    let dir = workdir("utf8");
    let alice = tok("alice", "localhost");
    let mut input = b"auth:alice:localhost:\xc3\x28\n".to_vec();
    input.extend(format!("auth:alice:localhost:{alice}\n").as_bytes());
    let out = run(&["-t", "generic"], &input, &dir);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n");
}

#[test]
fn token_subcommand_mints_verifiable_tokens() {
    let out = Command::new(BIN)
        .args([
            "-c",
            "/dev/null",
            "-s",
            SECRET,
            "token",
            "jürgen",
            "xn--mnchen-3ya.de",
            "--ttl",
            "2h",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    let v = token::verify(
        &Secret::new(SECRET),
        "jürgen",
        "xn--mnchen-3ya.de",
        t.trim(),
        now(),
    );
    assert!(
        matches!(v, token::TokenVerdict::Valid { expiry } if expiry > now() + 7000),
        "{v:?}"
    );
    let out = Command::new(BIN)
        .args([
            "-c",
            "/dev/null",
            "-s",
            SECRET,
            "token",
            "a",
            "b",
            "--expiry",
            "1000",
        ])
        .output()
        .unwrap();
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(matches!(
        token::verify(&Secret::new(SECRET), "a", "b", t.trim(), 2000),
        token::TokenVerdict::Expired { .. }
    ));
}

#[test]
fn one_shot_exit_codes() {
    let dir = workdir("oneshot");
    let alice = tok("alice", "localhost");
    let yes = run(&["-A", "alice", "localhost", &alice], b"", &dir);
    assert_eq!(yes.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&yes.stdout).starts_with("yes"));
    let no = run(
        &["-A", "alice", "localhost", &tok("bob", "localhost")],
        b"",
        &dir,
    );
    assert_eq!(no.status.code(), Some(1));
    let trouble = run(&["-A", "alice", "localhost", "password"], b"", &dir);
    assert_eq!(trouble.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&trouble.stdout).contains("connection refused"));
    assert_eq!(
        run(&["-I", "alice", "localhost"], b"", &dir).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["-R", "alice", "localhost"], b"", &dir).status.code(),
        Some(2)
    );
}

#[test]
fn config_file_and_secret_file() {
    let dir = workdir("config");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let conf = dir.join("xcauth.conf");
    std::fs::write(
        &conf,
        format!(
            "# xcauth style\ntype: generic\nsecret-file = {}\nurl={}\ndebug\n",
            secret_file.display(),
            dead_url()
        ),
    )
    .unwrap();
    let alice = tok("alice", "localhost");
    let out = feed(
        Command::new(BIN)
            .args(["-c"])
            .arg(&conf)
            .arg("-l")
            .arg(&dir),
        format!("auth:alice:localhost:{alice}\n").as_bytes(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    assert!(!log_text(&dir).contains(SECRET));
}

/// Runs cloudauth with `args`, expects the configuration-error exit
/// status, and returns what it said on stderr.
fn config_error(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "configuration errors exit 78, not 2: {args:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_settings_fail_loudly() {
    let base = ["-c", "/dev/null", "-t", "ejabberd", "-i"];
    assert!(config_error(&base).contains("backend jsxc needs url"));
    // Half a configuration names the half that is missing.
    let half = [&base[..], &["-u", "http://127.0.0.1:9/x"]].concat();
    assert!(config_error(&half).contains("backend jsxc needs secret"));
    let missing = ["-c", "/nonexistent/xcauth.conf", "-t", "ejabberd"];
    assert!(config_error(&missing).contains("cannot read config file"));
    // A URL without a scheme is refused at start-up, naming the setting:
    // on the command line (a usage error) and in the config file.
    let bad_url = [&base[..], &["-s", "k", "-u", "cloud.example.org/x"]].concat();
    let text = config_error(&bad_url);
    assert!(text.contains("invalid url in the command line"), "{text}");
    // Issue 24: the error echoed the URL, which may hold `user:password@`.
    for url in [
        "http://alice:hunter2@exa mple.org/x",
        "ftp://alice:hunter2@cloud.example.org/x",
        "http://alice:hunter2@/x",
    ] {
        let bad_url = [&base[..], &["-s", "k", "-u", url]].concat();
        let text = config_error(&bad_url);
        assert!(text.contains("invalid url in the command line"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let conf = workdir("badurl").join("xcauth.conf");
    std::fs::write(
        &conf,
        "url = cloud.example.org/x\nsecret = k\ntype = ejabberd\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let text = config_error(&["-c", conf, "-i"]);
    assert!(text.contains("invalid url in config file"), "{text}");
    std::fs::write(
        conf,
        "url = http://alice:hunter2@exa mple.org/x\nsecret = k\ntype = ejabberd\n",
    )
    .unwrap();
    let text = config_error(&["-c", conf, "-i"]);
    assert!(text.contains("invalid url in config file"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// A cloud answering `auth` after a delay chosen by the user name:
/// `slow*` users wait 500 ms; `*no*` users get noauth, others success.
fn delaying_cloud() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/externalApi.php", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || serve_http(conn));
        }
    });
    url
}

fn serve_http(mut conn: std::net::TcpStream) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request: headers, then Content-Length bytes of body.
        let (head_end, len) = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (i + 4, len);
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
        };
        while data.len() < head_end + len {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&data[head_end..head_end + len]).to_string();
        data.drain(..head_end + len);
        if body.contains("username=slow") {
            std::thread::sleep(Duration::from_millis(500));
        }
        let json = if body.contains("username=slowno") {
            r#"{"result":"noauth"}"#
        } else {
            r#"{"result":"success","data":{"uid":"x"}}"#
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn overlapping_cloud_requests_are_answered_in_request_order() {
    let dir = workdir("order");
    let url = delaying_cloud();
    let token = tok("alice", "example.org");
    let mut child = cloudauth(&url, "5", &dir)
        .args(["-t", "ejabberd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let started = std::time::Instant::now();
    // slow yes, token yes, slow no, fast yes: in completion order the
    // replies would read yes, yes, yes, no.
    for p in [
        "auth:slow1:example.org:pw".to_string(),
        format!("auth:alice:example.org:{token}"),
        "auth:slowno:example.org:pw".to_string(),
        "auth:fast:example.org:pw".to_string(),
    ] {
        input.write_all(&frame(p.as_bytes())).unwrap();
    }
    input.flush().unwrap();
    let mut replies = [0u8; 16];
    std::io::Read::read_exact(&mut output, &mut replies).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        replies.chunks(4).collect::<Vec<_>>(),
        vec![&YES[..], &YES[..], &NO[..], &YES[..]],
        "replies in request order"
    );
    assert!(
        elapsed < Duration::from_millis(900),
        "the two slow requests overlapped ({elapsed:?})"
    );
    drop(input);
    assert!(child.wait().unwrap().success(), "exit 0 on EOF");
}

/// The TOTP files and state database in `dir`: adds `--tokens totp,jsxc`
/// with them to a command.
fn totp_args(dir: &Path) -> impl Fn(&mut Command) {
    let (seed, secret, db) = (
        dir.join("seed"),
        dir.join("secret"),
        dir.join("state.sqlite3"),
    );
    std::fs::write(&seed, "PUL3GGUVO4KFVN4R\n").unwrap();
    std::fs::write(&secret, "OHCMULRVFWI2SR5W2S22C2JMA63OC5SV\n").unwrap();
    move |cmd: &mut Command| {
        cmd.args(["--tokens", "totp,jsxc", "--totp-seed-file"])
            .arg(&seed)
            .arg("--totp-secret-file")
            .arg(&secret)
            .arg("--db")
            .arg(&db);
    }
}

/// `cloudauth token --format totp USER example.org` with `totp_args`.
fn mint_totp(dir: &Path, totp_args: &impl Fn(&mut Command), user: &str) -> String {
    let mut mint = cloudauth(&dead_url(), "1", dir);
    totp_args(&mut mint);
    let out = mint
        .args(["token", "--format", "totp", user, "example.org"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.contains(' '), "a totp token has a space: {token:?}");
    token
}

/// Two processes of one extauth pool share the state database: a TOTP
/// token one of them accepted is refused by the other. Tokens come from
/// `cloudauth token --format totp` (the generic protocol: one line each).
#[test]
fn totp_tokens_are_single_use_across_an_extauth_pool() {
    let dir = workdir("totp");
    let totp_args = totp_args(&dir);
    let token = mint_totp(&dir, &totp_args, "bob");
    let ask = |line: &str| -> String {
        let mut cmd = cloudauth(&dead_url(), "1", &dir);
        totp_args(&mut cmd);
        let out = feed(cmd.args(["-t", "generic"]), line.as_bytes());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(ask(&format!("auth:bob:example.org:{token}\n")), "1\n");
    assert_eq!(
        ask(&format!("auth:bob:example.org:{token}\n")),
        "0\n",
        "replayed through another process"
    );
    assert_eq!(ask(&format!("auth:alice:example.org:{token}\n")), "0\n");
    let log = log_text(&dir);
    assert!(log.contains("TOTP token already used"), "{log}");
    assert!(!log.contains(&token), "tokens are never logged");
}

/// Issue 18: a TOTP token minted for `malice` with the `m` moved into its
/// nonce was a valid token for `alice`, and one for `bob` with nonce digits
/// moved out a valid token for `NNNbob`. Through `-A`, the ejabberd and the
/// generic protocols both are refused locally ("no", not sent on as a
/// password: the backend here is dead, so that would be trouble), while
/// the real token is admitted once.
#[test]
fn shifted_totp_tokens_are_refused_through_every_front_door() {
    let dir = workdir("totp-shifted");
    let totp_args = totp_args(&dir);
    let one_shot = |user: &str, password: &str| -> Option<i32> {
        let mut cmd = cloudauth(&dead_url(), "1", &dir);
        totp_args(&mut cmd);
        cmd.args(["-A", user, "example.org", password])
            .output()
            .unwrap()
            .status
            .code()
    };
    let ask = |protocol: &str, input: &[u8]| -> Vec<u8> {
        let mut cmd = cloudauth(&dead_url(), "1", &dir);
        totp_args(&mut cmd);
        feed(cmd.args(["-t", protocol]), input).stdout
    };
    let malice = mint_totp(&dir, &totp_args, "malice");
    let (word, sig) = malice.split_once(' ').unwrap();
    let as_alice = format!("{word}m {sig}");
    let bob = mint_totp(&dir, &totp_args, "bob");
    let (word, sig) = bob.split_once(' ').unwrap();
    let (kept, moved) = word.split_at(word.len() - 3);
    let as_nnnbob = (format!("{moved}bob"), format!("{kept} {sig}"));
    let mut odd = vec![format!("{word}7 {sig}"), format!("{} {sig}", &word[..39])];
    // 32 characters, one a letter (a digit here could be the real token).
    odd.push(format!("{}a {sig}", &word[..39]));

    assert_eq!(
        one_shot("alice", &as_alice),
        Some(1),
        "-A: malice's token as alice"
    );
    assert_eq!(
        one_shot(&as_nnnbob.0, &as_nnnbob.1),
        Some(1),
        "-A: bob's as {}",
        as_nnnbob.0
    );
    for t in &odd {
        assert_eq!(
            one_shot("bob", t),
            Some(1),
            "-A: nonce of {} characters",
            t.len() - 53
        );
    }
    let frames: Vec<u8> = [("alice", &as_alice), (as_nnnbob.0.as_str(), &as_nnnbob.1)]
        .iter()
        .flat_map(|(u, t)| frame(format!("auth:{u}:example.org:{t}").as_bytes()))
        .collect();
    assert_eq!(
        ask("ejabberd", &frames),
        [NO, NO].concat(),
        "ejabberd protocol"
    );
    let lines = format!(
        "auth:alice:example.org:{as_alice}\nauth:{}:example.org:{}\n",
        as_nnnbob.0, as_nnnbob.1
    );
    assert_eq!(
        ask("generic", lines.as_bytes()),
        b"0\n0\n",
        "generic protocol"
    );
    // The real tokens: admitted once each, refused after.
    assert_eq!(one_shot("malice", &malice), Some(0));
    assert_eq!(
        ask(
            "ejabberd",
            &frame(format!("auth:bob:example.org:{bob}").as_bytes())
        ),
        YES
    );
    assert_eq!(one_shot("malice", &malice), Some(1), "replayed");
    assert_eq!(
        ask(
            "ejabberd",
            &frame(format!("auth:bob:example.org:{bob}").as_bytes())
        ),
        NO
    );
    let log = log_text(&dir);
    assert!(log.contains("TOTP token malformed"), "{log}");
    assert!(!log.contains(sig), "tokens are never logged");
}

/// Under systemd (JOURNAL_STREAM names standard error) with no log
/// directory configured, lines go to the journal: priority prefixes, no
/// timestamps of our own; with `-l DIR` the file wins.
#[test]
fn journal_under_systemd_unless_a_log_directory_is_configured() {
    use std::os::unix::fs::MetadataExt;
    let dir = workdir("journal");
    let stderr_path = dir.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let m = stderr.metadata().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "-c",
            "/dev/null",
            "-s",
            SECRET,
            "-u",
            &dead_url(),
            "-t",
            "generic",
        ])
        .env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(format!("auth:alice:localhost:{}\n", tok("alice", "localhost")).as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    let text = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("<6>auth alice@localhost: yes via token")),
        "{text}"
    );
    assert!(
        !text.contains("Z  INFO"),
        "no timestamps of our own: {text}"
    );
    // An explicit log directory beats the journal.
    let logdir = dir.join("log");
    let out = Command::new(BIN)
        .args([
            "-c",
            "/dev/null",
            "-s",
            SECRET,
            "-u",
            &dead_url(),
            "-t",
            "generic",
            "-l",
        ])
        .arg(&logdir)
        .env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(log_text(&logdir).contains("serving Generic protocol"));
}

/// One canonical JID form for every protocol: a domain's own settings
/// apply whatever its letter case or a trailing dot, and '@' in the user
/// or domain cannot make one JID's token pass for another's.
#[test]
fn domain_case_trailing_dot_and_at_signs_cannot_switch_settings_or_jids() {
    let dir = workdir("canonical");
    let domains = dir.join("domains");
    let secret_a = "secret-of-a";
    std::fs::write(&domains, format!("a.example {secret_a} {}\n", dead_url())).unwrap();
    let ask = |lines: &str| -> String {
        let mut cmd = cloudauth(&dead_url(), "1", &dir);
        let out = feed(
            cmd.arg("-p").arg(&domains).args(["-t", "generic"]),
            lines.as_bytes(),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let exp = now() + 600;
    let a_token = token::mint(&Secret::new(secret_a), "alice", "a.example", exp);
    // a.example's token, asked as A.EXAMPLE and a.example.: a.example's settings decide.
    assert_eq!(
        ask(&format!(
            "auth:alice:a.example:{a_token}\nauth:alice:A.EXAMPLE:{a_token}\nauth:Alice:a.example.:{a_token}\n"
        )),
        "1\n1\n1\n"
    );
    // A token minted for `alice@x` at example.org (MAC over "alice@x@example.org")
    // does not admit alice at `x@example.org`, nor the other way round.
    let at_user = token::mint(&Secret::new(SECRET), "alice@x", "example.org", exp);
    let at_domain = token::mint(&Secret::new(SECRET), "alice", "x@example.org", exp);
    assert_eq!(
        ask(&format!(
            "auth:alice:x@example.org:{at_user}\nisuser:alice:x@example.org\nauth:alice@x:example.org:{at_domain}\n"
        )),
        "0\n0\n0\n"
    );
    let log = log_text(&dir);
    assert!(log.contains("characters a JID"), "{log}");
}

/// Found by fuzzing (issue 13): a per-domain row written `B.Example.` was
/// kept under that name, which no request (canonical: `b.example`) looked
/// up, so the global settings decided for b.example; and `a.example..`
/// became `a.example.`, again another name than a.example's, so the global
/// cloud decided for a.example.
#[test]
fn per_domain_rows_and_extra_trailing_dots_cannot_switch_to_the_global_settings() {
    let dir = workdir("canonical-rows");
    let domains = dir.join("domains");
    let (secret_a, secret_b) = ("secret-of-a", "secret-of-b");
    std::fs::write(
        &domains,
        format!(
            "a.example {secret_a} {url}\nB.Example. {secret_b} {url}\n",
            url = dead_url()
        ),
    )
    .unwrap();
    let exp = now() + 600;
    let b_token = token::mint(&Secret::new(secret_b), "alice", "b.example", exp);
    // A token of the global secret for the name `a.example..` used to become.
    let global_token = token::mint(&Secret::new(SECRET), "alice", "a.example.", exp);
    let mut cmd = cloudauth(&dead_url(), "1", &dir);
    let out = feed(
        cmd.arg("-p").arg(&domains).args(["-t", "generic"]),
        format!("auth:alice:b.example:{b_token}\nauth:alice:a.example..:{global_token}\n")
            .as_bytes(),
    );
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out, "1\n0\n");
}

/// A line break in what a client sends cannot forge a log line (the
/// Postfix protocol percent-decodes `%0a`).
#[test]
fn a_forged_log_line_stays_inside_its_own_line() {
    let dir = workdir("loginject");
    let forged = "get mallory%0a2026-01-01T00:00:00.000000Z  INFO auth admin@localhost: yes via token in 1 us%0d@localhost\n";
    let out = run(&["-t", "postfix"], forged.as_bytes(), &dir);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("500 "));
    let log = log_text(&dir);
    assert!(log.contains("mallory\\n2026-01-01"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01T00:00:00")),
        "a forged line: {log}"
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One slow cloud request, then a flood of empty frames (each answered at
/// once, but only after the slow one): the process stops reading while
/// too many replies wait, instead of keeping them all in memory; every
/// request still gets its reply, in order.
#[test]
fn replies_waiting_behind_a_slow_request_are_bounded() {
    let dir = workdir("pending");
    // A cloud that accepts connections and never answers: the first request
    // waits for its 3 s deadline.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", hole.local_addr().unwrap());
    let mut child = cloudauth(&url, "3", &dir)
        .args(["-t", "ejabberd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    const FLOOD: usize = 300_000;
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = output.read_to_end(&mut all);
        all
    });
    let writer = std::thread::spawn(move || {
        let mut data = frame(b"auth:alice:localhost:password");
        data.extend(std::iter::repeat_n([0u8, 0u8], FLOOD).flatten());
        let _ = input.write_all(&data);
    });
    let mut peak = 0;
    while !writer.is_finished() || peak == 0 {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    let replies = reader.join().unwrap();
    let _ = child.wait();
    drop(hole);
    assert!(
        peak > 0 && peak < 24 * 1024,
        "peak RSS {peak} KiB while replies waited"
    );
    assert_eq!(replies.len(), 4 * (FLOOD + 1));
    assert_eq!(
        &replies[..4],
        &TEMPFAIL,
        "the slow request's reply comes first"
    );
    assert!(replies[4..].chunks(4).all(|r| r == NO));
}

/// A cloud whose error page echoes the request (form body, password
/// included): the log shows the reply's length and masked start, never the
/// password.
#[test]
fn a_reply_echoing_the_request_never_puts_the_password_in_the_log() {
    let dir = workdir("echo");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in l.incoming().flatten() {
            let mut data = Vec::new();
            let mut chunk = [0u8; 4096];
            // The form body ends with the password field.
            while !String::from_utf8_lossy(&data).ends_with("-pw") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => data.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&data);
            let form = text.split("\r\n\r\n").nth(1).unwrap_or_default();
            let body = format!("<html><body>Bad request: {form}</body></html>");
            let _ = conn.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
            );
        }
    });
    let out = feed(
        cloudauth(&url, "3", &dir).args(["-t", "generic"]),
        b"auth:alice:localhost:hunter2-secret-pw\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    let log = log_text(&dir);
    assert!(log.contains("reply is not JSON"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}
