//! Nextcloud's brute-force protection, for this backend: the failure
//! budget shared with the decision ([`crate::bruteforce`]), the public
//! capabilities that tell whether this address is allow-listed, and what
//! each reply to a request with credentials counts as.

use std::net::IpAddr;

use super::*;
use crate::bruteforce::{forwarding_evidence, FailureBudget, Forwarding, Outcome};

/// The header Nextcloud takes the client's address from, when the request
/// comes from one of its `trusted_proxies`.
const X_FORWARDED_FOR: &str = "X-Forwarded-For";

impl Nextcloud {
    /// The same, keeping the failed logins it causes below `max_attempts`
    /// less [`crate::bruteforce::HEADROOM`] (shared with every backend for
    /// this Nextcloud in the process, and through the state database `db`
    /// with the other processes using it).
    pub(crate) fn with_failure_budget(
        mut self,
        max_attempts: u32,
        db: Option<&std::path::Path>,
    ) -> Self {
        self.budget =
            FailureBudget::for_nextcloud(self.base.as_str(), &shown(&self.base), max_attempts, db);
        self
    }

    /// Sends the client's address as `X-Forwarded-For` on users' password
    /// checks (`forward-client-address`); whether Nextcloud honours it is
    /// found out from its capabilities.
    pub(crate) fn with_client_address_forwarding(mut self, on: bool) -> Self {
        self.forward_client = on;
        if on {
            if let Some(b) = &self.budget {
                b.forward_client_addresses();
            }
        }
        self
    }

    /// The client address to send with a user's password check: only with
    /// `forward-client-address` on.
    pub(super) fn forwarded(&self, client: Option<IpAddr>) -> Option<IpAddr> {
        client.filter(|_| self.forward_client)
    }

    /// Whether Nextcloud counts failures for the forwarded address, as
    /// found out so far ([`Forwarding::Off`] with the setting off).
    pub(crate) fn forwarding(&self) -> Forwarding {
        match (&self.budget, self.forward_client) {
            (_, false) => Forwarding::Off,
            (Some(b), true) => b.forwarding(),
            (None, true) => Forwarding::Unknown,
        }
    }

    /// Reads `cloud/capabilities` (public, no login) when due: whether
    /// Nextcloud allow-lists this address and the delay it would apply,
    /// and, with forwarding on, whether it honours `X-Forwarded-For`.
    pub(super) async fn read_capabilities_if_due(&self) {
        let Some(budget) = &self.budget else { return };
        if !budget.capabilities_due() {
            return;
        }
        self.read_capabilities(budget).await;
    }

    /// Reads the capabilities now (at start, and when due).
    pub(super) async fn read_capabilities(&self, budget: &FailureBudget) {
        let Some(own) = self.bruteforce_state(None).await else {
            return;
        };
        // Before the server's own figures: once it is honoured, those
        // correct a failure that was counted here meanwhile.
        self.probe_forwarding(budget, own).await;
        budget.capabilities(own.0, own.1);
    }

    /// Compares this server's brute-force state with a forwarded address's
    /// (a client's that failed meanwhile, else a documentation address).
    async fn probe_forwarding(&self, budget: &FailureBudget, own: (bool, u64)) {
        if !self.forward_client {
            return;
        }
        let Some(probe) = budget.forwarding_probe() else {
            return;
        };
        if let Some(forwarded) = self.bruteforce_state(Some(probe)).await {
            budget.forwarding_found(forwarding_evidence(own, forwarded));
        }
    }

    /// A request without credentials (never a failed login), with
    /// `forwarded` as the client's address when given (the capabilities
    /// as Nextcloud would answer them for that client).
    pub(super) async fn public_get(
        &self,
        url: &reqwest::Url,
        forwarded: Option<IpAddr>,
    ) -> Result<HttpReply, BackendError> {
        let mut request = self
            .http
            .request(reqwest::Method::GET, url)?
            .header(OCS_API_REQUEST, "true")
            .header(ACCEPT, "application/json");
        if let Some(ip) = forwarded {
            request = request.header(X_FORWARDED_FOR, ip.to_string());
        }
        self.http.send(request, url).await
    }

    /// `bruteforce` (allow-listed, delay) of the capabilities, for this
    /// server or, with `forwarded`, as sent for that client; `None` when
    /// Nextcloud did not tell (logged at debug: the checks go on).
    pub(super) async fn bruteforce_state(&self, forwarded: Option<IpAddr>) -> Option<(bool, u64)> {
        let url = &self.capabilities;
        match self.public_get(url, forwarded).await {
            Ok(reply) if reply.status == 200 => {
                let state = bruteforce_capabilities(&reply.body);
                if state.is_none() {
                    debug!(
                        "Nextcloud at {}: its capabilities tell nothing of brute-force protection",
                        shown(&self.base)
                    );
                }
                state
            }
            Ok(reply) => {
                debug!(
                    "Nextcloud at {}: capabilities answered HTTP {}",
                    shown(&self.base),
                    reply.status
                );
                None
            }
            Err(e) => {
                debug!("Nextcloud at {}: capabilities: {e}", shown(&self.base));
                None
            }
        }
    }

    /// Sends a request with `login`'s credentials through the failure
    /// budget's block watch, and counts what Nextcloud made of it.
    ///
    /// With `client` (a user's password check, forwarding on) the request
    /// carries it as `X-Forwarded-For`; the service account's requests
    /// never do (they are this server's own).
    pub(super) async fn send_counted(
        &self,
        login: &str,
        client: Option<IpAddr>,
        request: reqwest::RequestBuilder,
        url: &reqwest::Url,
    ) -> Result<HttpReply, BackendError> {
        let request = match client {
            Some(ip) => request.header(X_FORWARDED_FOR, ip.to_string()),
            None => request,
        };
        let Some(budget) = &self.budget else {
            return self.http.send(request, url).await;
        };
        // During a block only one probe per interval; the rest is the
        // block's trouble without asking.
        if budget.may_send(client).is_err() {
            return Err(BackendError::Blocked { host: host_of(url) });
        }
        let reply = self.http.send(request, url).await?;
        budget.record(login, client, login_outcome(&reply));
        // Not known yet whether Nextcloud counted that failure for the
        // client: its capabilities for that address tell.
        if budget.forwarding_probe_wanted() {
            if let Some(own) = self.bruteforce_state(None).await {
                self.probe_forwarding(budget, own).await;
                budget.capabilities(own.0, own.1);
            }
        }
        Ok(reply)
    }
}

/// `bruteforce.allow-listed` and `bruteforce.delay` (ms) of a capabilities
/// reply; `allow-listed` is missing before Nextcloud 28 (then: not listed).
pub(crate) fn bruteforce_capabilities(body: &[u8]) -> Option<(bool, u64)> {
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
pub(crate) fn login_outcome(reply: &HttpReply) -> Outcome {
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
