//! Core cache-hit benchmark: median and p99 of a password-cache hit (the
//! in-memory digest path, SQLite and memory stores), against a JSXC token
//! verification measured in the same run, and against what xcauth pays per
//! hit (a full bcrypt verification at cost 12).
//!
//! Usage: `cache_hit [ITERATIONS]` (default 20000).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cloudauth_bench::stats::percentile;
use cloudauth_core::cache::sqlite::SqliteStore;
use cloudauth_core::cache::{CacheStore, CacheTtls, Lookup, MemoryStore, PasswordCache, Rules};
use cloudauth_core::{token, Secret};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn measure(n: usize, mut f: impl FnMut() -> bool) -> Result<(Duration, Duration), String> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        if !f() {
            return Err("wrong answer during measurement".into());
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// A cache holding alice's entry, as after a successful cloud verification.
fn warm_cache(store: Box<dyn CacheStore>, cost: u32) -> Result<PasswordCache, String> {
    let c = PasswordCache::new(store, CacheTtls::default(), cost).ok_or("no randomness")?;
    let h = c.hash("alice-password").ok_or("hash failed")?;
    c.record_verified("alice@example.org", "alice-password", &h, now());
    Ok(c)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn run() -> Result<(), String> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("cloudauth-cache-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let db = dir.join("xcauth.sqlite3");

    // Baseline: token verification for the same JID.
    let secret = Secret::new("bench-secret");
    let tok = token::mint(&secret, "alice", "example.org", now() + 3600);
    let (tok_p50, tok_p99) = measure(n, || {
        matches!(
            token::verify(&secret, "alice", "example.org", &tok, now()),
            token::TokenVerdict::Valid { .. }
        )
    })?;

    // xcauth's cost per hit: one bcrypt verification at cost 12.
    let h12 = bcrypt::hash("alice-password", 12).map_err(|e| e.to_string())?;
    let (bc_p50, _) = measure(3, || {
        bcrypt::verify("alice-password", &h12).unwrap_or(false)
    })?;

    let store = SqliteStore::open(&db).map_err(|e| e.to_string())?;
    let sqlite = warm_cache(Box::new(store), 12)?;
    // First lookup in a fresh process view needs bcrypt once; measure it.
    let reopened = PasswordCache::new(
        Box::new(SqliteStore::open(&db).map_err(|e| e.to_string())?),
        CacheTtls::default(),
        12,
    )
    .ok_or("no randomness")?;
    let t = Instant::now();
    let first_ok =
        match reopened.lookup("alice@example.org", "alice-password", now(), Rules::Normal) {
            Lookup::Verify { pwhash } => {
                reopened.verify_slow("alice@example.org", "alice-password", &pwhash, now())
            }
            other => return Err(format!("unexpected first lookup {other:?}")),
        };
    let first = t.elapsed();
    if !first_ok {
        return Err("first bcrypt verification failed".into());
    }
    let hit = |c: &PasswordCache| {
        matches!(
            c.lookup("alice@example.org", "alice-password", now(), Rules::Normal),
            Lookup::Hit
        )
    };
    let (sq_p50, sq_p99) = measure(n, || hit(&sqlite))?;
    let mem = warm_cache(Box::new(MemoryStore::default()), 4)?;
    let (mem_p50, mem_p99) = measure(n, || hit(&mem))?;
    let _ = std::fs::remove_dir_all(&dir);

    println!("iterations per measurement: {n}");
    println!(
        "token verification (baseline): p50 {:.2} us, p99 {:.2} us",
        us(tok_p50),
        us(tok_p99)
    );
    println!(
        "cache hit, sqlite store:       p50 {:.2} us, p99 {:.2} us",
        us(sq_p50),
        us(sq_p99)
    );
    println!(
        "cache hit, memory store:       p50 {:.2} us, p99 {:.2} us",
        us(mem_p50),
        us(mem_p99)
    );
    println!(
        "first hit in a new process (one bcrypt, cost 12): {:.1} ms",
        first.as_secs_f64() * 1e3
    );
    println!(
        "xcauth per hit (bcrypt verify, cost 12): {:.1} ms",
        bc_p50.as_secs_f64() * 1e3
    );
    println!(
        "ratios: sqlite hit / token = {:.2}; xcauth hit / sqlite hit = {:.0}x",
        sq_p50.as_secs_f64() / tok_p50.as_secs_f64().max(1e-9),
        bc_p50.as_secs_f64() / sq_p50.as_secs_f64().max(1e-9)
    );
    let target = if sq_p50 <= Duration::from_micros(50) {
        "met"
    } else {
        "MISSED"
    };
    println!("target cache hit <= 50 us median (sqlite): {target}");
    println!(
        "RESULT {{\"token_p50_us\":{:.2},\"sqlite_hit_p50_us\":{:.2},\"sqlite_hit_p99_us\":{:.2},\"memory_hit_p50_us\":{:.2},\"first_hit_ms\":{:.1},\"bcrypt12_ms\":{:.1}}}",
        us(tok_p50), us(sq_p50), us(sq_p99), us(mem_p50), first.as_secs_f64() * 1e3, bc_p50.as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cache_hit: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
