//! `cloudauth doctor`, the real binary, against the real `jsxc-test-backend`
//! binary (and, for TLS, a small TLS front for it in this file, with
//! certificates made by the `openssl` command): all ✓ and exit 0 on a good
//! set-up of each backend; each fault — wrong URL, wrong secret, untrusted
//! certificate, certificate for another name, https to a plain-http port,
//! a clock 10 minutes off, a secret file readable by others, one that is a
//! directory, one that is missing, a wrong API token, a wrong service
//! account password — gives exactly one ✗ line naming it, and exit 1.
//!
//! The test backend is found beside the cloudauth binary: `cargo test
//! --workspace` builds it (`cargo build -p jsxc-test-backend` otherwise).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cloudauth");
const SECRET: &str = "doctor-test-secret";

const USERS: &str = r#"{"users": [
  {"uid": "alice", "password": "alice-pw", "groups": ["staff"]},
  {"uid": "svc", "password": "svc-pw", "admin": true},
  {"uid": "nobody", "password": "nobody-pw"}
]}"#;

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloudauth-doctor-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("log")).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

fn write_file(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

struct Backend {
    child: Child,
    /// The JSXC API's URL.
    api: String,
    /// `http://127.0.0.1:PORT`: the OCS API's base, and the JSON API's host.
    base: String,
    /// `127.0.0.1:PORT`.
    addr: String,
    /// `127.0.0.1:PORT` of the control server.
    control: String,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn backend_bin() -> PathBuf {
    let p = Path::new(BIN).with_file_name("jsxc-test-backend");
    assert!(
        p.exists(),
        "{} is missing: build it (cargo build -p jsxc-test-backend; cargo test --workspace does)",
        p.display()
    );
    p
}

fn start_backend(dir: &Path, args: &[&str]) -> Backend {
    let users = dir.join("users.json");
    std::fs::write(&users, USERS).unwrap();
    let mut child = Command::new(backend_bin())
        .args(["--secret", SECRET, "--quiet", "--users"])
        .arg(&users)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line.trim().strip_prefix("READY api=").expect("READY line");
    let (api, control) = rest.split_once(" control=").unwrap();
    let addr = api
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    Backend {
        child,
        api: api.to_string(),
        base: format!("http://{addr}"),
        addr,
        control: control.trim_start_matches("http://").to_string(),
    }
}

/// One HTTP/1.0 request to `addr`; the status code.
fn http(addr: &str, method: &str, target: &str, headers: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The outcome of one doctor run.
struct Run {
    code: i32,
    out: String,
}

impl Run {
    fn failures(&self) -> Vec<&str> {
        self.out
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('✗'))
            .collect()
    }

    /// Exit 0, no ✗ line, and the final line says so.
    fn assert_all_pass(&self) {
        assert_eq!(self.code, 0, "{}", self.out);
        assert!(self.failures().is_empty(), "{}", self.out);
        assert!(self.out.contains("checks passed"), "{}", self.out);
    }

    /// Exit 1 and exactly one ✗ line, which contains every one of `needles`.
    fn assert_one_failure(&self, needles: &[&str]) {
        assert_eq!(self.code, 1, "{}", self.out);
        let f = self.failures();
        assert_eq!(f.len(), 1, "exactly one ✗ line:\n{}", self.out);
        for n in needles {
            assert!(f[0].contains(n), "{n:?} in {:?}\n{}", f[0], self.out);
        }
    }

    fn has(&self, line_start: &str) -> bool {
        self.out.lines().any(|l| l.trim().starts_with(line_start))
    }
}

/// `cloudauth doctor` with no config file, its log and state in `dir`, and `args`.
fn doctor_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(["doctor", "-c", "/dev/null", "-l"])
        .arg(dir.join("log"))
        .arg("--db")
        .arg(dir.join("state.sqlite3"))
        .args(args)
        // The system's CA bundle must not decide the TLS cases.
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if !args.contains(&"--timeout") {
        cmd.args(["--timeout", "3"]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains(SECRET) && !text.contains("svc-pw") && !text.contains("nobody-pw"),
        "a secret in the output:\n{text}"
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        out: text,
    }
}

fn doctor(dir: &Path, args: &[&str]) -> Run {
    doctor_env(dir, args, &[])
}

/// The JSXC secret in a file with mode 0600; its path as text.
fn secret_file(dir: &Path, text: &str) -> String {
    let p = dir.join("secret");
    write_file(&p, &format!("{text}\n"), 0o600);
    p.to_string_lossy().into_owned()
}

#[test]
fn jsxc_good_set_up_passes_every_check() {
    let dir = workdir("jsxc-good");
    let b = start_backend(&dir, &[]);
    let secret = secret_file(&dir, SECRET);
    let seed = dir.join("otp-seed");
    let token_secret = dir.join("token-secret");
    write_file(&seed, "JBSWY3DPEHPK3PXP\n", 0o600);
    write_file(&token_secret, "token-secret-text\n", 0o640);
    let r = doctor(
        &dir,
        &[
            "-u",
            &b.api,
            "--secret-file",
            &secret,
            "--tokens",
            "jsxc,totp",
            "--totp-seed-file",
            seed.to_str().unwrap(),
            "--totp-secret-file",
            token_secret.to_str().unwrap(),
        ],
    );
    r.assert_all_pass();
    for line in [
        "✓ config file:",
        "✓ secret-file:",
        "✓ totp-seed-file:",
        "✓ totp-secret-file:",
        "✓ log directory:",
        "✓ state database:",
        "✓ settings: backend jsxc, tokens jsxc, totp",
        "✓ URL:",
        "✓ DNS:",
        "✓ TCP:",
        "✓ JSXC API: answers at",
        "✓ signature: accepted",
        "✓ clock: within",
        "✓ token jsxc:",
        "✓ token totp:",
    ] {
        assert!(r.has(line), "{line:?} in\n{}", r.out);
    }
}

#[test]
fn json_and_nextcloud_good_set_ups_pass() {
    let dir = workdir("other-good");
    let token = dir.join("api-token");
    write_file(&token, "json-api-token\n", 0o600);
    let b = start_backend(&dir, &["--api-token-file", token.to_str().unwrap()]);
    let json_url = format!("{}/json", b.base);
    let r = doctor(
        &dir,
        &[
            "--backend",
            "json",
            "-u",
            &json_url,
            "--api-token-file",
            token.to_str().unwrap(),
        ],
    );
    r.assert_all_pass();
    assert!(
        r.has("✓ JSON API: answers at") && r.has("✓ API token: accepted"),
        "{}",
        r.out
    );

    // A token the API does not take is told apart from a wrong URL.
    let wrong = dir.join("wrong-token");
    write_file(&wrong, "not-the-token\n", 0o600);
    let r = doctor(
        &dir,
        &[
            "--backend",
            "json",
            "-u",
            &json_url,
            "--api-token-file",
            wrong.to_str().unwrap(),
        ],
    );
    r.assert_one_failure(&["API token", "refused our token", "api-token-file"]);
    assert!(r.has("✓ JSON API: answers at"), "{}", r.out);
    let r = doctor(
        &dir,
        &["--backend", "json", "-u", &format!("{}/nope", b.base)],
    );
    r.assert_one_failure(&["JSON API", "no JSON API at", "HTTP 404"]);

    let svc = dir.join("svc-password");
    write_file(&svc, "svc-pw\n", 0o600);
    let nc = |pw: &Path| {
        doctor(
            &dir,
            &[
                "--backend",
                "nextcloud",
                "-u",
                &b.base,
                "--service-user",
                "svc",
                "--service-password-file",
                pw.to_str().unwrap(),
            ],
        )
    };
    let r = nc(&svc);
    r.assert_all_pass();
    for line in [
        "✓ OCS API: Nextcloud answers at",
        "✓ service account: svc logs in and may look up users",
        "✓ throttle: not throttled",
        "✓ clock: within",
    ] {
        assert!(r.has(line), "{line:?} in\n{}", r.out);
    }
    write_file(&svc, "wrong-pw\n", 0o600);
    nc(&svc).assert_one_failure(&[
        "service account",
        "refused the login of svc",
        "service-password-file",
    ]);
    // Without a service account: passwords only, which is a valid set-up.
    let r = doctor(&dir, &["--backend", "nextcloud", "-u", &b.base]);
    r.assert_all_pass();
    assert!(r.has("✓ service account: none"), "{}", r.out);
}

#[test]
fn a_throttling_nextcloud_is_seen() {
    let dir = workdir("throttle");
    let b = start_backend(&dir, &[]);
    // Four failed logins recorded at once (scale 0: no waiting), then
    // Nextcloud's delay for them (1.6 s) at 1.5 times: 2.4 s per login.
    assert_eq!(
        http(&b.control, "POST", "/throttle?on=1&scale_ms_per_s=0", ""),
        200
    );
    for _ in 0..4 {
        let auth = "Authorization: Basic c3ZjOndyb25n\r\nOCS-APIRequest: true\r\n"; // svc:wrong
        assert_eq!(
            http(&b.addr, "GET", "/ocs/v2.php/cloud/user?format=json", auth),
            401
        );
    }
    assert_eq!(
        http(&b.control, "POST", "/throttle?scale_ms_per_s=1500", ""),
        200
    );
    let svc = dir.join("svc-password");
    write_file(&svc, "svc-pw\n", 0o600);
    let r = doctor(
        &dir,
        &[
            "--backend",
            "nextcloud",
            "-u",
            &b.base,
            "--service-user",
            "svc",
            "--service-password-file",
            svc.to_str().unwrap(),
            "--timeout",
            "10",
        ],
    );
    r.assert_one_failure(&[
        "✗ throttle:",
        "brute-force",
        "occ security:bruteforce:reset",
    ]);
    assert!(r.has("✓ service account: svc logs in"), "{}", r.out);
}

#[test]
fn wrong_url_and_wrong_secret_are_told_apart() {
    let dir = workdir("url-secret");
    let b = start_backend(&dir, &[]);
    let good = secret_file(&dir, SECRET);
    let wrong_path = b.api.replace("externalApi.php", "wrongApi.php");
    let r = doctor(&dir, &["-u", &wrong_path, "--secret-file", &good]);
    r.assert_one_failure(&["✗ JSXC API: no JSXC API at", "HTTP 404", "externalApi.php"]);
    assert!(!r.has("✓ signature"), "{}", r.out);

    let wrong = secret_file(&dir, "not-the-secret");
    let r = doctor(&dir, &["-u", &b.api, "--secret-file", &wrong]);
    r.assert_one_failure(&["✗ signature: wrong secret", "JSXC admin page"]);
    assert!(r.has("✓ JSXC API: answers at"), "{}", r.out);

    // Nothing listening is neither.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = doctor(
        &dir,
        &[
            "-u",
            &format!("http://127.0.0.1:{port}/x"),
            "--secret-file",
            &good,
        ],
    );
    r.assert_one_failure(&["✗ TCP: connection refused"]);
}

#[test]
fn a_clock_ten_minutes_off_fails() {
    let dir = workdir("clock");
    let b = start_backend(&dir, &["--clock-offset-s", "600"]);
    let secret = secret_file(&dir, SECRET);
    let r = doctor(&dir, &["-u", &b.api, "--secret-file", &secret]);
    r.assert_one_failure(&[
        "✗ clock: this machine's clock is",
        "s behind the server's",
        "NTP",
    ]);
    let f = r.failures()[0];
    let secs: u64 = f
        .split("clock is ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("seconds in {f:?}"));
    assert!((598..=602).contains(&secs), "{f}");
}

#[test]
fn secret_files_readable_by_others_or_unreadable_fail() {
    let dir = workdir("files");
    let b = start_backend(&dir, &[]);
    let secret = secret_file(&dir, SECRET);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = doctor(&dir, &["-u", &b.api, "--secret-file", &secret]);
    r.assert_one_failure(&[
        "✗ secret-file:",
        "readable by other users (mode 0644)",
        "chmod 600",
    ]);
    // Everything else still checked, and fine.
    assert!(r.has("✓ signature: accepted"), "{}", r.out);

    // A directory where the file should be (root reads any file, so
    // unreadability is shown this way and by a missing file).
    let as_dir = dir.join("secret-dir");
    std::fs::create_dir_all(&as_dir).unwrap();
    let r = doctor(
        &dir,
        &["-u", &b.api, "--secret-file", as_dir.to_str().unwrap()],
    );
    r.assert_one_failure(&["✗ secret-file:", "is a directory"]);
    let missing = dir.join("missing-secret");
    let r = doctor(
        &dir,
        &["-u", &b.api, "--secret-file", missing.to_str().unwrap()],
    );
    r.assert_one_failure(&["✗ secret-file:", "does not exist"]);

    // A config file with the secret in it, readable by others.
    let conf = dir.join("xcauth.conf");
    write_file(&conf, &format!("url={}\nsecret={SECRET}\n", b.api), 0o644);
    let out = Command::new(BIN)
        .args(["doctor", "-c"])
        .arg(&conf)
        .arg("-l")
        .arg(dir.join("log"))
        .arg("--db")
        .arg(dir.join("state.sqlite3"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: text,
    };
    run.assert_one_failure(&[
        "✗ config file:",
        "holds a secret and is readable by other users",
        "chmod 600",
    ]);
    assert!(!run.out.contains(SECRET));
}

/// A secret file this user cannot read: mode 000 for an ordinary user; as
/// root (who reads anything), run as nobody (uid 65534) through setpriv.
#[test]
fn an_unreadable_secret_file_fails() {
    use std::os::unix::fs::MetadataExt;
    let dir = workdir("unreadable");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = secret_file(&dir, SECRET);
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let mut cmd = if root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("skipped: running as root and no setpriv to drop to another user");
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        Command::new(BIN)
    };
    let out = cmd
        .args([
            "doctor",
            "-c",
            "/dev/null",
            "-u",
            "http://127.0.0.1:9/x",
            "--secret-file",
            &secret,
        ])
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    run.assert_one_failure(&[
        "✗ secret-file:",
        "not readable by this user",
        "run the doctor as the server's user",
    ]);
    assert!(!run.out.contains(SECRET));
}

#[test]
fn an_unwritable_log_directory_fails() {
    let dir = workdir("logdir");
    let b = start_backend(&dir, &[]);
    let secret = secret_file(&dir, SECRET);
    let file = dir.join("not-a-dir");
    write_file(&file, "x", 0o600);
    let out = Command::new(BIN)
        .args([
            "doctor",
            "-c",
            "/dev/null",
            "-u",
            &b.api,
            "--secret-file",
            &secret,
            "-l",
        ])
        .arg(&file)
        .arg("--db")
        .arg(dir.join("state.sqlite3"))
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    run.assert_one_failure(&["✗ log directory:", "is not a directory"]);
}

#[test]
fn per_domain_settings_are_checked_per_domain() {
    let dir = workdir("domains");
    let b = start_backend(&dir, &[]);
    let good = secret_file(&dir, SECRET);
    let domains = dir.join("domains.txt");
    write_file(
        &domains,
        &format!(
            "good.example secret-file={good} url={api}\nbad.example wrong-secret {api}\n",
            api = b.api
        ),
        0o600,
    );
    let r = doctor(&dir, &["-p", domains.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("good.example (per-domain file"), "{}", r.out);
    assert!(r.out.contains("bad.example (per-domain file"), "{}", r.out);
    r.assert_one_failure(&["✗ signature: wrong secret"]);
    // The global settings serve nothing here, which is fine with domains listed.
    assert!(
        r.out.contains("only the domains below are served"),
        "{}",
        r.out
    );
    doctor(&dir, &["-p", domains.to_str().unwrap(), "good.example"]).assert_all_pass();
    doctor(&dir, &["-p", domains.to_str().unwrap(), "bad.example"])
        .assert_one_failure(&["✗ signature: wrong secret"]);
}

// TLS: certificates from the openssl command, a TLS front in front of the
// test backend.

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In `dir`: `ca.pem` (a CA), `leaf.pem`/`leaf.key` (signed by it, for
/// `name`), `self.pem`/`self.key` (self-signed, for `name`, a CA
/// certificate as `openssl req -x509` makes by default), `plain.pem`/
/// `plain.key` (self-signed, for `name`, `CA:FALSE`).
fn make_certs(dir: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=cloudauth test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=leaf"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    let san = format!("subjectAltName=DNS:{name}");
    let mut own = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=self",
        "-addext",
        san.as_str(),
    ];
    own.extend(ec);
    own.extend(["-keyout", "self.key", "-out", "self.pem"]);
    openssl(dir, &own);
    let mut plain = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=plain",
        "-addext",
        san.as_str(),
    ];
    plain.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
    plain.extend(ec);
    plain.extend(["-keyout", "plain.key", "-out", "plain.pem"]);
    openssl(dir, &plain);
}

/// A TLS server on 127.0.0.1 with `cert`/`key`, passing each request to
/// `upstream` (one request per connection) and its answer back.
fn tls_front(cert: &Path, key: &Path, upstream: String) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_file(cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            let upstream = upstream.clone();
            thread::spawn(move || {
                let _ = serve_one(config, sock, &upstream);
            });
        }
    });
    port
}

fn serve_one(
    config: Arc<rustls::ServerConfig>,
    sock: TcpStream,
    upstream: &str,
) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    // The request head, then as much body as it announces.
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 {
            return Ok(());
        }
        req.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&req).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body)?;
    // One request per upstream connection, closed after the answer.
    let mut forwarded: String = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(forwarded.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    tls.write_all(&answer)?;
    tls.conn.send_close_notify();
    tls.flush()
}

#[test]
fn tls_trusted_untrusted_wrong_name_and_plain_http_port() {
    let dir = workdir("tls");
    let b = start_backend(&dir, &[]);
    let secret = secret_file(&dir, SECRET);
    make_certs(&dir, "localhost");
    let ca = dir.join("ca.pem");
    let path = b
        .api
        .split_once(&b.addr)
        .map(|(_, p)| p.to_string())
        .unwrap();
    let trusted = tls_front(&dir.join("leaf.pem"), &dir.join("leaf.key"), b.addr.clone());
    let own = tls_front(&dir.join("self.pem"), &dir.join("self.key"), b.addr.clone());
    let with_ca = [("SSL_CERT_FILE", ca.as_path())];

    // Our CA trusted (as after update-ca-certificates): all fine over TLS.
    let url = format!("https://localhost:{trusted}{path}");
    let r = doctor_env(&dir, &["-u", &url, "--secret-file", &secret], &with_ca);
    r.assert_all_pass();
    assert!(r.has("✓ TLS: TLSv1_"), "{}", r.out);
    assert!(r.has("✓ signature: accepted"), "{}", r.out);

    // The same server under another name than its certificate's.
    let url = format!("https://127.0.0.1:{trusted}{path}");
    let r = doctor_env(&dir, &["-u", &url, "--secret-file", &secret], &with_ca);
    r.assert_one_failure(&[
        "✗ TLS: the certificate of 127.0.0.1 is for localhost",
        &format!("https://localhost:{trusted}/"),
    ]);

    // A certificate from a CA this machine does not know.
    let url = format!("https://localhost:{trusted}{path}");
    let plain_root = dir.join("plain.pem");
    let other_roots = [("SSL_CERT_FILE", plain_root.as_path())];
    let r = doctor_env(&dir, &["-u", &url, "--secret-file", &secret], &other_roots);
    r.assert_one_failure(&[
        "✗ TLS: the certificate of localhost is not trusted (self-signed or unknown CA",
        "update-ca-certificates",
    ]);

    // A self-signed certificate as `openssl req -x509` makes it (CA:TRUE):
    // refused as a server's own even where it is a trusted root.
    let url = format!("https://localhost:{own}{path}");
    let self_root = dir.join("self.pem");
    let r = doctor_env(
        &dir,
        &["-u", &url, "--secret-file", &secret],
        &[("SSL_CERT_FILE", self_root.as_path())],
    );
    r.assert_one_failure(&[
        "✗ TLS: the certificate of localhost is not trusted: it is a self-signed CA certificate",
        "CA:FALSE",
    ]);

    // What that line advises works: self-signed with CA:FALSE, installed.
    let plain = tls_front(
        &dir.join("plain.pem"),
        &dir.join("plain.key"),
        b.addr.clone(),
    );
    let url = format!("https://localhost:{plain}{path}");
    doctor_env(
        &dir,
        &["-u", &url, "--secret-file", &secret],
        &[("SSL_CERT_FILE", plain_root.as_path())],
    )
    .assert_all_pass();

    // https:// to the backend's plain-http port.
    let url = b.api.replace("http://", "https://");
    let r = doctor_env(&dir, &["-u", &url, "--secret-file", &secret], &with_ca);
    r.assert_one_failure(&["✗ TLS: port", "speaks plain HTTP, not TLS", "http://"]);
}
