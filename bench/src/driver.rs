//! Drives P extauth processes like ejabberd's pool: one outstanding request
//! per process, requests spread evenly, every reply checked.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::stats::{peak_rss_kib, percentile};

/// One request and the 4-byte answer it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// The frame payload, e.g. `auth:user1:localhost:pw-1`.
    pub payload: Vec<u8>,
    /// The expected reply.
    pub expected: [u8; 4],
}

/// Outcome of a run.
#[derive(Debug, Default)]
pub struct RunResult {
    /// Requests answered.
    pub requests: usize,
    /// Replies that were not the expected ones.
    pub wrong: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Per-request latencies, sorted.
    pub latencies: Vec<Duration>,
    /// Largest peak RSS among the processes, KiB.
    pub max_rss_kib: u64,
}

impl RunResult {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Starts `argv` with piped stdin/stdout, stderr to `stderr_log`.
pub fn spawn(argv: &[String], stderr_log: &std::path::Path) -> std::io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log)?;
    Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
}

/// An extauth frame: 2-byte big-endian length, then the payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Sends one request and reads the 4-byte reply.
pub async fn round_trip(
    stdin: &mut ChildStdin,
    stdout: &mut ChildStdout,
    payload: &[u8],
) -> std::io::Result<[u8; 4]> {
    stdin.write_all(&frame(payload)).await?;
    stdin.flush().await?;
    let mut reply = [0u8; 4];
    stdout.read_exact(&mut reply).await?;
    Ok(reply)
}

/// Runs `per_proc` cases on each of `procs` instances of `argv`, after
/// `warm_up` unmeasured round trips per process (its first cases).
pub async fn run(
    argv: &[String],
    procs: usize,
    cases: &[Vec<Case>],
    warm_up: usize,
    stderr_log: &std::path::Path,
) -> std::io::Result<RunResult> {
    let mut children = Vec::new();
    for _ in 0..procs {
        children.push(spawn(argv, stderr_log)?);
    }
    // Warm-up, so that start-up (and, for cache hits, filling the cache)
    // is not measured.
    let mut pipes = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        let (mut stdin, mut stdout) = match (c.stdin.take(), c.stdout.take()) {
            (Some(i), Some(o)) => (i, o),
            _ => return Err(std::io::Error::other("child without pipes")),
        };
        let mine = &cases[i % cases.len()];
        for warm in mine.iter().cycle().take(warm_up.max(1)) {
            let reply = round_trip(&mut stdin, &mut stdout, &warm.payload).await?;
            if reply != warm.expected {
                return Err(std::io::Error::other(format!(
                    "wrong answer {reply:?} during warm-up"
                )));
            }
        }
        pipes.push((stdin, stdout));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (mut stdin, mut stdout)) in pipes.into_iter().enumerate() {
        let mine = cases[i % cases.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(mine.len());
            let mut wrong = 0;
            for case in &mine {
                let t = Instant::now();
                let reply = round_trip(&mut stdin, &mut stdout, &case.payload).await?;
                lat.push(t.elapsed());
                if reply != case.expected {
                    wrong += 1;
                }
            }
            Ok::<_, std::io::Error>((lat, wrong, stdin))
        }));
    }
    let mut result = RunResult::default();
    let mut stdins = Vec::new();
    for t in tasks {
        let (lat, wrong, stdin) = t.await.map_err(std::io::Error::other)??;
        result.requests += lat.len();
        result.wrong += wrong;
        result.latencies.extend(lat);
        stdins.push(stdin);
    }
    result.elapsed = started.elapsed();
    result.latencies.sort();
    for c in &children {
        if let Some(pid) = c.id() {
            result.max_rss_kib = result.max_rss_kib.max(peak_rss_kib(pid).unwrap_or(0));
        }
    }
    drop(stdins); // EOF: the processes exit
    for mut c in children {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
    }
    Ok(result)
}

/// Time from spawn to the first reply, median of `runs` fresh processes.
pub async fn first_answer(
    argv: &[String],
    payload: &[u8],
    runs: usize,
    stderr_log: &std::path::Path,
) -> std::io::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut c = spawn(argv, stderr_log)?;
        let (mut stdin, mut stdout) = match (c.stdin.take(), c.stdout.take()) {
            (Some(i), Some(o)) => (i, o),
            _ => return Err(std::io::Error::other("child without pipes")),
        };
        round_trip(&mut stdin, &mut stdout, payload).await?;
        times.push(t.elapsed());
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
    }
    times.sort();
    Ok(percentile(&times, 0.5))
}
