//! Password guessing, slowed down per user.
//!
//! After `failures` *different* wrong passwords the backend refused for one
//! user within `window`, further password checks for that user are answered
//! "cannot tell" without asking the backend (or running bcrypt) for a pause: 1 s after
//! the last refusal, doubling with every further refusal, at most
//! `max_delay` (whole seconds from the end of the second of the refusal:
//! time is counted in seconds, and a pause is never shorter than it says).
//! Times are the process's monotonic seconds ([`crate::Clock::monotonic_secs`]):
//! a wall clock stepped back does not lengthen a pause. What keeps a user
//! from being locked out:
//!
//! * only refusals by the backend count, never trouble (so "cannot tell" is
//!   never turned into "no"), never the throttle's own answers: a pause ends
//!   `max_delay` (+1 s) after the last real refusal at the latest, and a right
//!   password then gets through;
//! * the same wrong password counts once (a client retrying a stale password
//!   every few seconds does not pause its user's other devices);
//! * tokens and password-cache hits are decided before the throttle;
//! * the password the backend last accepted for the user is never paused
//!   (a keyed digest of it is kept, compared in constant time): an attacker
//!   sending one new guess per pause cannot keep the real user out, since
//!   the attacker cannot produce that password;
//! * a password the backend accepts that is not the last accepted one (a
//!   first login, a changed password) forgets the user's refusals; the last
//!   accepted one again does not, or every routine login of the real user
//!   would hand the attacker a fresh set of guesses.
//!
//! Checks in flight count too: at most as many different passwords per user
//! are in flight at once as refusals are left before the limit (at least
//! one), so that a burst of concurrent guesses cannot all reach the backend
//! before the first refusal is counted. The same password checked many times
//! at once (a client reconnecting) takes one place: such checks share one
//! backend request anyway. Only keyed digests of passwords are kept, for at most
//! [`MAX_USERS`] users.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::digest::{Digester, PairDigest};

/// Most users tracked at once; beyond it the one refused longest ago is forgotten.
pub(crate) const MAX_USERS: usize = 10_000;
/// Different wrong passwords remembered per user (enough to count past any sane limit).
const MAX_PASSWORDS: usize = 64;

/// When the throttle pauses a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Different wrong passwords within `window` before pauses begin; 0 turns the throttle off.
    pub failures: u32,
    /// How long a refusal counts.
    pub window: Duration,
    /// Longest pause after the last refusal.
    pub max_delay: Duration,
}

#[derive(Default)]
struct Record {
    /// Different wrong passwords and when each was last refused (Unix seconds).
    refused: Vec<(PairDigest, u64)>,
    /// Different passwords being checked, and how many checks of each.
    in_flight: Vec<(PairDigest, u32)>,
    /// The password the backend accepted last.
    last_accepted: Option<PairDigest>,
}

impl Record {
    fn forget_older_than(&mut self, window: u64, now: u64) {
        self.refused
            .retain(|(_, t)| t.saturating_add(window) >= now);
    }

    fn last_refusal(&self) -> u64 {
        self.refused.iter().map(|(_, t)| *t).max().unwrap_or(0)
    }
}

/// Wrong passwords per user, and the pauses they earn.
pub(crate) struct FailureThrottle {
    settings: ThrottleSettings,
    digester: Digester,
    users: Mutex<HashMap<String, Record>>,
}

/// What the throttle knows of a user ([`FailureThrottle::standing`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    /// Different wrong passwords within the window.
    pub refused: usize,
    /// Whether the backend accepted a password for the user.
    pub accepted_before: bool,
}

/// A check let through: counted as in flight until dropped.
pub(crate) struct Attempt<'a> {
    throttle: &'a FailureThrottle,
    key: String,
    digest: Option<PairDigest>,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let Some(digest) = self.digest else { return };
        if let Ok(mut users) = self.throttle.users.lock() {
            if let Some(r) = users.get_mut(&self.key) {
                if let Some(i) = r.in_flight.iter().position(|(d, _)| d.ct_eq(&digest)) {
                    r.in_flight[i].1 -= 1;
                    if r.in_flight[i].1 == 0 {
                        r.in_flight.swap_remove(i);
                    }
                }
            }
        }
    }
}

impl FailureThrottle {
    /// A throttle with `settings`; `None` when it is off (`failures` 0) or
    /// there is no OS randomness for the digest key.
    pub fn new(settings: ThrottleSettings) -> Option<Self> {
        if settings.failures == 0 {
            return None;
        }
        Some(FailureThrottle {
            settings,
            digester: Digester::random()?,
            users: Mutex::default(),
        })
    }

    /// The pause earned by `refusals` different wrong passwords.
    fn pause(&self, refusals: usize) -> u64 {
        let over = refusals.saturating_sub(self.settings.failures as usize);
        let doubled = u32::try_from(over)
            .ok()
            .and_then(|n| 1u64.checked_shl(n))
            .unwrap_or(u64::MAX);
        doubled.min(self.settings.max_delay.as_secs().max(1))
    }

    /// Lets a check of `password` for `key` (a user) through at `now`, or
    /// says until when (Unix seconds) its checks are paused.
    pub fn attempt(&self, key: &str, password: &str, now: u64) -> Result<Attempt<'_>, u64> {
        let limit = self.settings.failures as usize;
        let digest = self.digester.digest(key, password);
        let Ok(mut users) = self.users.lock() else {
            // A poisoned lock must not lock anyone out.
            return Ok(Attempt {
                throttle: self,
                key: String::new(),
                digest: None,
            });
        };
        if !users.contains_key(key) {
            self.make_room(&mut users, now);
        }
        let r = users.entry(key.to_string()).or_default();
        if r.last_accepted.is_some_and(|d| d.ct_eq(&digest)) {
            // The user's own password is never held back (nor counted in
            // flight: it is no guess).
            return Ok(Attempt {
                throttle: self,
                key: String::new(),
                digest: None,
            });
        }
        r.forget_older_than(self.settings.window.as_secs(), now);
        let n = r.refused.len();
        if n >= limit {
            // The first second the pause is over.
            let until = r.last_refusal().saturating_add(self.pause(n) + 1);
            if now < until {
                return Err(until);
            }
        }
        match r.in_flight.iter_mut().find(|(d, _)| d.ct_eq(&digest)) {
            Some(same) => same.1 += 1,
            None => {
                let room = limit.saturating_sub(n).max(1);
                if r.in_flight.len() >= room {
                    return Err(now.saturating_add(1));
                }
                r.in_flight.push((digest, 1));
            }
        }
        Ok(Attempt {
            throttle: self,
            key: key.to_string(),
            digest: Some(digest),
        })
    }

    /// What is known of `key` at `now`: refusals within the window, and
    /// whether the backend ever accepted a password.
    pub fn standing(&self, key: &str, now: u64) -> Standing {
        let window = self.settings.window.as_secs();
        let Ok(users) = self.users.lock() else {
            return Standing::default();
        };
        users.get(key).map_or_else(Standing::default, |r| Standing {
            refused: r
                .refused
                .iter()
                .filter(|(_, t)| t.saturating_add(window) >= now)
                .count(),
            accepted_before: r.last_accepted.is_some(),
        })
    }

    /// The backend refused `password` for `key` at `now`.
    pub fn refused(&self, key: &str, password: &str, now: u64) {
        let window = self.settings.window.as_secs();
        self.update(key, password, now, |r, digest| {
            r.forget_older_than(window, now);
            match r.refused.iter_mut().find(|(d, _)| d.ct_eq(&digest)) {
                Some(seen) => seen.1 = now,
                None => {
                    if r.refused.len() >= MAX_PASSWORDS {
                        if let Some(oldest) = (0..r.refused.len()).min_by_key(|i| r.refused[*i].1) {
                            r.refused.swap_remove(oldest);
                        }
                    }
                    r.refused.push((digest, now));
                }
            }
        });
    }

    /// The backend accepted `password` for `key` at `now`: it is never
    /// paused from now on and, unless it was the last accepted one already,
    /// the user's refusals are forgotten.
    pub fn admitted(&self, key: &str, password: &str, now: u64) {
        self.update(key, password, now, |r, digest| {
            if !r.last_accepted.is_some_and(|d| d.ct_eq(&digest)) {
                r.last_accepted = Some(digest);
                r.refused.clear();
            }
        });
    }

    /// Runs `change` on `key`'s record (made, with room for it, if new)
    /// with the digest of (`key`, `password`).
    fn update(
        &self,
        key: &str,
        password: &str,
        now: u64,
        change: impl FnOnce(&mut Record, PairDigest),
    ) {
        let digest = self.digester.digest(key, password);
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        if !users.contains_key(key) {
            self.make_room(&mut users, now);
        }
        change(users.entry(key.to_string()).or_default(), digest);
    }

    /// Keeps the table within [`MAX_USERS`]: first users whose refusals are
    /// all older than the window, then the one refused longest ago.
    fn make_room(&self, users: &mut HashMap<String, Record>, now: u64) {
        if users.len() < MAX_USERS {
            return;
        }
        let window = self.settings.window.as_secs();
        users.retain(|_, r| {
            !r.in_flight.is_empty()
                || r.refused
                    .iter()
                    .any(|(_, t)| t.saturating_add(window) >= now)
        });
        if users.len() >= MAX_USERS {
            let oldest = users
                .iter()
                .min_by_key(|(_, r)| r.last_refusal())
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                users.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(failures: u32) -> FailureThrottle {
        FailureThrottle::new(ThrottleSettings {
            failures,
            window: Duration::from_secs(600),
            max_delay: Duration::from_secs(60),
        })
        .unwrap()
    }

    /// One refused guess at `now`, through the attempt gate; false when paused.
    fn guess(t: &FailureThrottle, key: &str, pw: &str, now: u64) -> bool {
        match t.attempt(key, pw, now) {
            Ok(_attempt) => {
                t.refused(key, pw, now);
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn off_at_zero() {
        assert!(FailureThrottle::new(ThrottleSettings {
            failures: 0,
            ..ThrottleSettings::default()
        })
        .is_none());
    }

    #[test]
    fn pauses_double_up_to_the_maximum_and_end() {
        let t = throttle(3);
        for (i, pw) in ["a", "b", "c"].iter().enumerate() {
            assert!(
                guess(&t, "u", pw, 1000 + i as u64),
                "guess {pw} before the limit"
            );
        }
        // 3 refusals, the last at 1002: paused 1 s, from the end of that second.
        assert_eq!(t.attempt("u", "probe", 1002).err(), Some(1004));
        assert_eq!(t.attempt("u", "probe", 1003).err(), Some(1004));
        assert!(guess(&t, "u", "d", 1004));
        // 4: paused 2 s after 1004.
        assert_eq!(t.attempt("u", "probe", 1005).err(), Some(1007));
        assert!(guess(&t, "u", "e", 1007));
        assert_eq!(t.attempt("u", "probe", 1008).err(), Some(1012), "4 s");
        let mut now = 1012;
        for pw in 0..10 {
            assert!(guess(&t, "u", &format!("x{pw}"), now));
            now = t.attempt("u", "probe", now).err().unwrap();
        }
        let last = now;
        assert!(guess(&t, "u", "y", last));
        assert_eq!(
            t.attempt("u", "probe", last).err(),
            Some(last + 61),
            "capped"
        );
        // Throttled answers do not extend the pause: right after it, a check goes through.
        for s in 0..61 {
            assert!(t.attempt("u", "probe", last + s).is_err());
        }
        assert!(t.attempt("u", "probe", last + 61).is_ok());
        // Other users are not affected.
        assert!(t.attempt("v", "probe", last).is_ok());
    }

    #[test]
    fn the_same_wrong_password_counts_once() {
        let t = throttle(3);
        for s in 0..100 {
            assert!(guess(&t, "u", "stale", 1000 + s * 5), "retry {s}");
        }
        assert!(t.attempt("u", "probe", 2000).is_ok());
    }

    #[test]
    fn refusals_older_than_the_window_are_forgotten() {
        let t = throttle(2);
        assert!(guess(&t, "u", "a", 1000));
        assert!(guess(&t, "u", "b", 1000));
        assert!(t.attempt("u", "probe", 1000).is_err());
        assert!(t.attempt("u", "probe", 1000 + 601).is_ok());
        assert!(guess(&t, "u", "c", 1000 + 602));
        assert!(
            t.attempt("u", "probe", 1000 + 602).is_ok(),
            "one refusal in the window"
        );
    }

    #[test]
    fn a_right_password_forgets_the_refusals() {
        let t = throttle(2);
        assert!(guess(&t, "u", "a", 1000));
        assert!(guess(&t, "u", "b", 1000));
        t.admitted("u", "right", 1000);
        assert!(t.attempt("u", "probe", 1000).is_ok());
    }

    /// Issue 24: an attacker sending one new guess per pause kept the user
    /// paused for good; the victim's right password got through 0 of 60
    /// times. The password last accepted is never paused, and logging in
    /// with it again does not give the attacker a fresh set of guesses.
    #[test]
    fn the_last_accepted_password_is_never_paused() {
        let t = throttle(3);
        t.admitted("u", "right", 900);
        let mut now = 1000;
        let mut through = 0;
        for i in 0..60 {
            // The attacker: one new guess as soon as the pause ends.
            while t.attempt("u", "probe", now).is_err() {
                now += 1;
            }
            assert!(guess(&t, "u", &format!("guess-{i}"), now));
            // The victim, right after it: paused users are the attacker's aim.
            if let Ok(attempt) = t.attempt("u", "right", now) {
                drop(attempt);
                t.admitted("u", "right", now);
                through += 1;
            }
        }
        assert_eq!(through, 60, "the victim's password got through every time");
        assert!(
            t.attempt("u", "another-guess", now).is_err(),
            "the victim's logins did not reset the attacker's count"
        );
        // A new right password (changed) forgets the refusals.
        t.admitted("u", "changed", now);
        assert!(t.attempt("u", "probe", now).is_ok());
        // Another user's last accepted password is not this one's.
        assert!(guess(&t, "v", "a", now));
        assert!(guess(&t, "v", "b", now));
        assert!(guess(&t, "v", "c", now));
        assert!(t.attempt("v", "right", now).is_err());
    }

    #[test]
    fn in_flight_different_passwords_count_the_same_one_once() {
        let t = throttle(3);
        let a = t.attempt("u", "a", 1000).unwrap();
        let b = t.attempt("u", "b", 1000).unwrap();
        let c = t.attempt("u", "c", 1000).unwrap();
        // Three different passwords in flight: as many as refusals are left.
        assert!(t.attempt("u", "d", 1000).is_err());
        // The same password again shares its place.
        let again: Vec<_> = (0..10)
            .map(|_| t.attempt("u", "a", 1000).unwrap())
            .collect();
        drop((a, b, c, again));
        assert!(t.attempt("u", "d", 1000).is_ok());
        // Two refusals: one place left.
        t.refused("u", "a", 1000);
        t.refused("u", "b", 1000);
        let e = t.attempt("u", "e", 1000).unwrap();
        assert!(t.attempt("u", "f", 1000).is_err());
        drop(e);
    }

    #[test]
    fn the_table_is_bounded() {
        let t = throttle(3);
        for i in 0..MAX_USERS + 50 {
            assert!(guess(&t, &format!("u{i}"), "pw", 1000 + i as u64));
        }
        assert!(t.users.lock().unwrap().len() <= MAX_USERS);
    }
}
