//! Nextcloud's brute-force protection, for this backend: the failure
//! budget shared with the decision ([`crate::bruteforce`]), the public
//! capabilities that tell whether this address is allow-listed, and what
//! each reply to a request with credentials counts as.

use super::*;
use crate::bruteforce::{FailureBudget, Outcome};

impl Nextcloud {
    /// The same, keeping the failed logins it causes below `max_attempts`
    /// less [`crate::bruteforce::HEADROOM`] (shared with every backend for
    /// this Nextcloud in the process, and through the state database `db`
    /// with the other processes using it).
    pub fn with_failure_budget(mut self, max_attempts: u32, db: Option<&std::path::Path>) -> Self {
        self.budget =
            FailureBudget::for_nextcloud(self.base.as_str(), &shown(&self.base), max_attempts, db);
        self
    }

    /// Reads `cloud/capabilities` (public, no login) when due: whether
    /// Nextcloud allow-lists this address and the delay it would apply.
    pub(super) async fn read_capabilities_if_due(&self) {
        let Some(budget) = &self.budget else { return };
        if !budget.capabilities_due() {
            return;
        }
        match self.public_get(&self.capabilities).await {
            Ok(reply) if reply.status == 200 => match bruteforce_capabilities(&reply.body) {
                Some((allow_listed, delay)) => budget.capabilities(allow_listed, delay),
                None => debug!(
                    "Nextcloud at {}: its capabilities tell nothing of brute-force protection",
                    shown(&self.base)
                ),
            },
            Ok(reply) => debug!(
                "Nextcloud at {}: capabilities answered HTTP {}",
                shown(&self.base),
                reply.status
            ),
            Err(e) => debug!("Nextcloud at {}: capabilities: {e}", shown(&self.base)),
        }
    }

    /// Sends a request with `login`'s credentials through the failure
    /// budget's block watch, and counts what Nextcloud made of it.
    pub(super) async fn send_counted(
        &self,
        login: &str,
        request: reqwest::RequestBuilder,
        url: &reqwest::Url,
    ) -> Result<HttpReply, BackendError> {
        let Some(budget) = &self.budget else {
            return self.http.send(request, url).await;
        };
        // During a block only one probe per interval; the rest is the
        // block's trouble without asking.
        if budget.may_send().is_err() {
            return Err(BackendError::Blocked { host: host_of(url) });
        }
        let reply = self.http.send(request, url).await?;
        budget.record(login, login_outcome(&reply));
        Ok(reply)
    }
}

/// `bruteforce.allow-listed` and `bruteforce.delay` (ms) of a capabilities
/// reply; `allow-listed` is missing before Nextcloud 28 (then: not listed).
pub fn bruteforce_capabilities(body: &[u8]) -> Option<(bool, u64)> {
    let (allow_listed, delay) = bruteforce_fields(&ocs_data(body).ok()?)?;
    Some((allow_listed, delay?))
}

/// `capabilities.bruteforce` of a capabilities reply's `ocs.data`:
/// `allow-listed` (missing before Nextcloud 28: not listed) and `delay` in
/// ms; `None` when Nextcloud publishes neither. Read by the failure budget
/// and by `doctor`.
pub(super) fn bruteforce_fields(data: &Value) -> Option<(bool, Option<u64>)> {
    let bf = data.get("capabilities")?.get("bruteforce")?;
    let allow_listed = bf
        .get("allow-listed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some((allow_listed, bf.get("delay").and_then(Value::as_u64)))
}

/// What Nextcloud's brute-force protection made of a request with
/// credentials: 429 (HTTP or OCS; on 25–28 an HTTP 500 "Reached maximum
/// delay") is its block; 401 "Current user is not logged in" (a two-factor
/// account, no credentials) is not recorded; any other 401 is.
pub fn login_outcome(reply: &HttpReply) -> Outcome {
    if is_blocked(reply) {
        return Outcome::Blocked;
    }
    match reply.status {
        200..=299 => Outcome::Accepted,
        401 if ocs_message(&reply.body).as_deref() == Some(NOT_LOGGED_IN) => Outcome::NotCounted,
        401 => Outcome::Failed,
        _ => Outcome::NotCounted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &[u8]) -> HttpReply {
        HttpReply {
            status,
            content_type: "application/json".into(),
            body: body.to_vec(),
            elapsed: Duration::ZERO,
            date: None,
        }
    }

    #[test]
    fn what_the_brute_force_protection_counts() {
        let ocs = |code: u32, msg: &str| {
            format!(
                r#"{{"ocs":{{"meta":{{"status":"failure","statuscode":{code},"message":"{msg}"}},"data":[]}}}}"#
            )
        };
        let cases = [
            (200, ocs(100, "OK"), Outcome::Accepted),
            (401, ocs(997, "Unauthorised"), Outcome::Failed),
            (
                401,
                "<?xml version=\"1.0\"?><ocs><meta><statuscode>997</statuscode><message>Unauthorised</message></meta></ocs>".into(),
                Outcome::Failed,
            ),
            (401, ocs(997, "Current user is not logged in"), Outcome::NotCounted),
            (429, ocs(429, "Reached maximum delay"), Outcome::Blocked),
            (429, "<ocs><meta><statuscode>429</statuscode></meta></ocs>".into(), Outcome::Blocked),
            (500, "Reached maximum delay".into(), Outcome::Blocked),
            (404, ocs(998, ""), Outcome::NotCounted),
            (412, r#"{"message":"CSRF check failed"}"#.into(), Outcome::NotCounted),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                login_outcome(&reply(status, body.as_bytes())),
                want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn brute_force_capabilities() {
        let caps = |bf: &str| {
            format!(
                r#"{{"ocs":{{"meta":{{"statuscode":200}},"data":{{"version":{{}},"capabilities":{{"core":{{}},"bruteforce":{bf}}}}}}}}}"#
            )
        };
        assert_eq!(
            bruteforce_capabilities(caps(r#"{"delay":400,"allow-listed":false}"#).as_bytes()),
            Some((false, 400))
        );
        assert_eq!(
            bruteforce_capabilities(caps(r#"{"delay":0,"allow-listed":true}"#).as_bytes()),
            Some((true, 0))
        );
        // Nextcloud 24: no allow-listed field.
        assert_eq!(
            bruteforce_capabilities(caps(r#"{"delay":0}"#).as_bytes()),
            Some((false, 0))
        );
        assert_eq!(bruteforce_capabilities(b"{}"), None);
    }
}
