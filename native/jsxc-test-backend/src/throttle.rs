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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::stats::{Event, Stats};

/// Failures older than this no longer count (Nextcloud: 12 hours).
const WINDOW: Duration = Duration::from_secs(12 * 3600);
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

/// The address failures are recorded against: IPv4 as is, IPv6 by its /64
/// (as Nextcloud does, one host usually having a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// Throttle state: switch, scale, failures by client address.
#[derive(Debug)]
pub struct Throttle {
    on: AtomicBool,
    scale_ms_per_s: AtomicU64,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            on: AtomicBool::new(false),
            scale_ms_per_s: AtomicU64::new(1000),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl Throttle {
    fn table(&self) -> MutexGuard<'_, HashMap<IpAddr, Vec<Instant>>> {
        // Poisoned only by a panic elsewhere; the map itself stays usable.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Failures recorded against `ip` within the window.
    fn count(&self, ip: IpAddr) -> usize {
        let mut t = self.table();
        let Some(times) = t.get_mut(&client_key(ip)) else {
            return 0;
        };
        times.retain(|at| at.elapsed() < WINDOW);
        times.len()
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
        if !self.on.load(Ordering::Relaxed) {
            return 0;
        }
        let ms = nextcloud_delay_ms(self.count(ip));
        self.sleep(ms, stats).await;
        ms
    }

    /// After a failed login from `ip`: records it and, if the login had not
    /// been delayed (`delayed_ms` 0), sleeps the delay it now brings.
    pub async fn failed(&self, ip: IpAddr, delayed_ms: u64, stats: &Stats) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        self.table()
            .entry(client_key(ip))
            .or_default()
            .push(Instant::now());
        stats.event(Event::ThrottleFailures);
        if delayed_ms == 0 {
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

    /// Forgets the failures of `ip` (its /64 for IPv6), or of everyone, as
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

    /// The state as JSON: `on`, `scale_ms_per_s`, `failures` by address.
    pub fn snapshot(&self) -> Value {
        let mut t = self.table();
        t.retain(|_, times| {
            times.retain(|at| at.elapsed() < WINDOW);
            !times.is_empty()
        });
        let failures: Map<String, Value> = t
            .iter()
            .map(|(ip, times)| (ip.to_string(), times.len().into()))
            .collect();
        json!({
            "on": self.on.load(Ordering::Relaxed),
            "scale_ms_per_s": self.scale_ms_per_s.load(Ordering::Relaxed),
            "failures": failures,
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
    fn ipv6_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_delay_later_logins() {
        let (t, stats) = (Throttle::default(), Stats::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        t.failed(ip, 0, &stats).await;
        assert_eq!(t.count(ip), 0, "off: nothing recorded");
        t.set(Some(true), Some(100));
        let start = tokio::time::Instant::now();
        let before = t.before_login(ip, &stats).await;
        assert_eq!(before, 0);
        t.failed(ip, before, &stats).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(20),
            "first failure: 0.2 s scaled"
        );
        let before = t.before_login(ip, &stats).await;
        assert_eq!(before, 200);
        t.failed(ip, before, &stats).await;
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
}
