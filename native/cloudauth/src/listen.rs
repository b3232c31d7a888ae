//! Listening sockets: `--listen PROTO=ADDR` (loopback TCP or a unix socket
//! path) and systemd socket activation (`LISTEN_FDS`, names select the protocol).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;

use thiserror::Error;
use tokio::net::{TcpListener, UnixListener};

use crate::vocab::{ListenerKind, Protocol};

/// Permissions of unix sockets we create: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A loopback TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

/// One `--listen` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// What is served there.
    pub kind: ListenerKind,
    /// Address.
    pub addr: ListenAddr,
}

/// A listener that cannot be set up.
#[derive(Debug, Error)]
pub enum ListenError {
    /// Not `PROTO=ADDR`.
    #[error("--listen {0:?}: expected PROTO=ADDR, e.g. ejabberd=127.0.0.1:23662 or saslauthd=/run/cloudauth/mux")]
    Syntax(String),
    /// Unknown protocol name.
    #[error("--listen {0:?}: unknown protocol")]
    Protocol(String),
    /// Not a loopback address: these protocols carry passwords unauthenticated and unencrypted.
    #[error(
        "--listen {0}: only loopback addresses (127.0.0.0/8, ::1) or unix sockets are allowed"
    )]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// What.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// A systemd-passed descriptor is unusable.
    #[error("systemd socket {name:?}: {why}")]
    Systemd {
        /// The descriptor's name.
        name: String,
        /// Why.
        why: String,
    },
}

/// Parses `PROTO=ADDR`.
pub fn parse_spec(text: &str) -> Result<ListenSpec, ListenError> {
    let (proto, addr) = text
        .split_once('=')
        .ok_or_else(|| ListenError::Syntax(text.into()))?;
    let kind = ListenerKind::named(proto).ok_or_else(|| ListenError::Protocol(text.into()))?;
    let addr = addr.trim();
    if addr.starts_with('/') || addr.starts_with("./") {
        return Ok(ListenSpec {
            kind,
            addr: ListenAddr::Unix(PathBuf::from(addr)),
        });
    }
    let sa: SocketAddr = addr.parse().map_err(|_| ListenError::Syntax(text.into()))?;
    if !sa.ip().is_loopback() {
        return Err(ListenError::NotLoopback(sa));
    }
    Ok(ListenSpec {
        kind,
        addr: ListenAddr::Tcp(sa),
    })
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket.
    Unix(UnixListener),
}

impl Listener {
    /// A printable local address.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "unix".into()),
        }
    }
}

/// Binds one spec. Needs a runtime. A stale unix socket file (nobody
/// listening) is replaced; the new one gets [`SOCKET_MODE`].
pub fn bind(spec: &ListenSpec) -> Result<Listener, ListenError> {
    match &spec.addr {
        ListenAddr::Tcp(sa) => {
            let bind_err = |source| ListenError::Bind {
                addr: sa.to_string(),
                source,
            };
            let std = std::net::TcpListener::bind(sa).map_err(bind_err)?;
            std.set_nonblocking(true).map_err(bind_err)?;
            TcpListener::from_std(std)
                .map(Listener::Tcp)
                .map_err(bind_err)
        }
        ListenAddr::Unix(path) => {
            let bind_err = |source| ListenError::Bind {
                addr: path.display().to_string(),
                source,
            };
            if let Ok(meta) = fs::symlink_metadata(path) {
                let in_use = std::os::unix::net::UnixStream::connect(path).is_ok();
                if meta.file_type().is_socket() && !in_use {
                    fs::remove_file(path).map_err(bind_err)?;
                }
            }
            let l = UnixListener::bind(path).map_err(bind_err)?;
            fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE)).map_err(bind_err)?;
            Ok(Listener::Unix(l))
        }
    }
}

/// Takes the sockets systemd passed (`LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`); each descriptor's name selects its protocol (a name
/// in the registry, or `metrics`). The variables
/// are removed so that children do not inherit them. Needs a runtime.
pub fn from_systemd() -> Result<Vec<(ListenerKind, Listener)>, ListenError> {
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !pid_matches || count <= 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for i in 0..count {
        let name = names.get(i as usize).cloned().unwrap_or_default();
        let kind = ListenerKind::named(&name).ok_or_else(|| ListenError::Systemd {
            name: name.clone(),
            why: format!("set FileDescriptorName= to {}", Protocol::names()),
        })?;
        // SAFETY: systemd passes descriptors 3..3+LISTEN_FDS to this process
        // (LISTEN_PID matched), and nothing else in the process owns them.
        let fd = unsafe { OwnedFd::from_raw_fd(3 + i) };
        out.push((kind, adopt(fd, &name)?));
    }
    Ok(out)
}

fn adopt(fd: OwnedFd, name: &str) -> Result<Listener, ListenError> {
    let err = |e: io::Error| ListenError::Systemd {
        name: name.to_string(),
        why: e.to_string(),
    };
    let tcp = std::net::TcpListener::from(fd.try_clone().map_err(err)?);
    if tcp.local_addr().is_ok() {
        drop(fd);
        tcp.set_nonblocking(true).map_err(err)?;
        return TcpListener::from_std(tcp).map(Listener::Tcp).map_err(err);
    }
    drop(tcp); // a duplicate of `fd`
    let unix = std::os::unix::net::UnixListener::from(fd);
    unix.local_addr().map_err(err)?;
    unix.set_nonblocking(true).map_err(err)?;
    UnixListener::from_std(unix)
        .map(Listener::Unix)
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("ejabberd=127.0.0.1:23662").unwrap(),
            ListenSpec {
                kind: ListenerKind::Auth(Protocol::named("ejabberd").unwrap()),
                addr: ListenAddr::Tcp("127.0.0.1:23662".parse().unwrap())
            }
        );
        assert_eq!(
            parse_spec("saslauthd=/run/cloudauth/mux").unwrap().addr,
            ListenAddr::Unix(PathBuf::from("/run/cloudauth/mux"))
        );
        assert_eq!(
            parse_spec("prosody=[::1]:5000").unwrap().kind,
            ListenerKind::Auth(Protocol::named("generic").unwrap())
        );
        assert_eq!(
            parse_spec("metrics=127.0.0.1:9").unwrap().kind,
            ListenerKind::Metrics
        );
        assert!(matches!(
            parse_spec("postfix=0.0.0.0:1"),
            Err(ListenError::NotLoopback(_))
        ));
        assert!(matches!(
            parse_spec("xmpp=127.0.0.1:1"),
            Err(ListenError::Protocol(_))
        ));
        assert!(matches!(
            parse_spec("127.0.0.1:1"),
            Err(ListenError::Syntax(_))
        ));
        assert!(matches!(
            parse_spec("ejabberd=localhost"),
            Err(ListenError::Syntax(_))
        ));
    }
}
