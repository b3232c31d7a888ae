//! Account sweep benchmark: what one sweep of N known users costs a
//! Nextcloud (requests it receives, time), against N plain `isuser`
//! requests at the same concurrency measured in the same run, both through
//! the core against the test backend emulating Nextcloud's OCS API (the
//! service account `svc`).
//!
//! Usage: `sweep BASE CONTROL SERVICE_PASSWORD_FILE USERS CONCURRENCY`
//! (the test backend's origin and control URL; users `u0`…`u{N-1}` exist
//! there). Prints one JSON line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudauth_core::domains::Builder;
use cloudauth_core::settings::values::Values;
use cloudauth_core::settings::{cache_settings, limits, sweep_batch};
use cloudauth_core::{
    Authenticator, Clock, HttpClient, SingleDomain, SystemClock, Timeouts, Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One counter of the test backend's `/stats` (a bare HTTP/1.0 GET: the
/// bench needs no HTTP client of its own).
async fn stat(control: &str, key: &str) -> Result<u64, String> {
    let hostport = control
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .ok_or("control URL is not http://HOST:PORT")?;
    let mut s = tokio::net::TcpStream::connect(hostport)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET /stats HTTP/1.0\r\nHost: {hostport}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    let json = body.split("\r\n\r\n").nth(1).ok_or("no body")?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    v[key].as_u64().ok_or_else(|| format!("no counter {key}"))
}

fn authenticator(values: &Values, known: bool) -> Result<Authenticator, String> {
    let t = Timeouts {
        connect: Duration::from_secs(5),
        total: Duration::from_secs(60),
    };
    // The process's one HTTP client, with cloud-concurrency's gate.
    let builder = Builder {
        http: Arc::new(HttpClient::with_limits(t, Arc::new(limits(values)))),
        tokens: Builder::new(t).tokens,
    };
    let settings = builder.build(values).map_err(|e| e.to_string())?;
    let cs = cache_settings(values);
    let dir = std::env::temp_dir();
    let (cache, users) = if known {
        (
            cs.open(&dir.join("unused.db")).map_err(|e| e.to_string())?,
            cs.open_known(&dir.join("unused.db"))
                .map_err(|e| e.to_string())?,
        )
    } else {
        (None, None)
    };
    Ok(Authenticator::from_settings(
        Arc::new(SingleDomain::new((*settings).clone())),
        values,
        cache,
        users,
    ))
}

async fn run(args: &[String]) -> Result<(), String> {
    let [base, control, pwfile, users, concurrency] = args else {
        return Err("usage: sweep BASE CONTROL SERVICE_PASSWORD_FILE USERS CONCURRENCY".into());
    };
    let n: usize = users.parse().map_err(|_| "USERS: a number")?;
    let values = Values::from_pairs(&[
        ("backend", "nextcloud"),
        ("url", base),
        ("service-user", "svc"),
        ("service-password-file", pwfile),
        ("cloud-concurrency", concurrency),
        ("cache-storage", "memory"),
        ("account-sweep", "1h"),
    ])
    .map_err(|e| e.to_string())?;
    let batch = sweep_batch(&values);
    let names: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();

    // Baseline: N plain isuser requests, `batch` at a time.
    let plain = Arc::new(authenticator(&values, false)?);
    // The first request also reads Nextcloud's capabilities: not counted.
    let _ = plain.is_user("u0", "example.org").await;
    let before = stat(control, "total").await?;
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(batch));
    let mut set = tokio::task::JoinSet::new();
    for name in names.clone() {
        let (auth, gate) = (Arc::clone(&plain), Arc::clone(&gate));
        set.spawn(async move {
            let _place = gate.acquire_owned().await;
            auth.is_user(&name, "example.org").await.verdict == Verdict::Yes
        });
    }
    let mut yes = 0;
    while let Some(r) = set.join_next().await {
        yes += usize::from(r.unwrap_or(false));
    }
    let plain_time = started.elapsed();
    let plain_requests = stat(control, "total").await? - before;
    if yes != n {
        return Err(format!("baseline: {yes} of {n} users confirmed"));
    }

    // One sweep over the same users, all known.
    let auth = authenticator(&values, true)?;
    let _ = auth.is_user("u0", "example.org").await;
    let known = auth.known_users().ok_or("no known users")?;
    let now = SystemClock.now_unix();
    for name in &names {
        known.confirm(&format!("{name}@example.org"), now);
    }
    let before = stat(control, "total").await?;
    let started = Instant::now();
    let report = auth.sweep().await;
    let sweep_time = started.elapsed();
    let sweep_requests = stat(control, "total").await? - before;
    if report.present.len() != n {
        return Err(format!(
            "sweep: {} of {n} users confirmed ({} undecided)",
            report.present.len(),
            report.undecided
        ));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "users": n,
            "cloud_concurrency": concurrency,
            "batch": batch,
            "sweep_requests": sweep_requests,
            "sweep_ms": ms(sweep_time),
            "plain_requests": plain_requests,
            "plain_ms": ms(plain_time),
            "requests_ratio": sweep_requests as f64 / plain_requests.max(1) as f64,
            "time_ratio": ms(sweep_time) / ms(plain_time).max(0.001),
        })
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sweep: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
