//! Test harness: the built relay as a child process, and fake cloudauth
//! servers (unix or TCP) whose behaviour per connection is a closure.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub const YES: [u8; 4] = [0, 2, 0, 1];
pub const NO: [u8; 4] = [0, 2, 0, 0];
pub const TEMPFAIL: [u8; 4] = [0, 2, 0, 2];

/// Longest wait for anything that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A frame: 2-byte big-endian length and the payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// The fake server's standard decision: payloads ending in `yes` get 1,
/// in `tmp` get 2, everything else 0.
pub fn decide(payload: &[u8]) -> [u8; 4] {
    if payload.ends_with(b"yes") {
        YES
    } else if payload.ends_with(b"tmp") {
        TEMPFAIL
    } else {
        NO
    }
}

// --- the relay ------------------------------------------------------------

/// The relay binary, running.
pub struct Relay {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// How a relay run ended.
pub struct Finished {
    pub status: ExitStatus,
    /// Stdout bytes never taken as replies.
    pub extra_stdout: Vec<u8>,
    pub stderr: String,
}

impl Relay {
    /// Starts the relay with these arguments.
    pub fn start(args: &[&str]) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloudauth-connect"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        Relay {
            stdin: child.stdin.take(),
            child,
            stdout: rx,
            pending: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Writes raw bytes to the relay's stdin.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Writes one request frame.
    pub fn send(&mut self, payload: &[u8]) {
        self.send_raw(&frame(payload));
    }

    /// The next 4 stdout bytes, if they come within `within`.
    pub fn reply_within(&mut self, within: Duration) -> Option<[u8; 4]> {
        let until = Instant::now() + within;
        while self.pending.len() < 4 {
            let left = until.checked_duration_since(Instant::now())?;
            match self.stdout.recv_timeout(left) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(_) => return None,
            }
        }
        let r: [u8; 4] = self.pending[..4].try_into().unwrap();
        self.pending.drain(..4);
        Some(r)
    }

    /// The next reply; panics after [`PATIENCE`].
    pub fn reply(&mut self) -> [u8; 4] {
        self.reply_within(PATIENCE)
            .expect("no reply from the relay")
    }

    /// Sends a request and returns its reply and how long it took.
    pub fn ask_timed(&mut self, payload: &[u8]) -> ([u8; 4], Duration) {
        let t0 = Instant::now();
        self.send(payload);
        let r = self.reply();
        (r, t0.elapsed())
    }

    /// Sends a request and returns its reply.
    pub fn ask(&mut self, payload: &[u8]) -> [u8; 4] {
        self.ask_timed(payload).0
    }

    /// Closes stdin and waits for the exit.
    pub fn finish(mut self) -> Finished {
        drop(self.stdin.take());
        let until = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("the relay did not exit after stdin closed");
            }
            thread::sleep(Duration::from_millis(10));
        };
        while let Ok(chunk) = self.stdout.recv_timeout(Duration::from_secs(2)) {
            self.pending.extend(chunk);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Finished {
            status,
            extra_stdout: std::mem::take(&mut self.pending),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Finished {
    /// Exit 0, nothing on stdout but the replies taken, no `secret` on stderr.
    pub fn assert_clean_exit(&self, secret: &str) {
        assert_eq!(self.status.code(), Some(0), "stderr: {}", self.stderr);
        assert!(
            self.extra_stdout.is_empty(),
            "extra stdout {:?}",
            self.extra_stdout
        );
        assert!(
            !self.stderr.contains(secret),
            "stderr leaks: {}",
            self.stderr
        );
    }
}

// --- fake servers -----------------------------------------------------------

/// One accepted connection of a fake server.
pub struct Conn {
    /// 0 for the first connection the server accepted, and so on.
    pub index: usize,
    stream: ServerStream,
    log: Log,
}

enum ServerStream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// Every request a server read: (connection index, payload).
pub type Log = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

impl Conn {
    /// The next request payload (logged), or `None` at EOF, error or idle timeout.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 2];
        self.read_exact(&mut len).ok()?;
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.read_exact(&mut payload).ok()?;
        self.log.lock().unwrap().push((self.index, payload.clone()));
        Some(payload)
    }

    /// Writes bytes, ignoring errors.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.write_all(bytes);
    }

    /// Closes the connection when no request arrives for `idle`.
    pub fn close_when_idle(&mut self, idle: Duration) {
        match &self.stream {
            ServerStream::Unix(s) => s.set_read_timeout(Some(idle)).unwrap(),
            ServerStream::Tcp(s) => s.set_read_timeout(Some(idle)).unwrap(),
        }
    }

    /// Answers every request with [`decide`] until the connection ends.
    pub fn serve(&mut self) {
        while let Some(p) = self.read_frame() {
            self.send(&decide(&p));
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            ServerStream::Unix(s) => s.read(buf),
            ServerStream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            ServerStream::Unix(s) => s.write(buf),
            ServerStream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Handler = Arc<dyn Fn(&mut Conn) + Send + Sync>;

/// A fake cloudauth: each connection runs the handler on its own thread.
pub struct Server {
    /// The relay's ADDRESS argument.
    pub addr: String,
    log: Log,
    accepted: Arc<AtomicUsize>,
    dir: Option<PathBuf>,
}

/// A fresh private directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "cloudauth-connect-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    d
}

impl Server {
    /// Listens on a fresh unix socket.
    pub fn unix(handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Server {
        let dir = temp_dir("srv");
        let mut s = Server::unix_at(&dir.join("ejabberd.sock"), handler);
        s.dir = Some(dir);
        s
    }

    /// Listens on a unix socket at `path`.
    pub fn unix_at(path: &Path, handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Server {
        let listener = UnixListener::bind(path).unwrap();
        let s = Server::new(path.display().to_string(), None);
        let h: Handler = Arc::new(handler);
        let (log, accepted) = (s.log.clone(), s.accepted.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                spawn_conn(ServerStream::Unix(stream), &h, &log, &accepted);
            }
        });
        s
    }

    /// Listens on 127.0.0.1, a free port.
    pub fn tcp(handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = Server::new(listener.local_addr().unwrap().to_string(), None);
        let h: Handler = Arc::new(handler);
        let (log, accepted) = (s.log.clone(), s.accepted.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                spawn_conn(ServerStream::Tcp(stream), &h, &log, &accepted);
            }
        });
        s
    }

    fn new(addr: String, dir: Option<PathBuf>) -> Server {
        Server {
            addr,
            log: Arc::default(),
            accepted: Arc::default(),
            dir,
        }
    }

    /// Requests read so far: (connection index, payload).
    pub fn requests(&self) -> Vec<(usize, Vec<u8>)> {
        self.log.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn spawn_conn(stream: ServerStream, h: &Handler, log: &Log, accepted: &Arc<AtomicUsize>) {
    let index = accepted.fetch_add(1, Ordering::SeqCst);
    let mut conn = Conn {
        index,
        stream,
        log: log.clone(),
    };
    let h = h.clone();
    thread::spawn(move || h(&mut conn));
}

/// A TCP address where nobody listens (a port just released).
pub fn dead_tcp_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
