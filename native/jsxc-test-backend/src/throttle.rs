//! Nextcloud's brute-force throttle on the OCS API, switchable at run time
//! (`POST /throttle?on=1` on the control server; off by default).
//!
//! Nextcloud records every failed basic-auth login against the client
//! address (loopback included) and delays every later login from there,
//! right passwords included, by 0.1 s × 2^failures, at most 25 s
//! (`OC\Security\Bruteforce\Throttler`, failures of the last 12 hours); the
//! first failure, which found no delay to sleep, sleeps the new one at once
//! (`Session::logClientIn`). No HTTP 429. That model reproduces the series
//! measured on a real Nextcloud 24.0.5 (0.95, 0.93, 1.14,
//! 1.53, 2.33, 3.94, 7.15, 13.5, 25.7 s per failed request) once the 0.73 s
//! a wrong password costs there is added, see the tests; the series itself
//! is the sum of both, so it is not used as the delay.
//!
//! `scale_ms_per_s` shortens the delays for tests: 100 makes each second
//! of Nextcloud's delay 100 ms here; 1000 (the default) is real time.
//!
//! Nextcloud 32 and 34 (`--nextcloud-version 32|34`, [`Model::Block`]) no
//! longer delay: the throttle is on from the start, failures count for 30
//! minutes, and from the request after the 11th failure every request with
//! credentials from that address gets HTTP 429 (not counted) until the
//! failures of the last 30 minutes are 10 or fewer again. A successful
//! login deletes only that login name's failures. Allow-listed addresses
//! (`--allow-listed`) have nothing recorded. As recorded on real 32.0.2
//! and 34.0.1 (`NEXTCLOUD-API.md`, "Nextcloud 32 and 34").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// tokio's, so that the tests can move a paused clock past the windows.
use tokio::time::Instant;

use serde_json::{json, Map, Value};

use crate::stats::{Event, Stats};

/// Failures older than this no longer count (Nextcloud 24: 12 hours).
const WINDOW: Duration = Duration::from_secs(12 * 3600);
/// Nextcloud 32/34: failures older than this no longer count towards a block.
const BLOCK_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Nextcloud 32/34: `auth.bruteforce.max-attempts`' default; more failures
/// than this within [`BLOCK_WINDOW`] block the address.
const MAX_ATTEMPTS: usize = 10;

/// How Nextcloud answers recorded failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Nextcloud 24: every login from the address is delayed; switched on
    /// at run time (off by default, as the older tests expect).
    Delay,
    /// Nextcloud 32/34: no delay; a block (429) after the 11th failure.
    Block,
}
/// Delay after one failure, in ms; it doubles with each further failure.
const FIRST_DELAY_MS: u64 = 100;
/// Longest delay, in ms.
const MAX_DELAY_MS: u64 = 25_000;

/// Nextcloud's delay, in ms of real time, after `failures` recorded failures.
pub fn nextcloud_delay_ms(failures: usize) -> u64 {
    if failures == 0 {
        return 0;
    }
    // 100 << 8 already exceeds the cap; the bound keeps the shift in range.
    let shift = failures.min(16) as u32;
    (FIRST_DELAY_MS << shift).min(MAX_DELAY_MS)
}

/// The address failures are recorded against: IPv4 as is, IPv6 by its /56
/// (as Nextcloud 32/34 do: one site usually has a whole prefix).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3] & 0xff00, 0, 0, 0, 0])
            }
        },
    }
}

/// One recorded failure: when, and the login name it was for.
type Failure = (Instant, String);

/// Throttle state: model, switch, scale, allow-list, failures by client address.
#[derive(Debug)]
pub struct Throttle {
    model: Model,
    on: AtomicBool,
    scale_ms_per_s: AtomicU64,
    allow_listed: Vec<IpAddr>,
    failures: Mutex<HashMap<IpAddr, Vec<Failure>>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Model::Delay, Vec::new())
    }
}

impl Throttle {
    /// A throttle answering as `model` does; nothing is recorded for the
    /// `allow_listed` addresses (compared after [`client_key`]).
    pub fn new(model: Model, allow_listed: Vec<IpAddr>) -> Self {
        Throttle {
            model,
            // Nextcloud 32/34 cannot be switched off (short of allow-listing).
            on: AtomicBool::new(model == Model::Block),
            scale_ms_per_s: AtomicU64::new(1000),
            allow_listed: allow_listed.into_iter().map(client_key).collect(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> Duration {
        match self.model {
            Model::Delay => WINDOW,
            Model::Block => BLOCK_WINDOW,
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<IpAddr, Vec<Failure>>> {
        // Poisoned only by a panic elsewhere; the map itself stays usable.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Failures recorded against `ip` within the window.
    fn count(&self, ip: IpAddr) -> usize {
        let window = self.window();
        let mut t = self.table();
        let Some(times) = t.get_mut(&client_key(ip)) else {
            return 0;
        };
        times.retain(|(at, _)| at.elapsed() < window);
        times.len()
    }

    /// Whether `ip` is on the brute-force allow-list.
    pub fn is_allow_listed(&self, ip: IpAddr) -> bool {
        self.allow_listed.contains(&client_key(ip))
    }

    /// Nextcloud 32/34: whether requests with credentials from `ip` get 429.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.model == Model::Block
            && self.on.load(Ordering::Relaxed)
            && self.count(ip) > MAX_ATTEMPTS
    }

    /// What `cloud/capabilities` reports as `bruteforce.delay` for `ip`, in
    /// ms: the delay Nextcloud computes (0, 200, 400 … 25000) though 32/34
    /// never sleep it.
    pub fn reported_delay_ms(&self, ip: IpAddr) -> u64 {
        nextcloud_delay_ms(self.count(ip))
    }

    /// After a successful login as `login` from `ip`: Nextcloud 32/34
    /// delete that login name's failures only (24's delay is not reset here).
    pub fn succeeded(&self, ip: IpAddr, login: &str) {
        if self.model != Model::Block {
            return;
        }
        if let Some(times) = self.table().get_mut(&client_key(ip)) {
            times.retain(|(_, name)| name != login);
        }
    }

    /// Sleeps Nextcloud's delay `ms`, scaled; counts it.
    async fn sleep(&self, ms: u64, stats: &Stats) {
        if ms == 0 {
            return;
        }
        let scaled = ms.saturating_mul(self.scale_ms_per_s.load(Ordering::Relaxed)) / 1000;
        stats.event(Event::ThrottleDelayed);
        stats.add(Event::ThrottleDelayMs, scaled);
        tokio::time::sleep(Duration::from_millis(scaled)).await;
    }

    /// Before a login from `ip` is checked: sleeps as the failures recorded
    /// so far demand. Returns Nextcloud's delay that applied, in ms.
    pub async fn before_login(&self, ip: IpAddr, stats: &Stats) -> u64 {
        if self.model == Model::Block || !self.on.load(Ordering::Relaxed) {
            return 0;
        }
        let ms = nextcloud_delay_ms(self.count(ip));
        self.sleep(ms, stats).await;
        ms
    }

    /// After a failed login as `login` from `ip`: records it and, on 24, if
    /// the login had not been delayed (`delayed_ms` 0), sleeps the delay it
    /// now brings.
    pub async fn failed(&self, ip: IpAddr, login: &str, delayed_ms: u64, stats: &Stats) {
        if !self.on.load(Ordering::Relaxed) || self.is_allow_listed(ip) {
            return;
        }
        self.table()
            .entry(client_key(ip))
            .or_default()
            .push((Instant::now(), login.to_string()));
        stats.event(Event::ThrottleFailures);
        if self.model == Model::Delay && delayed_ms == 0 {
            self.sleep(nextcloud_delay_ms(self.count(ip)), stats).await;
        }
    }

    /// Switches the throttle and/or sets the scale.
    pub fn set(&self, on: Option<bool>, scale_ms_per_s: Option<u64>) {
        if let Some(on) = on {
            self.on.store(on, Ordering::Relaxed);
        }
        if let Some(s) = scale_ms_per_s {
            self.scale_ms_per_s.store(s, Ordering::Relaxed);
        }
    }

    /// Forgets the failures of `ip` (its /56 for IPv6), or of everyone, as
    /// `occ security:bruteforce:reset` does.
    pub fn reset(&self, ip: Option<IpAddr>) {
        let mut t = self.table();
        match ip {
            Some(ip) => {
                t.remove(&client_key(ip));
            }
            None => t.clear(),
        }
    }

    /// The state as JSON: `model`, `on`, `scale_ms_per_s`, `failures` by
    /// address (within the window), `blocked` addresses (32/34).
    pub fn snapshot(&self) -> Value {
        let window = self.window();
        let mut t = self.table();
        t.retain(|_, times| {
            times.retain(|(at, _)| at.elapsed() < window);
            !times.is_empty()
        });
        let failures: Map<String, Value> = t
            .iter()
            .map(|(ip, times)| (ip.to_string(), times.len().into()))
            .collect();
        let on = self.on.load(Ordering::Relaxed);
        let blocked: Vec<String> = t
            .iter()
            .filter(|(_, times)| self.model == Model::Block && on && times.len() > MAX_ATTEMPTS)
            .map(|(ip, _)| ip.to_string())
            .collect();
        json!({
            "model": match self.model { Model::Delay => "delay", Model::Block => "block" },
            "on": on,
            "scale_ms_per_s": self.scale_ms_per_s.load(Ordering::Relaxed),
            "failures": failures,
            "blocked": blocked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_reproduces_the_measured_series() {
        // Seconds per failed request on Nextcloud 24, failures recorded
        // before it = index; a wrong password costs 0.73 s there.
        let measured = [0.95, 0.93, 1.14, 1.53, 2.33, 3.94, 7.15, 13.5, 25.7];
        for (before, secs) in measured.iter().enumerate() {
            // The very first failure sleeps the delay it brings, afterwards.
            let ms = match before {
                0 => nextcloud_delay_ms(1),
                n => nextcloud_delay_ms(n),
            };
            let model = 0.73 + ms as f64 / 1000.0;
            assert!((model - secs).abs() < 0.05, "{before}: {model} vs {secs}");
        }
        assert_eq!(nextcloud_delay_ms(0), 0);
        assert_eq!(nextcloud_delay_ms(50), MAX_DELAY_MS);
    }

    #[test]
    fn ipv6_by_slash_56() {
        let a: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let b: IpAddr = "2001:db8:1:ff:ffff::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let c: IpAddr = "2001:db8:1:100::9".parse().unwrap();
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_delay_later_logins() {
        let (t, stats) = (Throttle::default(), Stats::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        t.failed(ip, "x", 0, &stats).await;
        assert_eq!(t.count(ip), 0, "off: nothing recorded");
        t.set(Some(true), Some(100));
        let start = tokio::time::Instant::now();
        let before = t.before_login(ip, &stats).await;
        assert_eq!(before, 0);
        t.failed(ip, "x", before, &stats).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(20),
            "first failure: 0.2 s scaled"
        );
        let before = t.before_login(ip, &stats).await;
        assert_eq!(before, 200);
        t.failed(ip, "x", before, &stats).await;
        assert_eq!(t.before_login(ip, &stats).await, 400);
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(t.before_login(other, &stats).await, 0, "per address");
        t.reset(Some(ip));
        assert_eq!(t.before_login(ip, &stats).await, 0);
        let v = stats.snapshot();
        assert_eq!(
            (
                v["throttle_failures"].as_u64(),
                v["throttle_delayed"].as_u64()
            ),
            (Some(2), Some(3))
        );
        assert_eq!(v["throttle_delay_ms"], 20 + 20 + 40);
    }

    #[tokio::test(start_paused = true)]
    async fn nextcloud_32_blocks_after_the_eleventh_failure() {
        let (t, stats) = (Throttle::new(Model::Block, Vec::new()), Stats::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let start = tokio::time::Instant::now();
        for n in 0..10 {
            assert_eq!(t.before_login(ip, &stats).await, 0, "no delay on 32/34");
            t.failed(ip, &format!("user{n}"), 0, &stats).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "never sleeps");
        assert!(!t.blocked(ip), "10 failures: not yet");
        assert_eq!(t.reported_delay_ms(ip), MAX_DELAY_MS);
        t.failed(ip, "alice", 0, &stats).await;
        assert!(
            t.blocked(ip),
            "the request after the 11th failure is blocked"
        );
        assert!(!t.blocked("127.0.0.2".parse().unwrap()), "per address");
        // alice logs in (before the block, in the recorded case): only her
        // failure goes.
        t.succeeded(ip, "alice");
        assert_eq!(t.count(ip), 10);
        assert!(!t.blocked(ip));
        // The window is 30 minutes.
        tokio::time::advance(BLOCK_WINDOW + Duration::from_secs(1)).await;
        assert_eq!(t.count(ip), 0);
    }

    #[tokio::test]
    async fn allow_listed_addresses_record_nothing() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (t, stats) = (Throttle::new(Model::Block, vec![ip]), Stats::default());
        for _ in 0..15 {
            t.failed(ip, "alice", 0, &stats).await;
        }
        assert_eq!((t.count(ip), t.blocked(ip)), (0, false));
        assert_eq!(t.reported_delay_ms(ip), 0);
    }
}
