//! `storm`: login storms, one row per call, for `bench/storm/run.sh`.
//!
//! N users, each with its own right password, all start logging in within a
//! few seconds (evenly spread), as after an XMPP server restart. The test
//! backend serves 8 password checks at once, 400 ms each (a Nextcloud with 8
//! PHP workers), so the physical limit of a storm is N × 0.4 s / 8 for the
//! users that need the backend.
//!
//! * `storm users` writes the test backend's users file (`u0`.. with
//!   passwords `pw-0-storm`..).
//! * `storm port` drives extauth programs over pipes: strictly one request
//!   at a time per process (what ejabberd 23.01's extauth and xcauth do), or
//!   pipelined (`--pipeline`: written at their moments, answers read in order).
//! * `storm vm` runs the storm inside a sandbox ejabberd
//!   (`bench/ejabberd/cloudauth_storm.erl`, through `ejabberd-sandbox eval`).
//! * `storm report` prints the table and the goals and writes the JSON.
//! * `storm proxy` relays TCP to the backend and counts the requests the
//!   client side has there at once (sent, not yet answered): the backend's
//!   own `peak_in_flight` counts only what its 8 workers took, so it cannot
//!   show a client sending more.
//!
//! Each row is appended to `--out` as one JSON line: the answers (yes, no,
//! could not find out, unanswered), the time until the last answer, the
//! latencies, the backend's request count and peak concurrency, and the
//! peak memory. Every row has a deadline; nothing waits longer.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::time::Instant;

use cloudauth_bench::driver;
use cloudauth_bench::stats::{peak_rss_kib, percentile};

/// The XMPP domain of the port rows (the test backend ignores it).
const DOMAIN: &str = "localhost";

fn user(i: usize) -> String {
    format!("u{i}")
}

/// User i's password; the Erlang side (cloudauth_storm.erl) makes the same.
fn password(i: usize) -> String {
    format!("pw-{i}-storm")
}

#[derive(Debug, Parser)]
#[command(
    name = "storm",
    about = "Login storms: extauth programs, cloudauth's socket mode, the in-VM module"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Writes the test backend's users file: u0..u{N-1}, each its own password.
    Users {
        #[arg(long)]
        users: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// One row: extauth processes over pipes.
    Port(PortArgs),
    /// One row: inside a running sandbox ejabberd.
    Vm(VmArgs),
    /// The table, the goals and the JSON document, from the rows.
    Report(ReportArgs),
    /// A TCP relay in front of the backend that counts requests at it.
    Proxy(ProxyArgs),
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// The backend's address (host:port).
    #[arg(long)]
    to: String,
    /// The relay ends after this many seconds, whatever happens.
    #[arg(long, default_value_t = 14_400)]
    max_seconds: u64,
}

#[derive(Debug, Args)]
struct RowArgs {
    /// Row id (xcauth, socket, vm-warm4, ...).
    #[arg(long)]
    row: String,
    /// What the row is, in words.
    #[arg(long)]
    label: String,
    /// xcauth-style, xcauth, socket or vm.
    #[arg(long)]
    mode: String,
    /// cold (no cache), fill (cold, filling a cache database) or warm
    /// (restarted on a database a fill left).
    #[arg(long, default_value = "cold")]
    kind: String,
    /// bcrypt cost of the cache database's entries (fill and warm rows).
    #[arg(long)]
    cost: Option<u32>,
    /// Logins.
    #[arg(long)]
    users: usize,
    /// All logins start within this many seconds, evenly spread.
    #[arg(long, default_value_t = 5.0)]
    spread_s: f64,
    /// Logins not answered this many seconds after the first started are
    /// counted as unanswered and the row ends.
    #[arg(long)]
    deadline_s: f64,
    /// Requests in flight per backend host the row was given (for the table).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Waiting requests per backend host the row was given (for the table).
    #[arg(long)]
    queue: Option<usize>,
    /// The test backend's control server (its stats are reset and read).
    #[arg(long)]
    control: String,
    /// The control address of the `storm proxy` in front of the backend
    /// (its peak is reset and read).
    #[arg(long)]
    proxy_control: Option<String>,
    /// The row is appended to this file, one JSON object per line.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct PortArgs {
    #[command(flatten)]
    row: RowArgs,
    /// Processes (ejabberd's extauth_pool_size).
    #[arg(long, default_value_t = 2)]
    procs: usize,
    /// Writes requests at their moments without waiting for answers, reads
    /// the answers in order; default: one request at a time per process.
    #[arg(long)]
    pipeline: bool,
    /// Another process of the row whose peak RSS counts (socket mode's
    /// cloudauth), as NAME=PID.
    #[arg(long = "rss-pid")]
    rss_pids: Vec<String>,
    /// Where the processes' stderr goes.
    #[arg(long)]
    stderr_log: PathBuf,
    /// The extauth program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct VmArgs {
    #[command(flatten)]
    row: RowArgs,
    /// test/lib/ejabberd-sandbox
    #[arg(long)]
    sandbox: PathBuf,
    /// The running sandbox's directory (cloudauth_storm.beam in its ebin/).
    #[arg(long)]
    dir: PathBuf,
    /// The vhost with auth_method: cloud.
    #[arg(long, default_value = "localhost")]
    host: String,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The rows (JSON lines).
    #[arg(long)]
    rows: PathBuf,
    /// The JSON document written.
    #[arg(long)]
    json: PathBuf,
    /// The backend's time per password check.
    #[arg(long, default_value_t = 400)]
    delay_ms: u64,
    /// The backend's workers (password checks at once).
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// The storm's size (the cold and warm rows'; a larger memory row may differ).
    #[arg(long)]
    users: usize,
    /// The spread of the logins' starts.
    #[arg(long, default_value_t = 5.0)]
    spread_s: f64,
    /// The command that made the run, for the JSON.
    #[arg(long, default_value = "")]
    command: String,
}

// --- answers ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    /// "Could not find out" (extauth 00 02 00 02; in the VM the auth
    /// module's backend-trouble warning).
    TempFail,
    /// Not an answer of the protocol.
    Invalid,
}

impl Answer {
    fn of_reply(r: [u8; 4]) -> Answer {
        match r {
            [0, 2, 0, 1] => Answer::Yes,
            [0, 2, 0, 0] => Answer::No,
            [0, 2, 0, 2] => Answer::TempFail,
            _ => Answer::Invalid,
        }
    }
}

/// One login: when it started and when and how it was answered, both from
/// the storm's start.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    start: Duration,
    answer: Option<(Answer, Duration)>,
}

/// The moment login `i` of `n` starts.
fn start_of(i: usize, n: usize, spread: Duration) -> Duration {
    spread.mul_f64(i as f64 / n.max(1) as f64)
}

// --- the test backend's control server ------------------------------------------

/// One request to the control server; the body of a 200 answer.
fn control(base: &str, method: &str, path: &str) -> Result<String, String> {
    let addr = base
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| format!("unexpected control address {base:?}"))?;
    let err = |e: std::io::Error| format!("control server {addr}: {e}");
    let mut conn = TcpStream::connect(addr).map_err(err)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .map_err(err)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).map_err(err)?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!("control server: {method} {path}: {answer:?}"));
    }
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

fn backend_stats(base: &str) -> Result<Value, String> {
    let body = control(base, "GET", "/stats")?;
    serde_json::from_str(&body).map_err(|e| format!("stats {body:?}: {e}"))
}

// --- the relay that counts requests at the backend ------------------------------------

/// Requests at the backend: sent by a client, not yet answered.
#[derive(Debug, Default)]
struct Counting {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    requests: AtomicUsize,
}

/// Copies one direction of a relayed connection. Client to backend: the
/// first bytes after an answer start a request (HTTP/1.1 without
/// pipelining, as every client here); backend to client: the first bytes
/// of the answer end it.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    outstanding: Arc<AtomicBool>,
    counting: Arc<Counting>,
    upstream: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upstream {
            if !outstanding.swap(true, Ordering::SeqCst) {
                let now = counting.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                counting.peak.fetch_max(now, Ordering::SeqCst);
                counting.requests.fetch_add(1, Ordering::SeqCst);
            }
        } else if outstanding.swap(false, Ordering::SeqCst) {
            counting.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn proxy(a: &ProxyArgs) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io)?;
    let control = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io)?;
    println!(
        "READY listen={} control={}",
        listener.local_addr().map_err(io)?,
        control.local_addr().map_err(io)?
    );
    std::io::stdout().flush().map_err(io)?;
    let counting = Arc::new(Counting::default());
    let c = Arc::clone(&counting);
    // Control: a line "reset" (peak := in flight now) or "stats", one JSON line back.
    tokio::spawn(async move {
        while let Ok((conn, _)) = control.accept().await {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut line = String::new();
                let mut r = tokio::io::BufReader::new(r);
                if tokio::io::AsyncBufReadExt::read_line(&mut r, &mut line)
                    .await
                    .is_err()
                {
                    return;
                }
                if line.trim() == "reset" {
                    c.peak
                        .store(c.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
                    c.requests.store(0, Ordering::SeqCst);
                }
                let answer = json!({
                    "in_flight": c.in_flight.load(Ordering::SeqCst),
                    "peak": c.peak.load(Ordering::SeqCst),
                    "requests": c.requests.load(Ordering::SeqCst),
                });
                let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    });
    let to = a.to.clone();
    let serve = async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let (to, counting) = (to.clone(), Arc::clone(&counting));
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&to).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let outstanding = Arc::new(AtomicBool::new(false));
                tokio::join!(
                    relay(
                        cr,
                        sw,
                        Arc::clone(&outstanding),
                        Arc::clone(&counting),
                        true
                    ),
                    relay(
                        sr,
                        cw,
                        Arc::clone(&outstanding),
                        Arc::clone(&counting),
                        false
                    ),
                );
                // A request whose answer never came (the client gave up).
                if outstanding.swap(false, Ordering::SeqCst) {
                    counting.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(a.max_seconds), serve).await;
    Ok(())
}

/// One line to the relay's control port; its JSON answer.
fn proxy_control(addr: &str, command: &str) -> Result<Value, String> {
    let err = |e: std::io::Error| format!("proxy control {addr}: {e}");
    let mut conn = TcpStream::connect(addr).map_err(err)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    conn.write_all(format!("{command}\n").as_bytes())
        .map_err(err)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).map_err(err)?;
    serde_json::from_str(answer.trim()).map_err(|e| format!("proxy control {answer:?}: {e}"))
}

// --- watching memory ------------------------------------------------------------------

/// Samples the peak RSS of processes while a row runs.
struct Watch {
    stop: Arc<AtomicBool>,
    pids: Arc<Mutex<Vec<(String, u32)>>>,
    thread: JoinHandle<BTreeMap<String, u64>>,
}

impl Watch {
    fn start() -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let pids: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
        let (s, p) = (Arc::clone(&stop), Arc::clone(&pids));
        let thread = std::thread::spawn(move || {
            let mut rss: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let last = s.load(Ordering::SeqCst);
                {
                    let list = p.lock().map(|l| l.clone()).unwrap_or_default();
                    for (name, pid) in list {
                        // VmHWM only grows; the last reading before the
                        // process ends is its peak.
                        if let Some(k) = peak_rss_kib(pid) {
                            let e = rss.entry(name).or_insert(0);
                            *e = (*e).max(k);
                        }
                    }
                }
                if last {
                    return rss;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Watch { stop, pids, thread }
    }

    fn add_pid(&self, name: String, pid: u32) {
        if let Ok(mut l) = self.pids.lock() {
            l.push((name, pid));
        }
    }

    /// Peak RSS (KiB) per process.
    fn finish(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// --- a row against extauth processes -------------------------------------------------

type Results = Arc<Mutex<Vec<Option<(Answer, Duration)>>>>;

fn record(results: &Results, i: usize, answer: Answer, t0: Instant) {
    if let Ok(mut r) = results.lock() {
        r[i] = Some((answer, t0.elapsed()));
    }
}

/// One request at a time: write, wait for the answer, then the next.
async fn strict(
    mut stdin: ChildStdin,
    mut stdout: ChildStdout,
    mine: Vec<usize>,
    (t0, n, spread): (Instant, usize, Duration),
    results: Results,
) {
    for i in mine {
        tokio::time::sleep_until(t0 + start_of(i, n, spread)).await;
        let payload = format!("auth:{}:{DOMAIN}:{}", user(i), password(i));
        match driver::round_trip(&mut stdin, &mut stdout, payload.as_bytes()).await {
            Ok(reply) => record(&results, i, Answer::of_reply(reply), t0),
            Err(_) => return,
        }
    }
}

/// Requests written at their moments, answers read in order.
async fn pipelined(
    stdin: ChildStdin,
    stdout: ChildStdout,
    mine: Vec<usize>,
    (t0, n, spread): (Instant, usize, Duration),
    results: Results,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = async move {
        let mut stdin = stdin;
        for i in mine {
            tokio::time::sleep_until(t0 + start_of(i, n, spread)).await;
            let payload = format!("auth:{}:{DOMAIN}:{}", user(i), password(i));
            if stdin
                .write_all(&driver::frame(payload.as_bytes()))
                .await
                .is_err()
                || stdin.flush().await.is_err()
                || tx.send(i).is_err()
            {
                break;
            }
        }
        // Kept open until every answer is read.
        stdin
    };
    let reader = async move {
        let mut stdout = stdout;
        while let Some(i) = rx.recv().await {
            let mut reply = [0u8; 4];
            if stdout.read_exact(&mut reply).await.is_err() {
                return;
            }
            record(&results, i, Answer::of_reply(reply), t0);
        }
    };
    let (stdin, ()) = tokio::join!(writer, reader);
    drop(stdin);
}

async fn port_storm(a: &PortArgs, watch: &Watch) -> Result<Vec<Outcome>, String> {
    let n = a.row.users;
    let procs = a.procs.max(1);
    let spread = Duration::from_secs_f64(a.row.spread_s);
    let mut children = Vec::new();
    for p in 0..procs {
        let c = driver::spawn(&a.command, &a.stderr_log)
            .map_err(|e| format!("{}: {e}", a.command[0]))?;
        if let Some(pid) = c.id() {
            watch.add_pid(format!("{}#{p}", short_name(&a.command[0])), pid);
        }
        children.push(c);
    }
    let results: Results = Arc::new(Mutex::new(vec![None; n]));
    // A moment for the tasks to be in place; the processes start meanwhile,
    // as they would right after a restart.
    let t0 = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for (p, c) in children.iter_mut().enumerate() {
        let (Some(stdin), Some(stdout)) = (c.stdin.take(), c.stdout.take()) else {
            return Err("child without pipes".into());
        };
        // ejabberd hands requests to its pool round-robin.
        let mine: Vec<usize> = (p..n).step_by(procs).collect();
        let r = Arc::clone(&results);
        let timing = (t0, n, spread);
        tasks.push(if a.pipeline {
            tokio::spawn(pipelined(stdin, stdout, mine, timing, r))
        } else {
            tokio::spawn(strict(stdin, stdout, mine, timing, r))
        });
    }
    let deadline = t0 + Duration::from_secs_f64(a.row.deadline_s);
    let done = tokio::time::timeout_at(deadline, async {
        for t in &mut tasks {
            let _ = t.await;
        }
    })
    .await;
    if done.is_err() {
        eprintln!(
            "storm: row {}: deadline of {} s reached; the rest counts as unanswered",
            a.row.row, a.row.deadline_s
        );
        for t in &tasks {
            t.abort();
        }
    }
    // Stdin is closed now (tasks ended): the processes exit; else killed.
    for mut c in children {
        if tokio::time::timeout(Duration::from_secs(5), c.wait())
            .await
            .is_err()
        {
            let _ = c.kill().await;
        }
    }
    let results = results.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, answer)| Outcome {
            start: start_of(i, n, spread),
            answer,
        })
        .collect())
}

fn short_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

// --- a row inside ejabberd ------------------------------------------------------------

/// Runs cloudauth_storm:run/1 in the sandbox; its answers and memory figures.
fn vm_storm(a: &VmArgs) -> Result<(Vec<Outcome>, Value), String> {
    let out = a.dir.join("storm-result.json");
    let _ = std::fs::remove_file(&out);
    let ms = |s: f64| (s * 1000.0).round() as u64;
    let expr = format!(
        "cloudauth_storm:run(#{{host => <<\"{}\">>, users => {}, spread_ms => {}, deadline_ms => {}, out => \"{}\"}}).",
        a.host,
        a.row.users,
        ms(a.row.spread_s),
        ms(a.row.deadline_s),
        out.display()
    );
    // The eval waits for the storm; `timeout` bounds it whatever happens.
    let limit = format!("{}", a.row.deadline_s.ceil() as u64 + 60);
    let status = std::process::Command::new("timeout")
        .args(["-k", "10", &limit])
        .arg(&a.sandbox)
        .arg("eval")
        .arg(&a.dir)
        .arg(&expr)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", a.sandbox.display()))?;
    if !status.success() {
        return Err(format!("the in-VM storm failed ({status})"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", out.display()))?;
    let answers = v["answers"]
        .as_array()
        .ok_or("no answers in the in-VM result")?;
    let us = |x: &Value| Duration::from_micros(x.as_u64().unwrap_or(0));
    let outcomes = answers
        .iter()
        .map(|a| {
            let code = a[1].as_u64().unwrap_or(9);
            let answer = match code {
                1 => Some(Answer::Yes),
                0 => Some(Answer::No),
                2 => Some(Answer::TempFail),
                3 => None,
                _ => Some(Answer::Invalid),
            };
            Outcome {
                start: us(&a[0]),
                answer: answer.map(|x| (x, us(&a[2]))),
            }
        })
        .collect();
    let hwm = &v["memory"]["hwm_kib"];
    Ok((
        outcomes,
        json!({ "memory": v["memory"], "rss_kib": hwm, "rss_detail_kib": {"beam": hwm} }),
    ))
}

// --- one row as JSON ----------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3).round() / 1e3
}

fn summarize(row: &RowArgs, outcomes: &[Outcome]) -> Value {
    let mut counts = [0usize; 5];
    let mut latencies = Vec::new();
    let mut last = Duration::ZERO;
    for o in outcomes {
        match o.answer {
            Some((a, at)) => {
                counts[a as usize] += 1;
                latencies.push(at.saturating_sub(o.start));
                last = last.max(at);
            }
            None => counts[4] += 1,
        }
    }
    latencies.sort();
    let unanswered = counts[4];
    json!({
        "row": row.row,
        "label": row.label,
        "mode": row.mode,
        "kind": row.kind,
        "cost": row.cost,
        "users": row.users,
        "concurrency": row.concurrency,
        "queue": row.queue,
        "spread_s": row.spread_s,
        "deadline_s": row.deadline_s,
        "yes": counts[Answer::Yes as usize],
        "no": counts[Answer::No as usize],
        "tempfail": counts[Answer::TempFail as usize],
        "invalid": counts[Answer::Invalid as usize],
        "unanswered": unanswered,
        // Until the last answer; with unanswered logins, the deadline.
        "time_s": if unanswered > 0 { row.deadline_s } else { secs(last) },
        "last_start_s": secs(outcomes.last().map(|o| o.start).unwrap_or_default()),
        "p50_ms": ms(percentile(&latencies, 0.5)),
        "p99_ms": ms(percentile(&latencies, 0.99)),
        "max_ms": ms(latencies.last().copied().unwrap_or_default()),
    })
}

fn append_row(path: &Path, row: &Value) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{row}").map_err(|e| format!("{}: {e}", path.display()))
}

/// Resets the backend's counters, runs `storm`, and adds its extra fields,
/// the backend's counters, the peaks watched and the load to the row.
fn run_row(
    row: &RowArgs,
    storm: impl FnOnce(&Watch) -> Result<(Vec<Outcome>, Value), String>,
) -> Result<Value, String> {
    control(&row.control, "POST", "/stats/reset")?;
    if let Some(p) = &row.proxy_control {
        proxy_control(p, "reset")?;
    }
    let load_before = loadavg();
    let watch = Watch::start();
    let result = storm(&watch);
    let rss = watch.finish();
    let (outcomes, extra) = result?;
    let stats = backend_stats(&row.control)?;
    let relayed = match &row.proxy_control {
        Some(p) => proxy_control(p, "stats")?,
        None => Value::Null,
    };
    let mut v = summarize(row, &outcomes);
    let field = |k: &str| stats[k].as_u64().unwrap_or(0);
    v["backend_auth"] = field("auth").into();
    v["backend_total"] = field("total").into();
    v["backend_peak_in_flight"] = field("peak_in_flight").into();
    v["backend_peak_requests"] = relayed["peak"].clone();
    v["rss_kib"] = rss.values().sum::<u64>().into();
    v["rss_detail_kib"] = json!(rss);
    if let Value::Object(fields) = extra {
        for (k, x) in fields {
            v[k] = x;
        }
    }
    v["load_before"] = load_before.into();
    v["load_after"] = loadavg().into();
    v["finished_unix"] = unix_now().into();
    append_row(&row.out, &v)?;
    Ok(v)
}

fn print_row(v: &Value) {
    println!(
        "  {}: {} s, yes {}, no {}, could not find out {}, unanswered {}, backend requests {}, peak at the backend {} (its workers {}), peak RSS {} KiB, p50 {} ms, p99 {} ms",
        v["row"], v["time_s"], v["yes"], v["no"], v["tempfail"], v["unanswered"],
        v["backend_auth"], v["backend_peak_requests"], v["backend_peak_in_flight"],
        v["rss_kib"], v["p50_ms"], v["p99_ms"]
    );
}

// --- the report -------------------------------------------------------------------------

/// Median time of one bcrypt verification at `cost` on this machine.
fn bcrypt_verify_ms(cost: u32, runs: usize) -> f64 {
    let Ok(h) = bcrypt::hash("storm-password", cost) else {
        return f64::NAN;
    };
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = std::time::Instant::now();
            let _ = bcrypt::verify("storm-password", &h);
            s.elapsed()
        })
        .collect();
    t.sort();
    percentile(&t, 0.5).as_secs_f64() * 1e3
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

struct Goal {
    ok: Option<bool>,
    text: String,
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a ",
    }
}

fn report(a: &ReportArgs) -> Result<bool, String> {
    let text =
        std::fs::read_to_string(&a.rows).map_err(|e| format!("{}: {e}", a.rows.display()))?;
    let mut rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", a.rows.display()))?;
    let per_check = a.delay_ms as f64 / 1000.0;
    let limit = |n: f64| n * per_check / a.workers as f64;
    for r in &mut rows {
        let n = f(&r["users"]);
        let time = f(&r["time_s"]);
        r["limit_s"] = limit(n).into();
        r["ratio"] = (time / limit(n)).into();
        let served = u(&r["backend_auth"]) as f64;
        r["served_limit_s"] = limit(served).into();
        r["ratio_served"] = if served > 0.0 {
            (time / limit(served)).into()
        } else {
            Value::Null
        };
        r["without_backend_pct"] = (100.0 * (n - served).max(0.0) / n.max(1.0)).into();
    }
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let b12 = bcrypt_verify_ms(12, 3);
    let b4 = bcrypt_verify_ms(4, 21);

    // The table, as Markdown (docs/admin/login-storms.md carries it as printed).
    println!();
    println!(
        "| row | N | time (s) | × limit | yes | no | could not find out | backend requests | without backend | peak at the backend: requests / in its workers | peak RSS (MiB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let unanswered = u(&r["unanswered"]);
        let time = if unanswered > 0 {
            format!("> {:.1} ({unanswered} unanswered)", f(&r["time_s"]))
        } else {
            format!("{:.1}", f(&r["time_s"]))
        };
        println!(
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.1} % | {} / {} | {:.1} |",
            r["label"].as_str().unwrap_or("?"),
            u(&r["users"]),
            time,
            f(&r["ratio"]),
            u(&r["yes"]),
            u(&r["no"]) + u(&r["invalid"]),
            u(&r["tempfail"]),
            u(&r["backend_auth"]),
            f(&r["without_backend_pct"]),
            r["backend_peak_requests"],
            u(&r["backend_peak_in_flight"]),
            u(&r["rss_kib"]) as f64 / 1024.0
        );
    }
    println!();
    println!(
        "physical limit: N × {per_check} s / {} = {:.1} s for N = {} (a storm cannot end sooner when every login needs the backend); × limit = time / that",
        a.workers,
        limit(a.users as f64),
        a.users
    );

    let mut goals: Vec<Goal> = Vec::new();
    let by_id = |id: &str| rows.iter().find(|r| r["row"] == id);
    let label = |r: &Value| r["label"].as_str().unwrap_or("?").to_string();

    // Cold socket mode and in-VM within 110 % of the limit.
    for r in rows
        .iter()
        .filter(|r| r["kind"] == "cold" && (r["mode"] == "socket" || r["mode"] == "vm"))
    {
        if r["row"] == "vm-large" {
            continue;
        }
        let shed = u(&r["tempfail"]);
        let ratio = f(&r["ratio"]);
        let served = u(&r["backend_auth"]);
        let (ok, detail) = if u(&r["unanswered"]) > 0 {
            (false, format!("{} logins unanswered", u(&r["unanswered"])))
        } else if shed > 0 {
            let rs = f(&r["ratio_served"]);
            (
                rs <= 1.10,
                format!(
                    "{:.1} s for the {served} logins the backend answered = {rs:.2}× their limit ({served} × {per_check} / {}); {shed} were answered \"could not find out\" at once (queue full: {} waiting at most, N = {}), which is why the storm took only {ratio:.2}× the limit for N",
                    f(&r["time_s"]),
                    a.workers,
                    r["queue"],
                    u(&r["users"])
                ),
            )
        } else {
            let procs_note = if r["mode"] == "socket" {
                let c = r["procs"].as_u64().unwrap_or(0);
                if c > 0 && (c as usize) < a.workers {
                    format!(
                        "; only {c} requests in flight at a time: ejabberd's extauth (and so cloudauth-connect) sends one request at a time per process, so {c} processes cannot use {} workers (limit for {c}: N × {per_check} / {c} = {:.0} s)",
                        a.workers,
                        u(&r["users"]) as f64 * per_check / c as f64
                    )
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            (
                ratio <= 1.10,
                format!(
                    "{:.1} s = {ratio:.2}× the limit{procs_note}",
                    f(&r["time_s"])
                ),
            )
        };
        goals.push(Goal {
            ok: Some(ok),
            text: format!(
                "cold, {}: within 110 % of the physical limit: {detail}",
                label(r)
            ),
        });
    }

    // Peak backend concurrency.
    if !rows.is_empty() {
        let counted = rows.iter().all(|r| r["backend_peak_requests"].is_u64());
        let max_requests = rows
            .iter()
            .map(|r| u(&r["backend_peak_requests"]))
            .max()
            .unwrap_or(0);
        let max_flight = rows
            .iter()
            .map(|r| u(&r["backend_peak_in_flight"]))
            .max()
            .unwrap_or(0);
        goals.push(Goal {
            ok: counted.then_some(max_requests <= a.workers as u64),
            text: format!(
                "peak backend concurrency never above {}: at most {max_requests} requests at the backend at once in any row (sent and not yet answered, counted by a relay in front of it{}); its own peak_in_flight at most {max_flight} (it counts only what its {} workers took, so it cannot exceed {} whatever the client sends)",
                a.workers,
                if counted { "" } else { " — not counted in every row" },
                a.workers,
                a.workers
            ),
        });
        let wrong: u64 = rows.iter().map(|r| u(&r["no"]) + u(&r["invalid"])).sum();
        let unanswered: u64 = rows.iter().map(|r| u(&r["unanswered"])).sum();
        let no: u64 = rows.iter().map(|r| u(&r["no"])).sum();
        goals.push(Goal {
            ok: Some(wrong == 0 && unanswered == 0),
            text: format!(
                "zero wrong answers: {wrong} wrong (every password was right), {unanswered} unanswered within the rows' deadlines"
            ),
        });
        goals.push(Goal {
            ok: Some(no == 0),
            text: format!(
                "zero \"no\" for a right password: {no}; {} \"could not find out\" in all rows",
                rows.iter().map(|r| u(&r["tempfail"])).sum::<u64>()
            ),
        });
    }

    // Warm restarts.
    for r in rows.iter().filter(|r| r["kind"] == "warm") {
        let n = u(&r["users"]);
        let pct = f(&r["without_backend_pct"]);
        let time = f(&r["time_s"]);
        let cost = r["cost"].as_u64().unwrap_or(12);
        let per_hit = if cost >= 12 { b12 } else { b4 };
        let floor = n as f64 * per_hit / 1000.0 / cores as f64;
        // The logins themselves arrive over the spread (5 s; the last starts
        // at 4.998 s for 2,000): "over in < 5 s" can only mean answered as
        // they come, the last within moments of its start.
        let spread = f(&r["spread_s"]);
        let over = time < spread + 0.1;
        let ok = pct >= 95.0 && over && u(&r["unanswered"]) == 0;
        let why = if cost >= 12 {
            format!(
                "; bcrypt cost {cost}: the first hit per user after a restart verifies one hash, {per_hit:.0} ms here, so {n} × {per_hit:.0} ms / {cores} cores = {floor:.0} s at the least: under 5 s is impossible on this machine at this cost"
            )
        } else {
            format!(
                "; bcrypt cost {cost}: {per_hit:.2} ms per first hit, {n} × that / {cores} cores = {floor:.2} s of CPU; the last login started at {:.3} s and was answered {:.1} ms later",
                f(&r["last_start_s"]),
                (time - f(&r["last_start_s"])) * 1000.0
            )
        };
        goals.push(Goal {
            ok: if n == 2000 { Some(ok) } else { None },
            text: format!(
                "warm, {}: ≥ 95 % without the backend and over in < 5 s (for N = 2000{}; the logins arrive over {spread} s, so: over within 0.1 s of the last one's start): {pct:.1} % without the backend, over at {time:.3} s{why}",
                label(r),
                if n == 2000 { String::new() } else { format!("; this run has N = {n}") }
            ),
        });
    }

    // VM memory bounded by the queue, not by N.
    if let (Some(small), Some(large)) = (by_id("vm"), by_id("vm-large")) {
        let growth = |r: &Value| {
            let m = &r["memory"];
            u(&m["outside_peak_kib"]).saturating_sub(u(&m["outside_before_kib"]))
        };
        let (gs, gl) = (growth(small), growth(large));
        let (ns, nl) = (u(&small["users"]), u(&large["users"]));
        let both_full = u(&small["tempfail"]) > 0 && u(&large["tempfail"]) > 0;
        let ok = both_full.then_some(gl as f64 <= 1.5 * gs.max(1024) as f64);
        let ps = u(&small["memory"]["procs_peak_kib"])
            .saturating_sub(u(&small["memory"]["procs_before_kib"]));
        let pl = u(&large["memory"]["procs_peak_kib"])
            .saturating_sub(u(&large["memory"]["procs_before_kib"]));
        goals.push(Goal {
            ok,
            text: format!(
                "in-VM memory bounded by the queue, not by N: beam RSS outside Erlang process heaps (the NIF's requests live there) grew {:.1} MiB at N = {ns} and {:.1} MiB at N = {nl} ({:.2}×; the queue holds {} at most){}; the storm's own Erlang processes (stand-ins for c2s processes, which a real server has per client anyway) took {:.1} and {:.1} MiB; beam peak RSS {:.1} and {:.1} MiB",
                gs as f64 / 1024.0,
                gl as f64 / 1024.0,
                gl as f64 / gs.max(1) as f64,
                small["queue"],
                if both_full { "" } else { " — n/a: the queue did not fill at both sizes, so they do not test the bound" },
                ps as f64 / 1024.0,
                pl as f64 / 1024.0,
                u(&small["memory"]["hwm_kib"]) as f64 / 1024.0,
                u(&large["memory"]["hwm_kib"]) as f64 / 1024.0
            ),
        });
    }

    // Not a goal: what the cache costs a cold storm.
    let mut fill_notes = Vec::new();
    for r in rows.iter().filter(|r| r["kind"] == "fill") {
        let cost = r["cost"].as_u64().unwrap_or(12);
        let per = if cost >= 12 { b12 } else { b4 };
        let n = u(&r["backend_auth"]) as f64;
        fill_notes.push(format!(
            "{}: {:.1} s = {:.2}× the limit; every login the backend confirms is hashed at bcrypt cost {cost} ({per:.1} ms of CPU each; the answer waits for it only while a bcrypt slot is free): {n} × that / {cores} cores = {:.1} s of CPU{}",
            label(r),
            f(&r["time_s"]),
            f(&r["ratio"]),
            n * per / 1000.0 / cores as f64,
            if n * per / 1000.0 / cores as f64 > limit(n) {
                ", more than the backend's limit: the hashing competes with the storm for this machine's CPU and is finished after it"
            } else {
                ""
            }
        ));
    }

    println!();
    println!("goals:");
    for g in &goals {
        println!("{}  {}", verdict(g.ok), g.text);
    }
    println!();
    println!("notes:");
    let notes = [
        format!("bcrypt verification on this machine: cost 12 {b12:.0} ms, cost 4 {b4:.2} ms; {cores} cores"),
        "in-VM rows: N Erlang processes call ejabberd_auth:check_password(User, <<\"\">>, Host, Password) inside the sandbox ejabberd; real XMPP clients (TCP, TLS, SASL, a c2s process each) for thousands of users do not fit a 2-core machine next to the server and the backend".to_string(),
        "ejabberd 23.01's extauth sends one request at a time per pool process and waits for its answer (it does not pipeline), and gives up on a call after 30 s; the port rows' driver waits as long as the row's deadline instead, so that the table shows when the last login would be answered".to_string(),
        "peak at the backend: requests = sent to it and not yet answered, whether its workers had taken them or they waited in its queue (counted by `storm proxy`, a TCP relay in front of it; HTTP/1.1 without pipelining, so one per connection at a time); in its workers = its own peak_in_flight".to_string(),
    ];
    let notes: Vec<String> = notes.into_iter().chain(fill_notes).collect();
    for n in &notes {
        println!("- {n}");
    }
    let doc = json!({
        "command": a.command,
        "users": a.users,
        "backend": {"delay_ms": a.delay_ms, "workers": a.workers},
        "spread_s": a.spread_s,
        "physical_limit_s": limit(a.users as f64),
        "cores": cores,
        "bcrypt_verify_ms": {"12": b12, "4": b4},
        "rows": rows,
        "goals": goals.iter().map(|g| json!({"verdict": verdict(g.ok).trim(), "text": g.text})).collect::<Vec<_>>(),
        "notes": notes,
    });
    let pretty = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(&a.json, pretty + "\n").map_err(|e| format!("{}: {e}", a.json.display()))?;
    println!();
    println!("JSON: {}", a.json.display());
    Ok(goals.iter().all(|g| g.ok != Some(false)))
}

// --- main -----------------------------------------------------------------------------

fn users_file(n: usize, out: &Path) -> Result<(), String> {
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"uid": user(i), "password": password(i)}))
        .collect();
    std::fs::write(out, json!({ "users": users }).to_string())
        .map_err(|e| format!("{}: {e}", out.display()))
}

fn run(cli: Cli) -> Result<bool, String> {
    match cli.cmd {
        Cmd::Users { users, out } => users_file(users, &out).map(|()| true),
        Cmd::Port(a) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let mut extra_pids = Vec::new();
            for spec in &a.rss_pids {
                let (name, pid) = spec
                    .split_once('=')
                    .and_then(|(n, p)| Some((n.to_string(), p.parse::<u32>().ok()?)))
                    .ok_or_else(|| format!("--rss-pid {spec:?}: expected NAME=PID"))?;
                extra_pids.push((name, pid));
            }
            let v = run_row(&a.row, |watch| {
                for (name, pid) in &extra_pids {
                    watch.add_pid(name.clone(), *pid);
                }
                rt.block_on(port_storm(&a, watch))
                    .map(|o| (o, json!({"procs": a.procs, "pipeline": a.pipeline})))
            })?;
            print_row(&v);
            Ok(true)
        }
        Cmd::Vm(a) => {
            let v = run_row(&a.row, |_| vm_storm(&a))?;
            print_row(&v);
            Ok(true)
        }
        Cmd::Report(a) => report(&a),
        Cmd::Proxy(a) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(proxy(&a)).map(|()| true)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("storm: {e}");
            ExitCode::from(2)
        }
    }
}
