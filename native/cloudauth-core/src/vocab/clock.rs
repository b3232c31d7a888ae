//! Time source, injectable so that expiry and TTL rules are testable.
//!
//! Two times: the wall clock, for what must agree with the world (token
//! expiry, cache rows stored in a database), and a monotonic count of
//! seconds, for windows that only measure how long ago something happened
//! in this process (the guessing throttle, recent refusals): a wall clock
//! stepped back an hour must not keep a throttled user paused an hour
//! longer, nor one stepped forward forget a refusal early.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Tells the current time.
///
/// Read it for every request; never capture a value at start-up.
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now_unix(&self) -> u64;

    /// Seconds on a clock that never goes back and is not stepped (its
    /// origin is arbitrary): only differences between two readings mean
    /// anything.
    fn monotonic_secs(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn monotonic_secs(&self) -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        // Starts at a day rather than 0, so that "now minus a window" never
        // saturates at the origin in the first minutes of the process.
        ORIGIN.get_or_init(Instant::now).elapsed().as_secs() + 86_400
    }
}

/// A clock that tells whatever a test sets; its monotonic time follows
/// the wall time except when the wall clock is stepped ([`FixedClock::step_wall`]).
#[derive(Debug, Default)]
pub struct FixedClock {
    wall: AtomicU64,
    monotonic: AtomicU64,
}

impl FixedClock {
    /// A clock standing at `now` (Unix seconds, monotonic seconds alike).
    pub fn new(now: u64) -> Self {
        FixedClock {
            wall: AtomicU64::new(now),
            monotonic: AtomicU64::new(now),
        }
    }

    /// Moves the clock (wall and monotonic time) to `now`.
    pub fn set(&self, now: u64) {
        self.wall.store(now, Ordering::SeqCst);
        self.monotonic.store(now, Ordering::SeqCst);
    }

    /// Lets `secs` pass (wall and monotonic time).
    pub fn advance(&self, secs: u64) {
        self.wall.fetch_add(secs, Ordering::SeqCst);
        self.monotonic.fetch_add(secs, Ordering::SeqCst);
    }

    /// Steps the wall clock alone to `now` (an administrator or NTP setting
    /// the time): monotonic time does not move.
    pub fn step_wall(&self, now: u64) {
        self.wall.store(now, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn monotonic_secs(&self) -> u64 {
        self.monotonic.load(Ordering::SeqCst)
    }
}
