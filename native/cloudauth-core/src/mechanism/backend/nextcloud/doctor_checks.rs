//! The backend's own checks for `cloudauth doctor`.

use super::*;
use crate::bruteforce::{forwarding_evidence, Forwarding, PROBE_ADDRESS};

impl Nextcloud {
    /// Without credentials, `cloud/user`: Nextcloud's OCS API answers 401
    /// "not logged in" in its own envelope, which tells it is there without
    /// a login the brute-force throttle could count. Then, with a service
    /// account, that account's own record: it logs in, has the rights, and
    /// how long its login took (the throttle delays logins only).
    pub(super) async fn doctor_op(&self) -> BackendReport {
        const API: &str = "OCS API";
        let mut report = BackendReport::default();
        let base = shown(&self.base);
        let url = &self.current_user;
        let request = self.http.request(reqwest::Method::GET, url).map(|r| {
            r.header(OCS_API_REQUEST, "true")
                .header(ACCEPT, "application/json")
        });
        let reply = match request {
            Ok(r) => self.http.send(r, url).await,
            Err(e) => Err(e),
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                report.checks.push(Check::fail(
                    API,
                    format!("no answer from {}: {e}", shown(url)),
                    "check url and that Nextcloud is up",
                ));
                return report;
            }
        };
        report.date = reply.date;
        let is_ocs = ocs_statuscode(&reply.body).is_some() || reply.body.starts_with(b"<ocs>");
        match reply.status {
            401 if is_ocs => report.checks.push(Check::pass(
                API,
                format!(
                    "Nextcloud answers at {} (not logged in, as asked) in {}",
                    shown(url),
                    doctor::took(reply.elapsed)
                ),
            )),
            412 => {
                report.checks.push(Check::fail(
                    API,
                    csrf_stripped().to_string(),
                    "configure the proxy in front of Nextcloud to pass the OCS-APIRequest header",
                ));
                return report;
            }
            status => {
                report.checks.push(Check::fail(
                    API,
                    format!(
                        "no Nextcloud OCS API under {base}: {} answered HTTP {status}, {}",
                        shown(url),
                        reply.shape()
                    ),
                    "url must be Nextcloud's base URL (where /ocs/v2.php lives), e.g. https://cloud.example.org or https://example.org/nextcloud",
                ));
                return report;
            }
        }
        // Nextcloud 25 on publishes the brute-force state and blocks
        // instead of delaying: the latency watch below is for 24.
        let bruteforce_known = self.doctor_public(&mut report).await;
        report.checks.push(self.doctor_forwarding().await);
        let Some(service) = &self.service else {
            report.checks.push(Check::pass(
                "service account",
                "none: passwords only; isuser cannot tell and the shared roster is off \
                 (set service-user and service-password-file to turn them on)",
            ));
            return report;
        };
        let name = "service account";
        // Refused lately: asking again would be one more recorded failure.
        let svc = match service.credentials() {
            Ok(a) => a,
            Err(e) => {
                report
                    .checks
                    .push(Check::fail(name, e.to_string(), HINT_SERVICE_PASSWORD));
                return report;
            }
        };
        let svc = &svc;
        let Some(url) = ocs_url(&self.base, &["cloud", "users", svc.user()]) else {
            report.checks.push(Check::fail(
                name,
                format!("{:?} cannot be put in a URL", svc.user()),
                HINT_CREDENTIALS,
            ));
            return report;
        };
        let reply = match self.service_get(svc, &url).await {
            Ok(r) => r,
            Err(BackendError::Timeout(d)) => {
                report.checks.push(Check::fail(
                    "throttle",
                    format!(
                        "the service account's login got no answer within {}",
                        doctor::took(d)
                    ),
                    throttle_fix(),
                ));
                return report;
            }
            Err(e) => {
                report
                    .checks
                    .push(Check::fail(name, e.to_string(), HINT_CREDENTIALS));
                return report;
            }
        };
        let who = svc.user();
        if is_blocked(&reply) {
            report.checks.push(Check::fail(
                "throttle",
                BackendError::Blocked {
                    host: host_of(&url),
                }
                .to_string(),
                throttle_fix(),
            ));
            return report;
        }
        match reply.status {
            200 => {
                let data = ocs_data(&reply.body).unwrap_or_default();
                let rights = self.doctor_rights(svc).await;
                report.checks.push(service_check(who, &data, rights));
                report.checks.push(app_password_check(svc));
            }
            401 => {
                let e = service_refused(&reply, who);
                service.note(&e);
                // The refusal's own hint (a password, or a two-factor
                // account's app password) is the fix.
                let fix = match &e {
                    BackendError::ServiceRefused { hint, .. } => *hint,
                    _ => "check service-user and service-password-file (best an app password of that account: Personal settings → Security)",
                };
                report.checks.push(Check::fail(
                    name,
                    format!("Nextcloud refused the login of {who} (HTTP 401)"),
                    fix,
                ));
            }
            412 => report.checks.push(Check::fail(
                name,
                csrf_stripped().to_string(),
                "configure the proxy in front of Nextcloud to pass the OCS-APIRequest header",
            )),
            _ => report.checks.push(Check::fail(
                name,
                reply.unexpected().to_string(),
                HINT_RIGHTS,
            )),
        }
        if bruteforce_known && reply.elapsed <= self.latency.floor {
            return report;
        }
        report.checks.push(if reply.elapsed > self.latency.floor {
            Check::fail(
                "throttle",
                format!(
                    "the service account's login took {}: Nextcloud's brute-force protection is delaying this server's address",
                    doctor::took(reply.elapsed)
                ),
                throttle_fix(),
            )
        } else {
            Check::pass(
                "throttle",
                format!("not throttled (a login took {})", doctor::took(reply.elapsed)),
            )
        });
        report
    }
}

impl Nextcloud {
    /// The doctor's checks that need no login: the version (`status.php`)
    /// and the brute-force state of this address (`cloud/capabilities`);
    /// true when Nextcloud told that state.
    pub(super) async fn doctor_public(&self, report: &mut BackendReport) -> bool {
        if let Some(url) = base_file(&self.base, "status.php") {
            match self.public_get(&url, None).await {
                Ok(r) if r.status == 200 => {
                    let v = decode_json(&r.body).unwrap_or_default();
                    let version = v
                        .get("versionstring")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    if v.get("maintenance").and_then(Value::as_bool) == Some(true) {
                        report.checks.push(Check::fail(
                            "Nextcloud",
                            format!("version {version}, in maintenance mode: every login fails"),
                            "`occ maintenance:mode --off` when the maintenance is done",
                        ));
                    } else {
                        report
                            .checks
                            .push(Check::pass("Nextcloud", format!("version {version}")));
                    }
                }
                Ok(r) => report.checks.push(Check::warn(
                    "Nextcloud",
                    format!("status.php answered HTTP {}: version unknown", r.status),
                    "none needed if the checks below pass",
                )),
                Err(e) => report.checks.push(Check::warn(
                    "Nextcloud",
                    format!("status.php: {e}"),
                    "none needed if the checks below pass",
                )),
            }
        }
        if let Some(url) = ocs_url(&self.base, &["cloud", "capabilities"]) {
            if let Ok(r) = self.public_get(&url, None).await {
                let data = (r.status == 200)
                    .then(|| ocs_data(&r.body).ok())
                    .flatten()
                    .unwrap_or_default();
                if let Some(check) = bruteforce_check(&data) {
                    report.checks.push(check);
                    return true;
                }
            }
        }
        false
    }

    /// The "client address" line: `forward-client-address` off, or on and
    /// honoured or ignored by Nextcloud (what this process found out, else
    /// asked now: the capabilities for this server and for a documentation
    /// address, which differ only when Nextcloud takes the header).
    pub(super) async fn doctor_forwarding(&self) -> Check {
        const NAME: &str = "client address";
        let known = match self.forwarding() {
            Forwarding::Off => {
                return Check::pass(
                    NAME,
                    "not forwarded (forward-client-address off): Nextcloud counts every failed login for this server's address",
                )
            }
            Forwarding::Unknown => {
                match (
                    self.bruteforce_state(None).await,
                    self.bruteforce_state(Some(PROBE_ADDRESS)).await,
                ) {
                    (Some(own), Some(fwd)) => forwarding_evidence(own, fwd),
                    _ => None,
                }
            }
            found => Some(found),
        };
        match known {
            Some(Forwarding::Honoured) => Check::pass(
                NAME,
                "forwarded as X-Forwarded-For, and Nextcloud honours it (this server is in its trusted_proxies):                  failed logins count for each client's address, with a failure budget per address",
            ),
            Some(_) => Check::warn(
                NAME,
                "forwarded as X-Forwarded-For, but Nextcloud ignores it: every failed login counts for this server's address",
                "on Nextcloud: `occ config:system:set trusted_proxies 0 --value=ADDR` with this server's address",
            ),
            None => Check::warn(
                NAME,
                "forwarded as X-Forwarded-For; whether Nextcloud honours it cannot be told yet (this address has no                  failures there to compare with); until then failures count against this server's budget, and the log                  says which once a login fails",
                "none needed if this server is in Nextcloud's trusted_proxies                  (`occ config:system:get trusted_proxies`)",
            ),
        }
    }

    /// Whether the service account may look up other users: the details
    /// of a group nobody has need admin or subadmin rights (403 without,
    /// before Nextcloud looks for the group; 404 with them).
    pub(super) async fn doctor_rights(&self, svc: &ServiceAccount) -> Result<bool, BackendError> {
        let group = doctor::probe_user();
        let Some(url) = ocs_url(&self.base, &["cloud", "groups", &group, "users", "details"])
        else {
            return Err(BackendError::Api("group URL".into()));
        };
        let reply = self.service_get(svc, &url).await?;
        match reply.status {
            200 | 404 => Ok(true),
            403 => Ok(false),
            _ => Err(reply.unexpected()),
        }
    }
}

/// The service account's line: its own record (`data`) says admin or
/// subadmin, `rights` whether Nextcloud lets it look up others.
pub(super) fn service_check(who: &str, data: &Value, rights: Result<bool, BackendError>) -> Check {
    const NAME: &str = "service account";
    let strings = |k: &str| string_list(data, k);
    match rights {
        Ok(true) if strings("groups").iter().any(|g| g == "admin") => {
            Check::pass(NAME, format!("{who} logs in and is an admin"))
        }
        Ok(true) => match strings("subadmin") {
            s if !s.is_empty() => Check::pass(
                NAME,
                format!(
                    "{who} logs in and is a subadmin of {} (isuser and rosters for their members only)",
                    s.join(", ")
                ),
            ),
            _ => Check::pass(NAME, format!("{who} logs in and may look up users")),
        },
        Ok(false) => Check::fail(
            NAME,
            format!("{who} logs in but is neither admin nor subadmin: Nextcloud shows it no other users"),
            HINT_RIGHTS,
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{who} logs in, but asking for a group's members failed: {e}"),
            HINT_RIGHTS,
        ),
    }
}

/// What to do about Nextcloud's brute-force throttle.
pub(super) fn throttle_fix() -> &'static str {
    "allow-list the XMPP server's address in Nextcloud (Administration → Security, or \
     `occ config:app:set bruteForce whitelist_1 --value=ADDR/32`), then run `occ security:bruteforce:reset ADDR`"
}

/// Whether the service account's password has an app password's form.
pub(super) fn app_password_check(svc: &ServiceAccount) -> Check {
    const NAME: &str = "service password";
    if svc.app_password_like {
        Check::pass(
            NAME,
            "service-password-file holds an app password (by its form: 72 letters and digits)",
        )
    } else {
        Check::warn(
            NAME,
            "service-password-file does not look like an app password (72 letters and digits): a login \
             password stops working once the account gets two-factor authentication, and changing it \
             locks cloudauth out",
            format!(
                "create an app password for {} (Nextcloud: Personal settings → Security → Devices & sessions) \
                 and put it in service-password-file",
                svc.user()
            ),
        )
    }
}

/// The doctor's line for `cloud/capabilities`' `bruteforce` of this
/// server's address: `delay` in ms (Nextcloud's 100 · 2^failures, at most
/// 25000), `allow-listed`. `None` when the reply has neither (Nextcloud
/// before they were published).
pub(crate) fn bruteforce_check(data: &Value) -> Option<Check> {
    const NAME: &str = "brute-force protection";
    let (allow_listed, delay) = super::protection::bruteforce_fields(data)?;
    if allow_listed {
        return Some(Check::warn(
            NAME,
            "this server's address is allow-listed: Nextcloud records no failed logins from it, so \
             cloudauth's own guessing throttle (throttle-failures) is the only protection against \
             password guessing through XMPP",
            "keep throttle-failures low; or remove the allow-list entry (Administration → Security) and \
             let Nextcloud count",
        ));
    }
    let delay = delay?;
    // Failures of the last 12 hours, as the failure budget reads them.
    let failures = crate::bruteforce::failures_from_delay(delay);
    Some(match delay {
        0 => Check::pass(
            NAME,
            "not allow-listed; no failed logins recorded for this server's address \
             (Nextcloud 32 on blocks it after 11 within 30 minutes)",
        ),
        d if d < 25_000 => Check::warn(
            NAME,
            format!(
                "about {failures} failed logins recorded for this server's address in the last 12 hours \
                 (delay {d} ms); more than 10 within 30 minutes block every login from it"
            ),
            "see who fails in Nextcloud's log (\"Login failed\"); allow-list the address or \
             `occ security:bruteforce:reset ADDR`",
        ),
        d => Check::fail(
            NAME,
            format!(
                "8 or more failed logins recorded for this server's address (delay {d} ms): a block is near or on"
            ),
            throttle_fix(),
        ),
    })
}

/// `{base}/{file}` (for `status.php`), the base's path prefix kept.
pub(super) fn base_file(base: &reqwest::Url, file: &str) -> Option<reqwest::Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().ok()?;
        path.pop_if_empty();
        path.push(file);
    }
    Some(url)
}
