//! Counters for monitoring, rendered as OpenMetrics text: decisions by
//! protocol, operation, outcome and path; backend request latency; requests
//! in flight and waiting per backend host; coalesced requests; throttling
//! noticed. Recording is a few atomic adds or one short lock, small next to
//! the cheapest decision (a token check).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::decision::Decision;

// The counters the transport records are vocabulary; rendering them all is here.
pub use crate::vocab::counters::{BackendStats, Histogram, LATENCY_BUCKETS};

type RequestKey = (&'static str, &'static str, &'static str, &'static str);

/// Decisions, by protocol, operation, outcome and path.
#[derive(Debug, Default)]
pub struct Requests(Mutex<BTreeMap<RequestKey, u64>>);

impl Requests {
    /// Counts one decision.
    pub fn record(&self, protocol: &'static str, op: &'static str, d: &Decision) {
        let key = (protocol, op, d.verdict.word(), d.path.label());
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *m.entry(key).or_insert(0) += 1;
    }

    fn render(&self, out: &mut String) {
        let m = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let _ = writeln!(
            out,
            "# TYPE cloudauth_requests counter\n# HELP cloudauth_requests Decisions by protocol, operation, outcome (yes, no, trouble) and path (token, cache, backend, fallback, precheck, recent)."
        );
        for ((protocol, op, outcome, path), n) in m.iter() {
            let _ = writeln!(
                out,
                "cloudauth_requests_total{{protocol=\"{protocol}\",operation=\"{op}\",outcome=\"{outcome}\",path=\"{path}\"}} {n}"
            );
        }
        let hits: u64 = m
            .iter()
            .filter(|((_, _, outcome, path), _)| {
                *outcome == "yes" && matches!(*path, "cache" | "fallback")
            })
            .map(|(_, n)| *n)
            .sum();
        let _ = writeln!(
            out,
            "# TYPE cloudauth_cache_hits counter\n# HELP cloudauth_cache_hits Logins admitted by the password cache (fresh, or standing in for an unreachable backend).\ncloudauth_cache_hits_total {hits}"
        );
    }
}

/// One gauge or counter value for [`render`].
pub struct Sample<'a> {
    /// Metric name (without `_total`).
    pub name: &'a str,
    /// `gauge` or `counter`.
    pub kind: &'a str,
    /// One line of help.
    pub help: &'a str,
    /// `label="value"` pairs, already escaped, or empty.
    pub labels: String,
    /// The value.
    pub value: u64,
}

/// The whole exposition: decisions, backend latency and failures, and
/// `extra` samples (connections, requests in flight, coalesced, …), ending
/// with `# EOF` as OpenMetrics requires.
pub fn render(requests: &Requests, backend: &BackendStats, extra: &[Sample<'_>]) -> String {
    let mut out = String::new();
    requests.render(&mut out);
    let _ = writeln!(
        out,
        "# TYPE cloudauth_backend_request_seconds histogram\n# HELP cloudauth_backend_request_seconds Time of each backend request."
    );
    backend
        .latency
        .render(&mut out, "cloudauth_backend_request_seconds");
    for (name, help, v) in [
        (
            "cloudauth_backend_failures",
            "Backend requests that ended in trouble.",
            &backend.failures,
        ),
        (
            "cloudauth_backend_throttling_seen",
            "Times a backend was noticed throttling this server (Nextcloud's brute-force protection).",
            &backend.throttling_seen,
        ),
    ] {
        let _ = writeln!(
            out,
            "# TYPE {name} counter\n# HELP {name} {help}\n{name}_total {}",
            v.load(Ordering::Relaxed)
        );
    }
    let mut declared: Vec<&str> = Vec::new();
    for s in extra {
        if !declared.contains(&s.name) {
            declared.push(s.name);
            let _ = writeln!(
                out,
                "# TYPE {} {}\n# HELP {} {}",
                s.name, s.kind, s.name, s.help
            );
        }
        let suffix = if s.kind == "counter" { "_total" } else { "" };
        let labels = if s.labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", s.labels)
        };
        let _ = writeln!(out, "{}{suffix}{labels} {}", s.name, s.value);
    }
    out.push_str("# EOF\n");
    out
}

/// The exposition of one decision maker and its HTTP client: [`render`]
/// with requests in flight and waiting per backend host and coalesced
/// checks added to `extra` (an adapter's own samples, e.g. connections).
pub fn render_for(
    requests: &Requests,
    http: &crate::HttpClient,
    auth: &crate::Authenticator,
    mut extra: Vec<Sample<'static>>,
) -> String {
    for (backend, in_flight, waiting) in http.limits().snapshot() {
        let labels = format!("backend=\"{}\"", label_value(&backend));
        for (name, help, value) in [
            (
                "cloudauth_backend_in_flight",
                "Backend requests in flight, by backend host.",
                in_flight,
            ),
            (
                "cloudauth_backend_waiting",
                "Backend requests waiting for a place (cloud-concurrency), by backend host.",
                waiting,
            ),
        ] {
            extra.push(Sample {
                name,
                kind: "gauge",
                help,
                labels: labels.clone(),
                value: u64::try_from(value).unwrap_or(u64::MAX),
            });
        }
    }
    extra.extend(budget_samples());
    extra.push(Sample {
        name: "cloudauth_coalesced",
        kind: "counter",
        help: "Checks that joined an identical one in flight instead of asking the backend again.",
        labels: String::new(),
        value: auth.coalesced(),
    });
    render(requests, http.stats(), &extra)
}

/// The failure budgets of this process ([`crate::bruteforce`]), one set of
/// samples per Nextcloud.
fn budget_samples() -> Vec<Sample<'static>> {
    let mut samples = Vec::new();
    for budget in crate::bruteforce::FailureBudget::in_use() {
        let labels = format!("nextcloud=\"{}\"", label_value(budget.name()));
        let st = &budget.stats;
        for (name, kind, help, value) in [
            (
                "cloudauth_nextcloud_failures_caused",
                "counter",
                "Failed logins Nextcloud recorded for this server's address (its brute-force protection counts them).",
                st.failures_caused.load(Ordering::Relaxed),
            ),
            (
                "cloudauth_nextcloud_client_failures",
                "counter",
                "Failed logins Nextcloud recorded for forwarded client addresses (forward-client-address, honoured).",
                st.client_failures.load(Ordering::Relaxed),
            ),
            (
                "cloudauth_nextcloud_failures_counted",
                "gauge",
                "Failed logins counted within Nextcloud's 30-minute window (the failure budget spent).",
                u64::from(budget.report().failures),
            ),
            (
                "cloudauth_nextcloud_withheld",
                "counter",
                "Password checks not sent because the failure budget was spent.",
                st.withheld.load(Ordering::Relaxed),
            ),
            (
                "cloudauth_nextcloud_blocks_seen",
                "counter",
                "HTTP 429 answers: Nextcloud's brute-force protection blocking this server's address.",
                st.blocks_seen.load(Ordering::Relaxed),
            ),
            (
                "cloudauth_nextcloud_blocked",
                "counter",
                "Requests not sent during a block (one probe per 5 s goes).",
                st.blocked.load(Ordering::Relaxed),
            ),
        ] {
            samples.push(Sample {
                name,
                kind,
                help,
                labels: labels.clone(),
                value,
            });
        }
    }
    samples
}

/// A label value with `\`, `"` and newlines escaped.
pub(crate) fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Path, Verdict};
    use std::time::Duration;

    #[test]
    fn failure_budgets_are_on_the_metrics_page() {
        use crate::bruteforce::{FailureBudget, Outcome};
        let b = FailureBudget::for_nextcloud("https://metrics.test/", "metrics.test", 10, None)
            .unwrap();
        b.record("alice", None, Outcome::Failed);
        b.record("alice", None, Outcome::Blocked);
        let text = render(
            &Requests::default(),
            &BackendStats::default(),
            &budget_samples(),
        );
        for line in [
            "cloudauth_nextcloud_failures_caused_total{nextcloud=\"metrics.test\"} 1",
            "cloudauth_nextcloud_failures_counted{nextcloud=\"metrics.test\"} 1",
            "cloudauth_nextcloud_blocks_seen_total{nextcloud=\"metrics.test\"} 1",
            "cloudauth_nextcloud_withheld_total{nextcloud=\"metrics.test\"} 0",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn exposition_counts_and_buckets() {
        let r = Requests::default();
        let yes = Decision {
            verdict: Verdict::Yes,
            path: Path::Token,
            reason: None,
        };
        r.record("ejabberd", "auth", &yes);
        r.record("ejabberd", "auth", &yes);
        let cached = Decision {
            verdict: Verdict::Yes,
            path: Path::Cache,
            reason: None,
        };
        r.record("generic", "auth", &cached);
        let b = BackendStats::default();
        b.latency.observe(Duration::from_millis(400));
        b.latency.observe(Duration::from_secs(60));
        b.throttling_seen.fetch_add(1, Ordering::Relaxed);
        let text = render(
            &r,
            &b,
            &[Sample {
                name: "cloudauth_connections",
                kind: "gauge",
                help: "Open connections.",
                labels: "listener=\"ejabberd\"".into(),
                value: 3,
            }],
        );
        assert!(text.contains(
            "cloudauth_requests_total{protocol=\"ejabberd\",operation=\"auth\",outcome=\"yes\",path=\"token\"} 2"
        ));
        assert!(text.contains("cloudauth_cache_hits_total 1"));
        assert!(text.contains("cloudauth_backend_request_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("cloudauth_backend_request_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("cloudauth_backend_request_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("cloudauth_backend_request_seconds_count 2"));
        assert!(text.contains("cloudauth_backend_throttling_seen_total 1"));
        assert!(text.contains("cloudauth_connections{listener=\"ejabberd\"} 3"));
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(label_value("a\"b\\c"), "a\\\"b\\\\c");
    }
}
