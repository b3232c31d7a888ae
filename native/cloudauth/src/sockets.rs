//! Socket mode: every listener on one async runtime, one task per
//! connection, a bound on open connections per listener and per peer (its
//! address on TCP, the connecting socket's owner on loopback TCP, its user
//! id on a unix socket; when full, the connection idle longest makes room; accepting
//! pauses only while every connection has a request in flight), graceful
//! shutdown on SIGTERM/SIGINT (requests already read are answered), and log
//! reopening on SIGHUP.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::handler::Handler;
use crate::listen::Listener;
use crate::monitor::{serve_scrape, Closed};
use crate::serve::{serve, Activity, End, Watch};
use crate::vocab::ListenerKind;

pub use crate::vocab::SocketLimits as Limits;

/// What every connection of every listener shares.
#[derive(Clone)]
struct Shared {
    handler: Arc<Handler>,
    stop: watch::Receiver<bool>,
    connections: TaskTracker,
    limits: Limits,
}

/// Serves all `listeners` until SIGTERM or SIGINT, then drains for at most
/// `drain`.
pub async fn run(
    listeners: Vec<(ListenerKind, Listener)>,
    handler: Arc<Handler>,
    drain: Duration,
    limits: Limits,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections = TaskTracker::new();
    let shared = Shared {
        handler,
        stop: stop_rx,
        connections: connections.clone(),
        limits,
    };
    let mut acceptors = Vec::new();
    for (kind, listener) in listeners {
        info!("listening for {kind:?} on {}", listener.describe());
        let slots = Arc::new(Slots::new(limits.per_listener, limits.per_peer));
        acceptors.push(tokio::spawn(accept_loop(
            kind,
            listener,
            shared.clone(),
            slots,
        )));
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    let _ = stop_tx.send(true);
    for a in acceptors {
        let _ = a.await;
    }
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        warn!("connections still busy after {drain:?}; exiting anyway");
    }
    info!("shut down");
    Ok(())
}

/// Who a connection's share of a listener is counted for: on TCP the
/// peer's address; on loopback TCP and on a unix socket the user owning
/// the connecting socket (every local user may connect to loopback TCP,
/// from any loopback address; only the socket's group to a unix socket,
/// whose services, ejabberd and Prosody, each run as their own user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    Address(IpAddr),
    User(u32),
}

/// One open connection in a listener's table.
struct Entry {
    peer: Option<Peer>,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Entry>,
    per_peer: HashMap<Peer, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.open.remove(&id)?;
        if let Some(p) = e.peer {
            if let Some(n) = self.per_peer.get_mut(&p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_peer.remove(&p);
                }
            }
        }
        Some(e)
    }

    /// The connection idle longest among those `from` accepts and with no
    /// request in flight.
    fn idlest(&self, from: impl Fn(&Entry) -> bool) -> Option<u64> {
        self.open
            .iter()
            .filter(|(_, e)| from(e))
            .filter_map(|(id, e)| e.activity.idle_for().map(|d| (d, *id)))
            .max()
            .map(|(_, id)| id)
    }

    fn evict(&mut self, id: u64) {
        if let Some(e) = self.remove(id) {
            e.activity.evict();
        }
    }
}

/// The open connections of one listener.
struct Slots {
    max: usize,
    per_peer: usize,
    table: Mutex<Table>,
    freed: Notify,
}

/// Whether a new connection may be served.
enum Admission {
    /// Yes (after closing `closed` connections to make room).
    Admitted(Slot, Vec<Closed>),
    /// The peer has its share and every one of its connections is busy.
    PeerFull,
    /// Every slot holds a connection with a request in flight: wait.
    Full,
}

/// A connection's place in the table, given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.slots.table.lock() {
            t.remove(self.id);
        }
        self.slots.freed.notify_one();
    }
}

impl Slots {
    fn new(max: usize, per_peer: usize) -> Self {
        Slots {
            max: max.max(1),
            per_peer,
            table: Mutex::default(),
            freed: Notify::new(),
        }
    }

    /// Makes room for a connection from `peer`: past the peer's share, the
    /// peer's connection idle longest is closed; past the listener's, the
    /// listener's. A connection with a request in flight is never closed.
    fn admit(self: &Arc<Self>, peer: Option<Peer>) -> Admission {
        let Ok(mut t) = self.table.lock() else {
            return Admission::Full;
        };
        let mut closed = Vec::new();
        if let (Some(p), true) = (peer, self.per_peer > 0) {
            if t.per_peer.get(&p).copied().unwrap_or(0) >= self.per_peer {
                match t.idlest(|e| e.peer == Some(p)) {
                    Some(id) => {
                        t.evict(id);
                        closed.push(Closed::PeerLimit);
                    }
                    None => return Admission::PeerFull,
                }
            }
        }
        if t.open.len() >= self.max {
            match t.idlest(|_| true) {
                Some(id) => {
                    t.evict(id);
                    closed.push(Closed::Evicted);
                }
                None => return Admission::Full,
            }
        }
        let id = t.next;
        t.next += 1;
        let activity = Arc::new(Activity::default());
        t.open.insert(
            id,
            Entry {
                peer,
                activity: Arc::clone(&activity),
            },
        );
        if let Some(p) = peer {
            *t.per_peer.entry(p).or_default() += 1;
        }
        Admission::Admitted(
            Slot {
                slots: Arc::clone(self),
                id,
                activity,
            },
            closed,
        )
    }
}

/// At most one warning per this interval about closing connections for
/// room, so that a flood cannot flood the log.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

async fn accept_loop(kind: ListenerKind, listener: Listener, shared: Shared, slots: Arc<Slots>) {
    let mut stop = shared.stop.clone();
    let monitor = Arc::clone(shared.handler.monitor());
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (reader, writer, peer, key) = match accepted {
            Ok(parts) => parts,
            Err(e) => {
                warn!("accept on {} failed: {e}", listener.describe());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = loop {
            match slots.admit(key) {
                Admission::Admitted(slot, closed) => {
                    if !closed.is_empty()
                        && warned.is_none_or(|w| w.elapsed() >= FULL_WARNING_EVERY)
                    {
                        warned = Some(Instant::now());
                        warn!(
                            "{kind:?} listener {}: connections full (at most {} per listener, {} per peer); \
                             closing the ones idle longest for new ones (said once a minute)",
                            listener.describe(),
                            slots.max,
                            slots.per_peer
                        );
                    }
                    for c in closed {
                        monitor.closed(kind, c);
                    }
                    break Some(slot);
                }
                Admission::PeerFull => {
                    debug!(
                        "{kind:?} connection from {peer} refused: it has {} busy connections",
                        slots.per_peer
                    );
                    monitor.closed(kind, Closed::PeerLimit);
                    break None;
                }
                // Every connection busy: each ends its request within the
                // decision's deadline and the write timeout.
                Admission::Full => tokio::select! {
                    _ = slots.freed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                },
            }
        };
        let Some(slot) = slot else {
            continue; // dropping the streams closes the connection
        };
        let (h, s) = (Arc::clone(&shared.handler), shared.stop.clone());
        let limits = shared.limits;
        let monitor = Arc::clone(&monitor);
        shared.connections.spawn(async move {
            let _open = monitor.connection(kind);
            debug!("{kind:?} connection from {peer}");
            let watch = Watch {
                idle: limits.idle,
                write: limits.write,
                activity: Arc::clone(&slot.activity),
            };
            let served = match kind {
                ListenerKind::Auth(protocol) => {
                    serve(protocol, reader, writer, h, s, Some(watch)).await
                }
                ListenerKind::Metrics => serve_scrape(reader, writer, h.monitor()).await,
            };
            match served {
                Ok(End::Unread) => {
                    monitor.closed(kind, Closed::Unread);
                    warn!(
                        "{kind:?} connection from {peer}: a reply was not read for {:?}; closed",
                        limits.write
                    );
                }
                Ok(end) => debug!("{kind:?} connection from {peer} ended ({end:?})"),
                Err(e) => debug!("{kind:?} connection from {peer} failed: {e}"),
            }
            drop(slot);
        });
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// A new connection: its halves, a printable peer and what the per-peer
/// limit counts ([`Peer`]; IPv4-mapped IPv6 as IPv4).
async fn accept(listener: &Listener) -> io::Result<(Reader, Writer, String, Option<Peer>)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            let ours = s.local_addr()?;
            let (r, w) = s.into_split();
            let ip = peer.ip().to_canonical();
            if !ip.is_loopback() {
                return Ok((
                    Box::new(r),
                    Box::new(w),
                    peer.to_string(),
                    Some(Peer::Address(ip)),
                ));
            }
            // Any local user may connect from any loopback address: the
            // share is the connecting socket's owner's, as on a unix socket.
            let owner = tokio::task::spawn_blocking(move || loopback_owner(ours, peer))
                .await
                .ok()
                .flatten();
            let (name, key) = match owner {
                Some(uid) => (format!("{peer} (uid {uid})"), Peer::User(uid)),
                None => (peer.to_string(), Peer::Address(ip)),
            };
            Ok((Box::new(r), Box::new(w), name, Some(key)))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            // SO_PEERCRED: the connecting process's user, as the kernel saw it.
            let uid = s.peer_cred().ok().map(|c| c.uid());
            let (r, w) = s.into_split();
            let name = match uid {
                Some(u) => format!("unix socket, uid {u}"),
                None => "unix socket".to_string(),
            };
            Ok((Box::new(r), Box::new(w), name, uid.map(Peer::User)))
        }
    }
}

/// The user owning the other end of a loopback TCP connection (`theirs`
/// connected to `ours`), as the kernel tells it: one exact lookup of the
/// client's socket (local address `theirs`, remote `ours`) over sock_diag
/// netlink (`SOCK_DIAG_BY_FAMILY`, as `ss` asks), whose cost does not grow
/// with the number of open connections (reading `/proc/net/tcp` does: a
/// flood of 5,000 connections made each accept slow). `None` when the
/// kernel has no such socket (the client is gone already) or cannot be asked.
pub(crate) fn loopback_owner(ours: SocketAddr, theirs: SocketAddr) -> Option<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    /// `INET_DIAG_NOCOOKIE`: look the socket up by its addresses alone.
    const NO_COOKIE: u32 = !0;
    /// Where `inet_diag_msg.idiag_uid` is in a reply (after the 16-byte
    /// netlink header: family, state, timer, retrans, the 48-byte socket
    /// id, expires, rqueue, wqueue).
    const UID_AT: usize = 16 + 4 + 48 + 12;

    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (ours, theirs) = (canonical(ours), canonical(theirs));
    let (family, src, dst) = match (theirs.ip(), ours.ip()) {
        (IpAddr::V4(t), IpAddr::V4(o)) => {
            let wide = |a: std::net::Ipv4Addr| {
                let mut w = [0u8; 16];
                w[..4].copy_from_slice(&a.octets());
                w
            };
            (libc::AF_INET, wide(t), wide(o))
        }
        (IpAddr::V6(t), IpAddr::V6(o)) => (libc::AF_INET6, t.octets(), o.octets()),
        _ => return None,
    };
    // nlmsghdr, then inet_diag_req_v2 (family, protocol, ext, pad, states, id).
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every TCP state
    req.extend_from_slice(&theirs.port().to_be_bytes());
    req.extend_from_slice(&ours.port().to_be_bytes());
    req.extend_from_slice(&src);
    req.extend_from_slice(&dst);
    req.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    req.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    req.extend_from_slice(&NO_COOKIE.to_ne_bytes());

    // SAFETY: plain system calls on a descriptor this function owns (closed
    // by `OwnedFd`), with buffers whose lengths are passed alongside.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let wait = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(wait).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            std::ptr::addr_of!(kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent != req.len() as isize {
            return None;
        }
        let mut reply = [0u8; 1024];
        let got = libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0);
        let reply = reply.get(..usize::try_from(got).ok()?)?;
        let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
        if kind != SOCK_DIAG_BY_FAMILY {
            return None; // NLMSG_ERROR: no such socket
        }
        Some(u32::from_ne_bytes(
            reply.get(UID_AT..UID_AT + 4)?.try_into().ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owner of this very process's loopback connection is this user.
    #[test]
    fn the_owner_of_a_loopback_connection_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, theirs) = listener.accept().unwrap();
        let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        assert_eq!(
            loopback_owner(server.local_addr().unwrap(), theirs),
            uid.ok()
        );
        drop(client);
    }
}
