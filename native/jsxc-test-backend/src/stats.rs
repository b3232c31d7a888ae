//! Request counters, across all APIs served on the API listener.
//!
//! Every request is counted once on arrival, before any fault mode applies,
//! so that a test can see which backend was asked even while it misbehaves.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// A request, by API and operation. The sum of these is `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    /// JSXC `auth`.
    Auth,
    /// JSXC `isuser`.
    IsUser,
    /// JSXC `sharedroster`.
    SharedRoster,
    /// JSXC, any other operation.
    Other,
    /// JSON API `POST /json/login`.
    Login,
    /// JSON API `POST /json/exists`.
    Exists,
    /// OCS `GET cloud/user`.
    OcsUser,
    /// OCS `GET cloud/users/{id}`.
    OcsUsers,
    /// OCS `GET cloud/users/{id}/groups`.
    OcsGroups,
    /// OCS `GET cloud/groups/{g}/users/details`.
    OcsGroupMembers,
    /// OCS, a path not emulated (answered 404).
    OcsOther,
}

const REQ_NAMES: [&str; 11] = [
    "auth",
    "isuser",
    "sharedroster",
    "other",
    "login",
    "exists",
    "ocs_user",
    "ocs_users",
    "ocs_groups",
    "ocs_group_members",
    "ocs_other",
];

/// An outcome of a request already counted as a [`Req`]; not part of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// JSXC: missing or wrong signature.
    BadSignature,
    /// JSON API: missing or wrong bearer token (401).
    Unauthorized,
    /// JSON API: body not JSON or a field missing (400).
    BadRequest,
    /// OCS: basic-auth login failed (401, XML).
    OcsLoginFailed,
    /// OCS: no credentials at all (401, JSON).
    OcsNotLoggedIn,
    /// OCS: `OCS-APIRequest: true` missing (412).
    OcsCsrf,
    /// Throttle: failed logins recorded against a client address.
    ThrottleFailures,
    /// Throttle: requests that were delayed.
    ThrottleDelayed,
    /// Throttle: milliseconds slept in all, after scaling.
    ThrottleDelayMs,
    /// Throttle (Nextcloud 32/34): requests with credentials refused with
    /// 429 because the client address is blocked.
    ThrottleBlocked,
}

const EVENT_NAMES: [&str; 10] = [
    "bad_signature",
    "unauthorized",
    "bad_request",
    "ocs_login_failed",
    "ocs_not_logged_in",
    "ocs_csrf",
    "throttle_failures",
    "throttle_delayed",
    "throttle_delay_ms",
    "throttle_blocked",
];

/// All counters.
#[derive(Debug, Default)]
pub struct Stats {
    requests: [AtomicU64; REQ_NAMES.len()],
    events: [AtomicU64; EVENT_NAMES.len()],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// One API request being served; counted in `in_flight` until dropped (also
/// when the client goes away and the request's future is dropped early).
#[must_use]
pub struct Busy<'a>(&'a Stats);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    /// Counts a JSXC request for `operation`.
    pub fn count(&self, operation: &str) {
        self.request(match operation {
            "auth" => Req::Auth,
            "isuser" => Req::IsUser,
            "sharedroster" => Req::SharedRoster,
            _ => Req::Other,
        });
    }

    /// Counts a request.
    pub fn request(&self, r: Req) {
        self.requests[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an outcome.
    pub fn event(&self, e: Event) {
        self.add(e, 1);
    }

    /// Adds `n` to an outcome counter.
    pub fn add(&self, e: Event, n: u64) {
        self.events[e as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Marks a request as being served until the guard is dropped.
    pub fn enter(&self) -> Busy<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        Busy(self)
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut m = Map::new();
        for (name, c) in REQ_NAMES.iter().zip(&self.requests) {
            m.insert((*name).into(), g(c).into());
        }
        for (name, c) in EVENT_NAMES.iter().zip(&self.events) {
            m.insert((*name).into(), g(c).into());
        }
        m.insert(
            "total".into(),
            self.requests.iter().map(g).sum::<u64>().into(),
        );
        m.insert("in_flight".into(), g(&self.in_flight).into());
        m.insert("peak_in_flight".into(), g(&self.peak_in_flight).into());
        Value::Object(m)
    }

    /// Zeroes all counters; the peak restarts from the requests in flight now.
    pub fn reset(&self) {
        for c in self.requests.iter().chain(&self.events) {
            c.store(0, Ordering::Relaxed);
        }
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_variants() {
        // The last variant of each names the last slot: none lacks a name.
        assert_eq!(REQ_NAMES[Req::OcsOther as usize], "ocs_other");
        assert_eq!(REQ_NAMES.len(), Req::OcsOther as usize + 1);
        assert_eq!(
            EVENT_NAMES[Event::ThrottleBlocked as usize],
            "throttle_blocked"
        );
        assert_eq!(EVENT_NAMES.len(), Event::ThrottleBlocked as usize + 1);
    }

    #[test]
    fn total_counts_requests_not_events() {
        let s = Stats::default();
        s.count("auth");
        s.count("bogus");
        s.request(Req::IsUser);
        s.event(Event::BadSignature);
        let v = s.snapshot();
        assert_eq!(v["auth"], 1);
        assert_eq!(v["other"], 1);
        assert_eq!(v["isuser"], 1);
        assert_eq!(v["bad_signature"], 1);
        assert_eq!(v["total"], 3);
        s.reset();
        assert_eq!(s.snapshot()["total"], 0);
    }

    #[test]
    fn in_flight_and_peak() {
        let s = Stats::default();
        let a = s.enter();
        let b = s.enter();
        assert_eq!(s.snapshot()["in_flight"], 2);
        drop(a);
        drop(b);
        let v = s.snapshot();
        assert_eq!(
            (v["in_flight"].as_u64(), v["peak_in_flight"].as_u64()),
            (Some(0), Some(2))
        );
        s.reset();
        assert_eq!(s.snapshot()["peak_in_flight"], 0);
    }
}
