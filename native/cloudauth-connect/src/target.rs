//! Where cloudauth listens (a unix socket path or a loopback TCP address),
//! and connecting there within a deadline.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{self, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Stack of the helper thread that makes a unix connect interruptible.
const CONNECT_THREAD_STACK: usize = 64 * 1024;

/// The socket to relay to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix socket path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

/// An ADDRESS that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Neither a path nor `IP:PORT`.
    Syntax(String),
    /// TCP to another host: requests carry passwords in clear text.
    NotLoopback(SocketAddr),
    /// A path too long (or otherwise unfit) for a unix socket address.
    BadPath(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Syntax(a) => write!(
                f,
                "ADDRESS {a:?}: expected a socket path (containing /) or a loopback IP:PORT"
            ),
            TargetError::NotLoopback(a) => write!(
                f,
                "ADDRESS {a}: only loopback TCP addresses (127.0.0.0/8, [::1]); requests carry passwords in clear text"
            ),
            TargetError::BadPath(a) => write!(f, "ADDRESS {a:?}: not usable as a unix socket path"),
        }
    }
}

impl std::error::Error for TargetError {}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl Target {
    /// Parses ADDRESS: `IP:PORT` (loopback only) or a path containing `/`.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if !addr.ip().is_loopback() {
                return Err(TargetError::NotLoopback(addr));
            }
            return Ok(Target::Tcp(addr));
        }
        if !text.contains('/') {
            return Err(TargetError::Syntax(text.to_string()));
        }
        net::SocketAddr::from_pathname(text).map_err(|_| TargetError::BadPath(text.to_string()))?;
        Ok(Target::Unix(PathBuf::from(text)))
    }
}

/// Opens connections to a [`Target`]; remembers a unix connect that is
/// still blocked so that at most one helper thread ever waits.
#[derive(Debug)]
pub struct Connector {
    target: Target,
    /// The result of a unix connect that outlived its request's deadline.
    pending: Option<mpsc::Receiver<io::Result<UnixStream>>>,
}

impl Connector {
    /// A connector that has not connected yet.
    pub fn new(target: Target) -> Self {
        Connector {
            target,
            pending: None,
        }
    }

    /// Connects, giving up at `deadline` (error kind `TimedOut`).
    pub fn connect(&mut self, deadline: Instant) -> io::Result<Stream> {
        let left = time_left(deadline)?;
        let path = match &self.target {
            Target::Tcp(addr) => {
                let s = TcpStream::connect_timeout(addr, left)?;
                s.set_nodelay(true)?;
                return Ok(Stream::Tcp(s));
            }
            Target::Unix(path) => path,
        };
        // A unix connect blocks without limit while the server's accept
        // queue is full (a stuck server), and std has no connect timeout
        // for unix sockets: connect on a small helper thread and stop
        // waiting at the deadline. A connect still blocked is waited for
        // again by the next request instead of starting another one (its
        // late success is used; its late failure is stale and not reported);
        // the thread ends when its connect does, or with the process.
        let result = match self.pending.take().map(|rx| (rx.try_recv(), rx)) {
            Some((Ok(Ok(stream)), _)) => return Ok(Stream::Unix(stream)),
            Some((Err(mpsc::TryRecvError::Empty), rx)) => rx,
            _ => spawn_unix_connect(path.clone())?,
        };
        match result.recv_timeout(left) {
            Ok(r) => r.map(Stream::Unix),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.pending = Some(result);
                Err(timed_out())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the connecting thread failed"))
            }
        }
    }
}

/// Starts connecting to `path` on a helper thread; the result arrives on the receiver.
fn spawn_unix_connect(path: PathBuf) -> io::Result<mpsc::Receiver<io::Result<UnixStream>>> {
    let (tx, rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("connect".into())
        .stack_size(CONNECT_THREAD_STACK)
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(path));
        })?;
    Ok(rx)
}

/// Time until `deadline`, or a `TimedOut` error when it has passed.
pub fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(timed_out())
    } else {
        Ok(left)
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// A connection to cloudauth.
#[derive(Debug)]
pub enum Stream {
    /// Over a unix socket.
    Unix(UnixStream),
    /// Over loopback TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// Bounds the next reads by `deadline` (`TimedOut` once it has passed).
    pub fn limit_reads(&self, deadline: Instant) -> io::Result<()> {
        let left = Some(time_left(deadline)?);
        match self {
            Stream::Unix(s) => s.set_read_timeout(left),
            Stream::Tcp(s) => s.set_read_timeout(left),
        }
    }

    /// Bounds the next writes by `deadline` (`TimedOut` once it has passed).
    pub fn limit_writes(&self, deadline: Instant) -> io::Result<()> {
        let left = Some(time_left(deadline)?);
        match self {
            Stream::Unix(s) => s.set_write_timeout(left),
            Stream::Tcp(s) => s.set_write_timeout(left),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            Target::parse("127.0.0.1:23662").unwrap(),
            Target::Tcp("127.0.0.1:23662".parse().unwrap())
        );
        assert_eq!(
            Target::parse("[::1]:5").unwrap(),
            Target::Tcp("[::1]:5".parse().unwrap())
        );
        assert_eq!(
            Target::parse("/run/x.sock").unwrap(),
            Target::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Target::parse("./x.sock").unwrap(),
            Target::Unix("./x.sock".into())
        );
    }

    #[test]
    fn rejects_addresses() {
        assert!(matches!(
            Target::parse("192.168.1.1:5"),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::parse("localhost:5"),
            Err(TargetError::Syntax(_))
        ));
        assert!(matches!(
            Target::parse("x.sock"),
            Err(TargetError::Syntax(_))
        ));
        let long = format!("/{}", "a".repeat(200));
        assert!(matches!(Target::parse(&long), Err(TargetError::BadPath(_))));
    }

    #[test]
    fn passed_deadline_times_out() {
        let past = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let mut c = Connector::new(Target::parse("/nonexistent/x.sock").unwrap());
        let e = c.connect(past).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
