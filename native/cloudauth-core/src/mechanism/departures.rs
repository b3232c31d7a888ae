//! Accounts the account sweep found gone (deleted or disabled in the
//! backend), kept for a while with a version that only grows, so that a
//! server polling for them (Prosody's module, which has no other way to
//! learn of them) closes their sessions: it asks for the departures since
//! the version it last saw.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Most departures kept; older ones go first. A poller further behind is
/// told its answer is incomplete.
pub const MAX_DEPARTURES: usize = 10_000;

/// The departures since a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    /// JIDs departed since the version asked about, oldest first.
    pub jids: Vec<String>,
    /// The version to ask from next time.
    pub version: u64,
    /// False when departures after the version asked about were dropped
    /// (the log is bounded) or the version is not one this log gave.
    pub complete: bool,
}

/// The bounded log of departures.
pub struct DepartureLog {
    inner: Mutex<Log>,
}

struct Log {
    /// The version of the newest entry (the starting version while empty).
    version: u64,
    /// The version the log started from: versions at or above it are this log's.
    start: u64,
    entries: VecDeque<(u64, String)>,
}

impl DepartureLog {
    /// An empty log starting at `start` (the wall clock in milliseconds, so
    /// that a restarted process's versions are above the ones it gave before).
    pub fn new(start: u64) -> Self {
        DepartureLog {
            inner: Mutex::new(Log {
                version: start,
                start,
                entries: VecDeque::new(),
            }),
        }
    }

    /// Records that `jid` departed; returns the new version.
    pub fn record(&self, jid: &str) -> u64 {
        let Ok(mut log) = self.inner.lock() else {
            return 0;
        };
        log.version += 1;
        let v = log.version;
        if log.entries.len() >= MAX_DEPARTURES {
            log.entries.pop_front();
        }
        log.entries.push_back((v, jid.to_string()));
        v
    }

    /// The current version (what a poller that wants only new departures starts from).
    pub fn version(&self) -> u64 {
        self.inner.lock().map_or(0, |l| l.version)
    }

    /// Departures after `version`, of `domain` only when given, at most
    /// `limit` of them: the version answered is then the last one given,
    /// so that asking again from it yields the rest.
    pub fn since(&self, version: u64, domain: Option<&str>, limit: usize) -> Departed {
        let Ok(log) = self.inner.lock() else {
            return Departed {
                jids: Vec::new(),
                version,
                complete: false,
            };
        };
        let ours = version >= log.start && version <= log.version;
        let oldest = log.entries.front().map_or(log.version, |(v, _)| v - 1);
        let of_domain =
            |jid: &str| domain.is_none_or(|d| jid.rsplit_once('@').is_some_and(|(_, jd)| jd == d));
        let mut jids = Vec::new();
        let mut answered = log.version;
        for (v, jid) in log.entries.iter().filter(|(v, _)| !ours || *v > version) {
            if !of_domain(jid) {
                continue;
            }
            if jids.len() == limit {
                answered = v - 1;
                break;
            }
            jids.push(jid.clone());
        }
        Departed {
            jids,
            version: answered,
            complete: ours && version >= oldest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl DepartureLog {
        fn since_all(&self, version: u64, domain: Option<&str>) -> Departed {
            self.since(version, domain, usize::MAX)
        }
    }

    #[test]
    fn a_limited_answer_continues_from_its_version() {
        let log = DepartureLog::new(0);
        for i in 0..5 {
            log.record(&format!("u{i}@x"));
        }
        let first = log.since(0, None, 2);
        assert_eq!(first.jids, ["u0@x", "u1@x"]);
        let rest = log.since(first.version, None, 10);
        assert_eq!(rest.jids, ["u2@x", "u3@x", "u4@x"]);
        assert!(rest.complete && rest.version == log.version());
    }

    #[test]
    fn versions_grow_and_answers_are_since_a_version() {
        let log = DepartureLog::new(1000);
        assert_eq!(log.version(), 1000);
        let empty = log.since_all(1000, None);
        assert!(empty.jids.is_empty() && empty.complete);
        let v1 = log.record("a@x");
        let v2 = log.record("b@y");
        assert!(v2 > v1 && v1 > 1000);
        assert_eq!(log.since_all(1000, None).jids, ["a@x", "b@y"]);
        assert_eq!(log.since_all(v1, None).jids, ["b@y"]);
        assert_eq!(log.since_all(1000, Some("x")).jids, ["a@x"]);
        let now = log.since_all(v2, None);
        assert!(now.jids.is_empty() && now.complete && now.version == v2);
        // A version this log did not give (another process's, or a future
        // one): everything kept, marked incomplete.
        let foreign = log.since_all(5, None);
        assert_eq!(foreign.jids.len(), 2);
        assert!(!foreign.complete);
        assert!(!log.since_all(v2 + 10, None).complete);
    }

    #[test]
    fn bounded_and_says_when_entries_were_dropped() {
        let log = DepartureLog::new(0);
        for i in 0..MAX_DEPARTURES + 5 {
            log.record(&format!("u{i}@x"));
        }
        let all = log.since_all(0, None);
        assert_eq!(all.jids.len(), MAX_DEPARTURES);
        assert!(!all.complete, "5 were dropped");
        let recent = log.since_all(all.version - 1, None);
        assert_eq!(recent.jids.len(), 1);
        assert!(recent.complete);
    }
}
