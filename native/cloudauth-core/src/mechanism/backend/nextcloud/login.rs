//! The password check (`cloud/user` with the user's credentials) and the watch on its latency.

use super::*;

/// Typical login latency and the throttle warnings.
#[derive(Debug)]
pub(super) struct LatencyWatch {
    pub(super) floor: Duration,
    /// Moving average of login latency in µs; 0 until the first sample.
    pub(super) typical_us: AtomicU64,
    /// Logins taken as throttled.
    pub(super) seen: AtomicU64,
    /// When the last warning was logged, in ms since `epoch`, plus one (0: never).
    pub(super) last_warn: AtomicU64,
    pub(super) epoch: Instant,
}

/// The latency above which a login counts as throttled.
pub(crate) fn throttle_threshold(typical: Option<Duration>, floor: Duration) -> Duration {
    typical.map_or(floor, |t| floor.max(t.saturating_mul(THROTTLE_FACTOR)))
}

impl LatencyWatch {
    pub(super) fn new(floor: Duration) -> Self {
        LatencyWatch {
            floor,
            typical_us: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub(super) fn typical(&self) -> Option<Duration> {
        match self.typical_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Records one login's latency; true when it looks throttled. The
    /// average moves by 1/8 per sample, so that a Nextcloud that is simply
    /// slow stops looking throttled after a while, while the throttle's
    /// doubling delays outrun it.
    pub(super) fn observe(&self, elapsed: Duration) -> bool {
        let throttled = elapsed > throttle_threshold(self.typical(), self.floor);
        let sample = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Only fails if the closure returns None, which it never does.
        let _ = self
            .typical_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(match old {
                    0 => sample,
                    old => (old.saturating_mul(7).saturating_add(sample) / 8).max(1),
                })
            });
        if throttled {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
        throttled
    }

    /// Whether to log a warning now: at most once per [`THROTTLE_WARN_INTERVAL`].
    pub(super) fn claim_warning(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        claim_slot(&self.last_warn, now, THROTTLE_WARN_INTERVAL)
    }
}

/// Sets `last` to `now` (ms + 1; 0 = never) when at least `interval` has
/// passed since it was last set; true when this call set it.
pub(super) fn claim_slot(last: &AtomicU64, now: u64, interval: Duration) -> bool {
    let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let mut prev = last.load(Ordering::Relaxed);
    loop {
        if prev != 0 && now.saturating_sub(prev) < interval {
            return false;
        }
        match last.compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(p) => prev = p,
        }
    }
}

impl Nextcloud {
    pub(super) async fn auth_op(
        &self,
        who: Account<'_>,
        password: &str,
    ) -> Result<bool, BackendError> {
        if !basic_auth_user_ok(who.user) || !basic_auth_password_ok(password) {
            // No Nextcloud login can be written so: a request would only
            // add a failure to the throttle's count.
            debug!(
                "{:?}: user or password not expressible in HTTP basic auth; refused without asking Nextcloud",
                who.user
            );
            return Ok(false);
        }
        self.read_capabilities_if_due().await;
        let url = &self.current_user;
        let request = self.ocs_request(url, basic_authorization(who.user, password.as_bytes()))?;
        let client = self.forwarded(who.client);
        let reply = match self.send_counted(who.user, client, request, url).await {
            Ok(r) => r,
            Err(BackendError::Timeout(d)) => {
                // Nextcloud's delay reaches 25 s, beyond most deadlines: a
                // throttled login shows up as a timeout.
                if self.latency.observe(d) {
                    self.warn_throttled(url, d, true);
                }
                return Err(BackendError::Timeout(d));
            }
            Err(e) => return Err(e),
        };
        if matches!(reply.status, 200 | 401) && self.latency.observe(reply.elapsed) {
            self.warn_throttled(url, reply.elapsed, false);
        }
        let answer = auth_answer(&reply, url, who.user)?;
        if answer == LoginAnswer::PasswordNotChecked {
            self.tell_two_factor(who.user);
        }
        Ok(answer.accepted())
    }

    /// Logs once per user (of the last [`TWO_FACTOR_TOLD_MAX`]) that its
    /// password cannot work here.
    pub(super) fn tell_two_factor(&self, user: &str) {
        let mut told = self
            .told_two_factor
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if told.len() >= TWO_FACTOR_TOLD_MAX {
            told.clear();
        }
        if told.insert(fold(user)) {
            warn!(
                "{user:?}: Nextcloud did not check the password (\"{NOT_LOGGED_IN}\"): the account uses \
                 two-factor authentication (or token_auth_enforced), so only an app password works; \
                 refused. The user should create one (Nextcloud: Personal settings → Security → \
                 Devices & sessions) and use it as the XMPP password"
            );
        }
    }

    pub(super) fn warn_throttled(&self, url: &reqwest::Url, took: Duration, timed_out: bool) {
        // Counted for metrics every time; warned about once in a while.
        self.http
            .stats()
            .throttling_seen
            .fetch_add(1, Ordering::Relaxed);
        if !self.latency.claim_warning() {
            return;
        }
        let what = if timed_out {
            format!("a login got no answer within {} ms", took.as_millis())
        } else {
            format!("a login took {} ms", took.as_millis())
        };
        let typical = self.latency.typical().map_or_else(
            || "unknown".to_string(),
            |t| format!("{} ms", t.as_millis()),
        );
        warn!(
            "Nextcloud at {} seems to be throttling this server's address (brute-force protection): {what} \
             (typical {typical}); every login from this address is delayed, right passwords included. \
             Fix it in Nextcloud: whitelist the XMPP server's address in the brute-force settings \
             (Administration → Security, or the bruteforcesettings app), then run \
             `occ security:bruteforce:reset <address>`",
            host_of(url)
        );
    }
}
