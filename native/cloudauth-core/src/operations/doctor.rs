//! Checks of a set-up for `cloudauth doctor` (and, in the VM, the ejabberd
//! command): each [`Check`] is one line an admin can act on, naming what
//! is wrong and what to do.
//!
//! The checks follow a request's way: files this user must read (and
//! others must not), directories it must write, the URL, DNS, TCP, TLS,
//! the backend's own API (each backend knows what a healthy answer looks
//! like: [`crate::Backend::doctor`]), the clock against the server's
//! `Date` header, and each token format by minting and verifying a token.
//! Later checks that cannot mean anything after an earlier failure (TLS
//! when TCP failed) are left out rather than reported as failing too.
//!
//! Nothing here prints a secret: checks name files and settings, never
//! their contents.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::backend::{HttpClient, Timeouts};
use crate::clock::{Clock, SystemClock};
use crate::settings::keys;
use crate::settings::schema::{self, Kind};
use crate::settings::values::{Layer, SettingsError, Values};
use crate::settings::DomainSettings;
use crate::token::{MemoryReplayGuard, TokenCheck, TokenContext};
use crate::vocab::check::probe_suffix;

// The check lines are vocabulary (backends write them too); doctor runs them.
pub use crate::vocab::check::{all_ok, probe_user, took, BackendReport, Check, Status, SLOW};
pub use crate::vocab::url::shown_url;

/// The largest clock difference to the server that passes. Tokens carry
/// absolute expiry times and TOTP steps are 30 s (one step of slack each
/// way): a minute off already refuses fresh TOTP tokens.
pub(crate) const MAX_CLOCK_OFFSET_S: u64 = 60;

/// The user id this process runs as (the owner of `/proc/self`), for
/// messages about files it cannot read.
pub fn my_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// A secret file named by setting `key`: there, a regular file, readable by
/// this user, with a non-empty first line, and not readable by others
/// (owner and group may read it: ejabberd's group often needs to).
pub fn secret_file(key: &str, path: &Path) -> Check {
    let shown = path.display();
    let fix_perms = format!(
        "chown it to the user the server runs as and chmod 600 {shown} (640 if its group needs it)"
    );
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Check::fail(
                key,
                format!("{shown} does not exist"),
                format!(
                    "create it with the secret on its first line, or point {key} at the right file"
                ),
            )
        }
        Err(e) => {
            return Check::fail(
                key,
                format!("{shown}: cannot look at it: {e}"),
                format!(
                    "every directory on the way must be searchable (x) by this user; {fix_perms}"
                ),
            )
        }
    };
    if meta.is_dir() {
        return Check::fail(
            key,
            format!("{shown} is a directory, not a file"),
            format!("point {key} at the file whose first line is the secret"),
        );
    }
    if !meta.is_file() {
        return Check::fail(
            key,
            format!("{shown} is not a regular file"),
            format!("point {key} at a regular file whose first line is the secret"),
        );
    }
    let mode = meta.permissions().mode();
    match crate::secret::read_file(path) {
        Ok(_) => {}
        Err(crate::secret::SecretFileError::Empty(_)) => {
            return Check::fail(
                key,
                format!("{shown}: the first line is empty"),
                "put the secret on the first line",
            )
        }
        Err(crate::secret::SecretFileError::Read { source, .. }) => {
            let who = match my_uid() {
                Some(uid) => format!(
                    " (this process runs as uid {uid}; the file belongs to uid {}, mode {})",
                    meta.uid(),
                    mode_text(mode)
                ),
                None => String::new(),
            };
            return Check::fail(
                key,
                format!("{shown}: not readable by this user: {source}{who}"),
                format!("run the doctor as the server's user; {fix_perms}"),
            );
        }
    }
    if mode & 0o004 != 0 {
        return Check::fail(
            key,
            format!(
                "{shown} is readable by other users (mode {})",
                mode_text(mode)
            ),
            format!("chmod 600 {shown} (640 if the server's group needs it)"),
        );
    }
    Check::pass(
        key,
        format!(
            "{shown}: readable by this user, not by others (mode {})",
            mode_text(mode)
        ),
    )
}

/// Whether a layer gives a secret as text (`secret = …`), which makes the
/// file holding it as sensitive as a secret file.
pub fn holds_secret(layer: &Layer) -> bool {
    layer.entries.iter().any(|(k, _)| {
        crate::catalogue::find(&schema::normalise_key(k))
            .is_some_and(|s| s.kind == Kind::SecretText)
    })
}

/// A settings file (the config file, the per-domain file): readable by this
/// user, and not by others when it holds a secret.
pub fn settings_file(name: &str, path: &Path, holds_secret: bool) -> Check {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                name,
                format!("{shown}: {e}"),
                "give the right file (-c / --per-domain-config) or create it",
            )
        }
    };
    if meta.is_dir() {
        return Check::fail(
            name,
            format!("{shown} is a directory"),
            "give the settings file itself",
        );
    }
    if let Err(e) = fs::File::open(path).and_then(|mut f| f.read(&mut [0u8; 1])) {
        return Check::fail(
            name,
            format!("{shown}: not readable by this user: {e}"),
            "run the doctor as the server's user; make the file readable by that user (chown/chgrp)",
        );
    }
    let mode = meta.permissions().mode();
    match (holds_secret, mode & 0o004 != 0) {
        (true, true) => Check::fail(
            name,
            format!(
                "{shown} holds a secret and is readable by other users (mode {})",
                mode_text(mode)
            ),
            format!("chmod 600 {shown} (640 if the server's group needs it), or move the secret to a secret file"),
        ),
        (true, false) => Check::pass(
            name,
            format!(
                "{shown}: readable by this user, not by others (mode {})",
                mode_text(mode)
            ),
        ),
        (false, _) => Check::pass(
            name,
            format!("{shown}: readable (holds no secret as text)"),
        ),
    }
}

/// Every secret file the layers name (`secret-file`, `api-token-file`,
/// `service-password-file`, `totp-*-file`, …), each checked once.
pub fn secret_files<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Vec<Check> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for layer in layers {
        for (k, v) in &layer.entries {
            let key = schema::normalise_key(k);
            let Some(spec) = crate::catalogue::find(&key) else {
                continue;
            };
            if spec.kind != Kind::SecretFile || v.trim().is_empty() {
                continue;
            }
            let pair = (spec.key.to_string(), v.trim().to_string());
            if seen.contains(&pair) {
                continue;
            }
            out.push(secret_file(spec.key, Path::new(v.trim())));
            seen.push(pair);
        }
    }
    out
}

/// Whether this user can create (and remove) a file in `dir`. The probe
/// file is created exclusively under a name nothing else uses, and removed.
fn try_write_in(dir: &Path) -> io::Result<()> {
    let name = format!(
        ".cloudauth-doctor-{}-{}",
        std::process::id(),
        probe_suffix()
    );
    let probe = dir.join(name);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"probe\n"));
    let removed = fs::remove_file(&probe);
    written?;
    removed
}

/// A directory this user must write in (the log directory, the state
/// database's directory).
pub fn writable_dir(name: &str, dir: &Path) -> Check {
    let shown = dir.display();
    match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Check::fail(
                name,
                format!("{shown} does not exist"),
                format!("mkdir -p {shown} and chown it to the user the server runs as"),
            )
        }
        Err(e) => {
            return Check::fail(
                name,
                format!("{shown}: {e}"),
                "every directory on the way must be searchable (x) by this user",
            )
        }
        Ok(m) if !m.is_dir() => {
            return Check::fail(
                name,
                format!("{shown} is not a directory"),
                "give a directory",
            )
        }
        Ok(_) => {}
    }
    match try_write_in(dir) {
        Ok(()) => Check::pass(name, format!("{shown}: writable by this user")),
        Err(e) => Check::fail(
            name,
            format!("{shown}: this user cannot create files there: {e}"),
            format!("chown the directory to the user the server runs as (or chmod g+w {shown} for its group)"),
        ),
    }
}

/// The state database: its directory writable (SQLite puts its `-wal` and
/// `-shm` files beside it), the file opens and takes a write lock.
pub fn state_db(path: &Path) -> Check {
    const NAME: &str = "state database";
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let d = writable_dir(NAME, dir);
    if !d.ok() {
        return Check::fail(NAME, format!("{shown}: its directory: {}", d.detail), d.fix);
    }
    let opened = crate::vocab::state_db::open_shared(path).and_then(|conn| {
        // A write lock taken and given back: proves writes would work
        // without changing anything.
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| crate::vocab::state_db::StoreError(format!("{shown}: {e}")))
    });
    match opened {
        Ok(()) => Check::pass(NAME, format!("{shown}: opens and takes writes")),
        Err(e) => Check::fail(
            NAME,
            format!("{shown}: {}", e.0),
            format!("make {shown} (and its directory) owned by the user the server runs as; if it is corrupt, move it away"),
        ),
    }
}

/// The URL's host as a name or an address (IPv6 without its brackets).
fn host_of(url: &reqwest::Url) -> Option<(String, Option<IpAddr>)> {
    let h = url.host_str()?;
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    Some((bare.to_string(), bare.parse().ok()))
}

/// The URL's shape: a scheme and a host (settings parsing guarantees both),
/// no credentials in it, and TLS unless the cloud is on this machine.
pub(crate) fn url_shape(url: &reqwest::Url) -> Check {
    const NAME: &str = "URL";
    let shown = shown_url(url);
    if !url.username().is_empty() || url.password().is_some() {
        return Check::warn(
            NAME,
            format!("{shown} carries a user name or password"),
            "remove them from the URL: URLs end up in logs and process lists",
        );
    }
    let plain = crate::catalogue::url_scheme(url).is_some_and(|s| !s.tls);
    if plain && !crate::backend::http::is_loopback(url) {
        let scheme = url.scheme();
        return Check::warn(
            NAME,
            format!("{shown} is plain {scheme} to another machine: anyone on the way can read the passwords and answer in the cloud's name"),
            format!("use {scheme}s://"),
        );
    }
    Check::pass(NAME, shown)
}

/// Why a TLS handshake failed, in the terms of what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum TlsProblem {
    /// The chain does not lead to a trusted root (self-signed, private CA).
    #[error("the certificate is not trusted (self-signed or unknown CA): {0}")]
    Untrusted(String),
    /// The server presents a CA certificate as its own (a self-signed
    /// certificate with `CA:TRUE`, as `openssl req -x509` makes by default),
    /// which webpki refuses even when it is installed as a root.
    #[error("the server presents a CA certificate as its own: {0}")]
    CaAsServer(String),
    /// The certificate is for other names.
    #[error("the certificate is not valid for this name (it names {0:?})")]
    WrongName(Vec<String>),
    /// Outside its validity period (or this clock is off).
    #[error("the certificate has expired or is not valid yet: {0}")]
    Expired(String),
    /// The peer answered something that is not TLS.
    #[error("the peer does not speak TLS: {0}")]
    NotTls(String),
    /// No handshake within the deadline.
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
    /// Anything else rustls reported.
    #[error("{0}")]
    Other(String),
}

/// A name as webpki presents it (`DnsName("cloud.example.org")`,
/// `IpAddress(192.0.2.1)`), as it would be written in a URL.
fn presented_name(p: &str) -> String {
    let inner = p
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            p.strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        });
    inner.unwrap_or(p).to_string()
}

/// Sorts a rustls error into what the admin must do.
pub(crate) fn classify_tls(e: &rustls::Error) -> TlsProblem {
    use rustls::CertificateError as C;
    let text = e.to_string();
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => TlsProblem::Untrusted(text),
            C::NotValidForName => TlsProblem::WrongName(Vec::new()),
            C::NotValidForNameContext { presented, .. } => {
                TlsProblem::WrongName(presented.iter().map(|p| presented_name(p)).collect())
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsProblem::Expired(text),
            // webpki's CaUsedAsEndEntity has no variant of its own.
            _ if text.contains("CaUsedAsEndEntity") => TlsProblem::CaAsServer(text),
            _ if text.contains("UnknownIssuer") => TlsProblem::Untrusted(text),
            _ => TlsProblem::Other(text),
        },
        rustls::Error::InvalidMessage(_) => TlsProblem::NotTls(text),
        _ => TlsProblem::Other(text),
    }
}

/// What the TLS handshake found.
#[derive(Debug, Clone)]
pub(crate) struct TlsInfo {
    /// Negotiated protocol version (`TLSv1_3`).
    pub version: String,
}

/// Whether something at `addr` answers a plain HTTP request with an HTTP
/// status line: the sure sign of an https URL pointing at an http port.
fn speaks_plain_http(addr: SocketAddr, host: &str, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let request = format!("HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// A TLS handshake with `addr` for `host`, verified exactly as the backend
/// client verifies (the same verifier and roots), on this thread.
pub(crate) fn tls_handshake(
    addr: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Result<TlsInfo, TlsProblem> {
    let config = crate::tls::client_config().map_err(|e| TlsProblem::Other(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| TlsProblem::Other(format!("{host:?} is not a valid TLS server name: {e}")))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| TlsProblem::Other(e.to_string()))?;
    let mut sock = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| TlsProblem::Other(format!("connecting again for the handshake: {e}")))?;
    let _ = sock.set_read_timeout(Some(timeout));
    let _ = sock.set_write_timeout(Some(timeout));
    let started = Instant::now();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let inner = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            let problem = match (inner, e.kind()) {
                (Some(r), _) => classify_tls(&r),
                (None, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    TlsProblem::Timeout(started.elapsed())
                }
                // Closed or reset mid-handshake: an HTTP server drops a
                // ClientHello it cannot read.
                (None, _) => TlsProblem::NotTls(e.to_string()),
            };
            // rustls says only "corrupt message" or "eof": ask the port in
            // plain HTTP whether that is what it speaks.
            if let TlsProblem::NotTls(_) = problem {
                if speaks_plain_http(addr, host, timeout) {
                    return Err(TlsProblem::NotTls("it answers plain HTTP".into()));
                }
            }
            return Err(problem);
        }
    }
    let version = conn
        .protocol_version()
        .map_or_else(|| "TLS".to_string(), |v| format!("{v:?}"));
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(TlsInfo { version })
}

/// The TLS check's line for a handshake's outcome.
fn tls_check(url: &reqwest::Url, port: u16, outcome: Result<TlsInfo, TlsProblem>) -> Check {
    const NAME: &str = "TLS";
    let host = url.host_str().unwrap_or("");
    match outcome {
        Ok(info) => Check::pass(
            NAME,
            format!("{}, the certificate of {host} is trusted and valid for the name", info.version),
        ),
        Err(TlsProblem::Untrusted(detail)) => Check::fail(
            NAME,
            format!("the certificate of {host} is not trusted (self-signed or unknown CA: {detail})"),
            "install the CA that signed it on this machine (copy it to /usr/local/share/ca-certificates/NAME.crt and run update-ca-certificates), or give the web server a certificate from a public CA",
        ),
        Err(TlsProblem::CaAsServer(detail)) => Check::fail(
            NAME,
            format!("the certificate of {host} is not trusted: it is a self-signed CA certificate (CA:TRUE, as `openssl req -x509` makes by default), never accepted as a server's own, installed or not ({detail})"),
            "give the web server a certificate signed by a CA (your own: install that CA with update-ca-certificates; or a public one), or a self-signed one made with -addext basicConstraints=critical,CA:FALSE, installed with update-ca-certificates",
        ),
        Err(TlsProblem::WrongName(names)) => {
            let port_part = match url.port() {
                Some(p) => format!(":{p}"),
                None => String::new(),
            };
            // A wildcard does not cover its own parent: suggest a plain name.
            let fix = match names.iter().find(|n| !n.starts_with("*.")) {
                Some(n) => format!(
                    "use the name on the certificate in url (https://{n}{port_part}/…), or get a certificate for {host}"
                ),
                None => format!("use a name the certificate covers in url, or get a certificate for {host}"),
            };
            let names = if names.is_empty() {
                "other names".to_string()
            } else {
                names.join(", ")
            };
            Check::fail(
                NAME,
                format!("the certificate of {host} is for {names}, not for {host}"),
                fix,
            )
        }
        Err(TlsProblem::Expired(detail)) => Check::fail(
            NAME,
            format!("the certificate of {host} has expired or is not valid yet ({detail})"),
            "renew the certificate; if it looks valid, check this machine's clock",
        ),
        Err(TlsProblem::NotTls(detail)) if detail == "it answers plain HTTP" => Check::fail(
            NAME,
            format!("port {port} of {host} speaks plain HTTP, not TLS"),
            "use http:// for this port (only on loopback), or the web server's TLS port (usually 443) with https://",
        ),
        Err(TlsProblem::NotTls(detail)) => Check::fail(
            NAME,
            format!("port {port} of {host} does not speak TLS ({detail})"),
            "give the web server's TLS port (usually 443) in url",
        ),
        Err(TlsProblem::Timeout(d)) => Check::fail(
            NAME,
            format!("no TLS handshake from {host}:{port} within {} ms", d.as_millis()),
            "is this the web server's HTTPS port? Something accepts connections there but does not answer",
        ),
        Err(TlsProblem::Other(detail)) => Check::fail(
            NAME,
            format!("handshake with {host}:{port} failed: {detail}"),
            "check that the port is the web server's HTTPS port, and that ca-certificates is installed",
        ),
    }
}

/// DNS, TCP and (for a TLS scheme: https, …) TLS towards the URL's host: one check each;
/// the second value is whether HTTP can be tried at all.
pub async fn reach(url: &reqwest::Url, timeouts: Timeouts) -> (Vec<Check>, bool) {
    let mut out = Vec::new();
    let scheme = crate::catalogue::url_scheme(url);
    let port = url.port().or(scheme.map(|s| s.default_port));
    let (Some((host_text, ip)), Some(port)) = (host_of(url), port) else {
        out.push(Check::fail(
            "URL",
            format!("{} has no host or port", shown_url(url)),
            "give a full http(s) URL",
        ));
        return (out, false);
    };
    let addrs: Vec<SocketAddr> = match ip {
        Some(a) => {
            out.push(Check::pass(
                "DNS",
                format!("{a} is an address, nothing to look up"),
            ));
            vec![SocketAddr::new(a, port)]
        }
        None => {
            let d = host_text.as_str();
            let looked =
                tokio::time::timeout(timeouts.connect, tokio::net::lookup_host((d, port))).await;
            match looked {
                Ok(Ok(a)) => {
                    let a: Vec<SocketAddr> = a.collect();
                    if a.is_empty() {
                        out.push(Check::fail(
                            "DNS",
                            format!("{d} has no addresses"),
                            "check the host name in url and the DNS records",
                        ));
                        return (out, false);
                    }
                    let list: Vec<String> = a.iter().take(4).map(|s| s.ip().to_string()).collect();
                    out.push(Check::pass("DNS", format!("{d} is {}", list.join(", "))));
                    a
                }
                Ok(Err(e)) => {
                    out.push(Check::fail(
                        "DNS",
                        format!("{d} does not resolve: {e}"),
                        "check the host name in url; on this machine: /etc/resolv.conf, /etc/hosts",
                    ));
                    return (out, false);
                }
                Err(_) => {
                    out.push(Check::fail(
                        "DNS",
                        format!(
                            "no answer for {d} within {} ms",
                            timeouts.connect.as_millis()
                        ),
                        "check this machine's resolver (/etc/resolv.conf)",
                    ));
                    return (out, false);
                }
            }
        }
    };
    let mut connected = None;
    let mut failures = Vec::new();
    for a in &addrs {
        let started = Instant::now();
        match tokio::time::timeout(timeouts.connect, tokio::net::TcpStream::connect(a)).await {
            Ok(Ok(_)) => {
                connected = Some((*a, started.elapsed()));
                break;
            }
            Ok(Err(e)) => failures.push((*a, Some(e))),
            Err(_) => failures.push((*a, None)),
        }
    }
    let Some((addr, took)) = connected else {
        let (a, e) = failures.swap_remove(0);
        let check = match e {
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => Check::fail(
                "TCP",
                format!("connection refused by {a}"),
                format!("nothing listens on port {port}: is the web server up, and is the port in url right?"),
            ),
            Some(e) => Check::fail(
                "TCP",
                format!("cannot connect to {a}: {e}"),
                "check routing and firewalls between this machine and the cloud",
            ),
            None => Check::fail(
                "TCP",
                format!("no answer from {a} within {} ms", timeouts.connect.as_millis()),
                "a firewall drops the packets, or the host is down",
            ),
        };
        out.push(check);
        return (out, false);
    };
    out.push(Check::pass(
        "TCP",
        format!("connected to {addr} in {} ms", took.as_millis()),
    ));
    if scheme.is_some_and(|s| s.tls) {
        let timeout = timeouts.connect;
        let host = host_text.clone();
        let outcome = tokio::task::spawn_blocking(move || tls_handshake(addr, &host, timeout))
            .await
            .unwrap_or_else(|e| Err(TlsProblem::Other(format!("handshake task failed: {e}"))));
        let check = tls_check(url, port, outcome);
        let ok = check.ok();
        out.push(check);
        if !ok {
            return (out, false);
        }
    }
    (out, true)
}

/// The clock against the server's `Date` header (`server`) at `local`.
pub fn clock(server: u64, local: u64) -> Check {
    const NAME: &str = "clock";
    let offset = i128::from(local) - i128::from(server);
    let abs = offset.unsigned_abs();
    if abs <= u128::from(MAX_CLOCK_OFFSET_S) {
        return Check::pass(
            NAME,
            format!("within {abs} s of the server's (its Date header)"),
        );
    }
    let way = if offset > 0 { "ahead of" } else { "behind" };
    Check::fail(
        NAME,
        format!("this machine's clock is {abs} s {way} the server's (its Date header)"),
        "run an NTP client on both machines (systemd-timesyncd or chrony): tokens carry absolute expiry times and TOTP steps are 30 s",
    )
}

/// Each configured token format: built from the settings, a token minted
/// and verified at once. One-time formats record the token as used, so
/// they get a guard of their own here, never the server's.
pub fn tokens(values: &Values, domain: &str, now: u64) -> Vec<Check> {
    let ctx = TokenContext {
        replay: Arc::new(MemoryReplayGuard::default()),
    };
    let user = "cloudauth-doctor";
    let mut out = Vec::new();
    for name in values.list(keys::TOKENS) {
        let label = format!("token {name}");
        let Some(entry) = crate::catalogue::token_entry(name) else {
            out.push(Check::fail(
                label,
                "unknown token format",
                "fix the tokens setting",
            ));
            continue;
        };
        let format = match (entry.build)(values, &ctx) {
            Ok(f) => f,
            Err(SettingsError::Missing { key, .. }) if values.is_default(keys::TOKENS) => {
                out.push(Check::pass(
                    label,
                    format!("off (the default list names it, but {key} is not set)"),
                ));
                continue;
            }
            Err(e) => {
                out.push(Check::fail(label, e.to_string(), "fix the setting named"));
                continue;
            }
        };
        let minted = format.mint(user, domain, now, Duration::from_secs(300));
        match format.check(user, domain, &minted, now) {
            TokenCheck::Valid => out.push(Check::pass(
                label,
                format!("a token for {user}@{domain} minted and verified locally"),
            )),
            other => out.push(Check::fail(
                label,
                format!("a token just minted was not accepted: {other:?}"),
                "the token settings do not fit together (seed and secret files); check them",
            )),
        }
    }
    out
}

/// Everything about one domain's settings (`values`, served for
/// `domain`): they build, the URL, the way there, the backend's own
/// checks, the clock, the token formats.
pub async fn check_domain(values: &Values, domain: &str, http: &Arc<HttpClient>) -> Vec<Check> {
    let ctx = TokenContext {
        replay: Arc::new(MemoryReplayGuard::default()),
    };
    let settings = match DomainSettings::build(values, http, &ctx) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::fail(
                "settings",
                e.to_string(),
                "fix the setting named (command line, config file or per-domain settings)",
            )]
        }
    };
    let mut out = vec![Check::pass(
        "settings",
        format!(
            "backend {}, tokens {}",
            settings.backend.name(),
            if settings.tokens.is_empty() {
                "none".to_string()
            } else {
                settings
                    .tokens
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    )];
    if let Some(url) = values.url(keys::URL) {
        out.push(url_shape(url));
        let (reached, ok) = reach(url, http.timeouts()).await;
        out.extend(reached);
        if ok {
            let report = settings.backend.doctor(settings.auth_domain(domain)).await;
            let backend_ok = all_ok(&report.checks);
            out.extend(report.checks);
            match report.date {
                Some(server) => out.push(clock(server, SystemClock.now_unix())),
                None if backend_ok => out.push(Check::warn(
                    "clock",
                    "cannot tell: the answer had no Date header",
                    "compare `date -u` here and on the cloud's machine",
                )),
                None => {}
            }
        }
    }
    out.extend(tokens(values, domain, SystemClock.now_unix()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("cloudauth-doctor-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines() {
        assert_eq!(Check::pass("a", "fine").to_string(), "✓ a: fine");
        assert_eq!(
            Check::fail("b", "broken", "fix it").to_string(),
            "✗ b: broken — fix it"
        );
        assert_eq!(
            Check::warn("c", "meh", "better").to_string(),
            "! c: meh — better"
        );
        assert!(all_ok(&[Check::pass("a", ""), Check::warn("c", "", "")]));
        assert!(!all_ok(&[Check::pass("a", ""), Check::fail("b", "", "")]));
    }

    #[test]
    fn secret_files_are_told_apart() {
        let d = dir("secrets");
        let f = d.join("secret");
        fs::write(&f, "s3cret\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let c = secret_file("secret-file", &f);
        assert_eq!(c.status, Status::Pass, "{c}");
        assert!(!c.to_string().contains("s3cret"));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(secret_file("secret-file", &f).status, Status::Pass);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let c = secret_file("secret-file", &f);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("readable by other users (mode 0644)"),
            "{c}"
        );
        assert!(c.fix.contains("chmod 600"), "{c}");
        let c = secret_file("secret-file", &d);
        assert!(c.detail.contains("is a directory"), "{c}");
        let c = secret_file("api-token-file", &d.join("missing"));
        assert!(
            c.detail.contains("does not exist") && c.name == "api-token-file",
            "{c}"
        );
        fs::write(&f, "\n").unwrap();
        assert!(secret_file("secret-file", &f)
            .detail
            .contains("first line is empty"));
    }

    #[test]
    fn directories_and_databases() {
        let d = dir("dirs");
        assert!(writable_dir("log directory", &d).ok());
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            0,
            "the probe file is removed"
        );
        assert!(!writable_dir("log directory", &d.join("nope")).ok());
        let db = d.join("state.sqlite3");
        assert!(state_db(&db).ok(), "{}", state_db(&db));
        assert!(!state_db(&d.join("nope/state.sqlite3")).ok());
    }

    #[test]
    fn url_shapes() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            url_shape(&u("https://cloud.example.org/x")).status,
            Status::Pass
        );
        assert_eq!(
            url_shape(&u("http://127.0.0.1:8080/x")).status,
            Status::Pass
        );
        assert_eq!(url_shape(&u("http://localhost/x")).status, Status::Pass);
        assert_eq!(url_shape(&u("http://[::1]/x")).status, Status::Pass);
        assert_eq!(
            url_shape(&u("http://cloud.example.org/x")).status,
            Status::Warn
        );
        let c = url_shape(&u("https://me:pw@cloud.example.org/x"));
        assert_eq!(c.status, Status::Warn);
        assert!(!c.to_string().contains("pw"), "{c}");
    }

    /// Issue 24: `is_loopback` was written twice and disagreed:
    /// `http://cloud.localhost` was warned about at start but passed doctor.
    /// The start-up warning and doctor now ask one rule.
    #[test]
    fn the_start_up_warning_and_doctor_agree_on_plain_http() {
        let spec = crate::catalogue::find(crate::settings::keys::URL).unwrap();
        for url in [
            "http://cloud.localhost/x",
            "http://localhost.example.org/x",
            "http://LOCALHOST:8080/x",
            "http://127.0.0.2/x",
            "http://[::1]:80/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://10.0.0.1/x",
            "https://cloud.example.org/x",
        ] {
            let mut warnings = Vec::new();
            let parsed = crate::catalogue::parse_value(spec, url, &mut warnings).unwrap();
            let crate::settings::values::Value::Url(parsed) = parsed else {
                panic!("{url}: not a URL value")
            };
            let doctor_warns = url_shape(&parsed).status == Status::Warn;
            assert_eq!(!warnings.is_empty(), doctor_warns, "{url}: {warnings:?}");
        }
        assert_eq!(
            url_shape(&reqwest::Url::parse("http://cloud.localhost/x").unwrap()).status,
            Status::Warn,
            "only this machine's own names and addresses count as loopback"
        );
    }

    #[test]
    fn clock_offsets() {
        assert!(clock(1000, 1030).ok());
        assert!(clock(1000, 940).ok());
        let c = clock(1600, 1000);
        assert!(!c.ok() && c.detail.contains("600 s behind"), "{c}");
        let c = clock(1000, 1600);
        assert!(!c.ok() && c.detail.contains("600 s ahead of"), "{c}");
    }

    #[test]
    fn tls_errors_in_plain_words() {
        use rustls::CertificateError as C;
        assert!(matches!(
            classify_tls(&rustls::Error::InvalidCertificate(C::UnknownIssuer)),
            TlsProblem::Untrusted(_)
        ));
        assert!(matches!(
            classify_tls(&rustls::Error::InvalidCertificate(C::NotValidForName)),
            TlsProblem::WrongName(_)
        ));
        let named = rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("a.example").unwrap(),
            presented: vec![
                "DnsName(\"cloud.example.org\")".into(),
                "IpAddress(192.0.2.1)".into(),
            ],
        });
        assert_eq!(
            classify_tls(&named),
            TlsProblem::WrongName(vec!["cloud.example.org".into(), "192.0.2.1".into()])
        );
        assert!(matches!(
            classify_tls(&rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            )),
            TlsProblem::NotTls(_)
        ));
    }

    #[test]
    fn token_formats_mint_and_verify() {
        let v = Values::from_pairs(&[("url", "http://x/"), ("secret", "k")]).unwrap();
        let c = tokens(&v, "example.org", 1_700_000_000);
        assert_eq!(c.len(), 1);
        assert!(c[0].ok() && c[0].name == "token jsxc", "{}", c[0]);
        let v = Values::from_pairs(&[("url", "http://x/"), ("backend", "json")]).unwrap();
        let c = tokens(&v, "example.org", 1_700_000_000);
        assert!(c[0].ok() && c[0].detail.starts_with("off"), "{}", c[0]);
    }
}
