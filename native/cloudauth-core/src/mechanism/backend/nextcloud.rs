//! The `nextcloud` backend: Nextcloud's own OCS API (v2), no app needed.
//!
//! - Passwords (and app passwords, which are passwords to this API): `GET
//!   {url}/ocs/v2.php/cloud/user?format=json` with the user's credentials
//!   as HTTP basic auth; 200 names the account the credentials belong to,
//!   401 (an XML body, whatever `format` asks for) is a wrong password.
//! - Whether a user exists, and the shared roster, need a service account
//!   (`service-user`, `service-password-file`) that is a Nextcloud admin or
//!   a subadmin of the users' groups: `cloud/users/{id}`,
//!   `cloud/users/{id}/groups` and `cloud/groups/{g}/users/details`.
//!   Without one, `isuser` cannot find out (trouble, never "no") and the
//!   shared roster is off.
//!
//! Every OCS request carries `OCS-APIRequest: true`; Nextcloud answers 412
//! without it, which in practice means a proxy stripped it.
//!
//! Nextcloud's brute-force protection records failed logins per client
//! address and then delays *every* request from there (right passwords
//! included, up to 25 s). For Nextcloud the XMPP server is one address, so
//! this backend asks the decision layer not to resend a password that just
//! failed ([`Backend::repeat_refusal_window`]) and watches login latency to
//! tell the admin when the throttle has kicked in.
//!
//! The replies handled here are those a real Nextcloud 24.0.5 gave when
//! recorded; `jsxc-test-backend` emulates them (its `src/ocs.rs`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde_json::Value;
use tracing::{debug, warn};

use super::http::{host_of, HttpClient, HttpReply};
use super::{
    decode_json, printable_snippet, Account, Backend, BackendEntry, BackendError, BackendFuture,
    DecodeError, DoctorFuture,
};
use crate::doctor::{self, BackendReport, Check};
use crate::roster::{RosterMember, SharedRoster};
use crate::secret::Secret;
use crate::settings::keys;
use crate::settings::schema::{Kind, Spec};
use crate::settings::values::{Origin, SettingsError, Values};

/// `service-user`: the Nextcloud account `isuser` and the shared roster ask as.
pub const SERVICE_USER: &str = "service-user";
/// `service-password-file`: file whose first line is that account's (app) password.
pub const SERVICE_PASSWORD_FILE: &str = "service-password-file";

/// How long a wrong password is answered "no" from memory: each resent
/// failure would lengthen Nextcloud's delay for every user of this server.
pub const REPEAT_REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// A login slower than this (and than [`THROTTLE_FACTOR`] × the typical
/// latency) is taken as a sign of the brute-force throttle. Nextcloud's
/// first delays are 0.2–0.4 s, too close to an argon2id check (≈0.4 s) to
/// tell apart; from 2 s on nothing but the throttle explains it.
pub const THROTTLE_FLOOR: Duration = Duration::from_secs(2);
/// How many times the typical login latency counts as throttled.
pub const THROTTLE_FACTOR: u32 = 5;
/// At most one throttle warning per this interval (the condition lasts).
pub const THROTTLE_WARN_INTERVAL: Duration = Duration::from_secs(600);

/// The OCS header Nextcloud's CSRF check requires of API clients.
const OCS_API_REQUEST: &str = "OCS-APIRequest";

/// What to check when Nextcloud refuses the service account's login.
const HINT_CREDENTIALS: &str = "check service-user and service-password-file";
/// What to check when the service account logged in but may not look.
const HINT_RIGHTS: &str =
    "the service account (service-user) must be a Nextcloud admin, or a subadmin of the users' groups";

/// The registry entry: `backend = nextcloud` needs `url` (Nextcloud's base
/// URL); `service-user` and `service-password-file` add isuser and the
/// shared roster.
pub static ENTRY: BackendEntry = BackendEntry {
    name: "nextcloud",
    summary: "Nextcloud's own OCS API (passwords, app passwords; isuser and shared roster with a service account)",
    settings: &[
        Spec::new(
            SERVICE_USER,
            Kind::Text,
            "nextcloud backend: Nextcloud admin or subadmin account for isuser and the shared roster (with --service-password-file)",
        )
        .per_domain()
        .value_name("USER"),
        Spec::new(
            SERVICE_PASSWORD_FILE,
            Kind::SecretFile,
            "nextcloud backend: file holding --service-user's password, preferably an app password (first line)",
        )
        .per_domain()
        .value_name("FILE"),
    ],
    transport: super::Transport::Http,
    build,
};

fn build(v: &Values, http: &Arc<HttpClient>) -> Result<Arc<dyn Backend>, SettingsError> {
    let url = v.require_url(keys::URL, "backend nextcloud")?;
    let origin = |key: &str| v.origin(key).cloned().unwrap_or(Origin::Default);
    let invalid = |key: &str, why: String| SettingsError::Invalid {
        key: key.to_string(),
        origin: origin(key),
        why,
    };
    // An `index.php`-style URL is the JSXC API's (or a page's), left over
    // from `backend = jsxc`: every request would go astray.
    if url
        .path_segments()
        .is_some_and(|mut s| s.any(|seg| seg.ends_with(".php")))
    {
        return Err(invalid(
            keys::URL,
            format!(
                "{} is a PHP endpoint; backend nextcloud takes Nextcloud's base URL \
                 (where /ocs/v2.php lives), e.g. https://cloud.example.org or https://example.org/nextcloud",
                url.path()
            ),
        ));
    }
    // An empty value (an ejabberd option left as "") means not given.
    let user = v.text(SERVICE_USER).filter(|u| !u.is_empty());
    let password = v.secret(SERVICE_PASSWORD_FILE);
    let both = " (give both, or neither to check passwords only)";
    let service = match (user, password) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(SettingsError::Missing {
                what: format!("{SERVICE_USER} (backend nextcloud)"),
                key: SERVICE_PASSWORD_FILE,
                hint: both,
            })
        }
        (None, Some(_)) => {
            return Err(SettingsError::Missing {
                what: format!("{SERVICE_PASSWORD_FILE} (backend nextcloud)"),
                key: SERVICE_USER,
                hint: both,
            })
        }
        (Some(u), Some(p)) => Some(ServiceAccount::new(u, p.clone()).map_err(|e| {
            match e {
                ServiceAccountError::User => invalid(
                    SERVICE_USER,
                    "contains ':' or a control character, which HTTP basic auth cannot carry"
                        .into(),
                ),
                // The value is never part of the message.
                ServiceAccountError::Password => invalid(
                    SERVICE_PASSWORD_FILE,
                    "the password contains a control character, which HTTP basic auth cannot carry"
                        .into(),
                ),
            }
        })?),
    };
    let nc = Nextcloud::new(url, service, Arc::clone(http))
        .map_err(|why| invalid(keys::URL, why.to_string()))?;
    Ok(Arc::new(nc))
}

/// Why a service account cannot be used (never shows the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAccountError {
    /// The user name is empty or contains ':' or a control character.
    User,
    /// The password is empty or contains a control character.
    Password,
}

/// The account `isuser` and the shared roster ask as.
#[derive(Clone)]
pub struct ServiceAccount {
    user: String,
    /// `Basic …`, marked sensitive so that reqwest never prints it.
    authorization: HeaderValue,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written: the header holds the password.
        write!(f, "ServiceAccount({})", self.user)
    }
}

impl ServiceAccount {
    /// The account `user` with `password` (an app password is best: it can
    /// be revoked alone and skips the password hash's cost).
    pub fn new(user: &str, password: Secret) -> Result<Self, ServiceAccountError> {
        if !basic_auth_user_ok(user) {
            return Err(ServiceAccountError::User);
        }
        let p = password.expose();
        if p.is_empty() || p.iter().any(|b| b.is_ascii_control()) {
            return Err(ServiceAccountError::Password);
        }
        Ok(ServiceAccount {
            user: user.to_string(),
            authorization: basic_authorization(user, p),
        })
    }

    /// The account's name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// Whether HTTP basic auth can carry `user` as the login: not empty, no
/// ':' (the separator, so the login would be cut there), no control
/// characters (which no Nextcloud login contains and headers mangle).
pub fn basic_auth_user_ok(user: &str) -> bool {
    !user.is_empty() && !user.contains(':') && !user.chars().any(char::is_control)
}

/// Whether HTTP basic auth can carry `password`: not empty, no control
/// characters (':' is fine: the login ends at the first one).
pub fn basic_auth_password_ok(password: &str) -> bool {
    !password.is_empty() && !password.chars().any(char::is_control)
}

/// The `Authorization` value for `user`:`password`, marked sensitive.
fn basic_authorization(user: &str, password: &[u8]) -> HeaderValue {
    let mut raw = Vec::with_capacity(user.len() + 1 + password.len());
    raw.extend_from_slice(user.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(password);
    let encoded = format!("Basic {}", STANDARD.encode(&raw));
    // Base64 and "Basic " are visible ASCII, always a valid header value;
    // the fallback only keeps this function total.
    let mut value =
        HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// A user name or id folded as XMPP folds a JID's local part (lowercase),
/// so that `Alice` logging in as JID `alice` is the same account.
pub fn fold(id: &str) -> String {
    id.to_lowercase()
}

/// `{base}/ocs/v2.php/{segments…}?format=json`, each segment percent-encoded
/// (a '/' in a name stays inside its segment). `None` for a segment URLs
/// cannot carry: empty, "." or ".." (the URL library drops those, which
/// would silently ask another endpoint), or a base that cannot have a path.
pub fn ocs_url(base: &reqwest::Url, segments: &[&str]) -> Option<reqwest::Url> {
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return None;
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().ok()?;
        // `https://cloud.example.org/` and `…/nextcloud/` end in an empty segment.
        path.pop_if_empty();
        path.extend(["ocs", "v2.php"]);
        path.extend(segments);
    }
    url.set_query(Some("format=json"));
    Some(url)
}

/// `ocs.data` of an OCS JSON reply.
fn ocs_data(body: &[u8]) -> Result<Value, DecodeError> {
    let mut v = decode_json(body)?;
    v.pointer_mut("/ocs/data")
        .map(Value::take)
        .ok_or_else(|| DecodeError::Shape("no ocs.data in the reply".into()))
}

/// `ocs.meta.statuscode` of an OCS JSON reply (a number, or digits in a string).
pub fn ocs_statuscode(body: &[u8]) -> Option<u64> {
    let v = decode_json(body).ok()?;
    match v.pointer("/ocs/meta/statuscode")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The account id of a successful `cloud/user` reply (`ocs.data.id`).
pub fn decode_current_user_id(body: &[u8]) -> Result<String, DecodeError> {
    ocs_data(body)?
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| DecodeError::Shape("cloud/user without string ocs.data.id".into()))
}

/// Checks a successful `cloud/users/{id}` reply (`ocs.data.id` is there).
fn decode_user_found(body: &[u8]) -> Result<(), DecodeError> {
    match ocs_data(body)?.get("id") {
        Some(Value::String(_)) => Ok(()),
        _ => Err(DecodeError::Shape(
            "cloud/users/{id} without string ocs.data.id".into(),
        )),
    }
}

/// The group ids of a `cloud/users/{id}/groups` reply (`ocs.data.groups`).
pub fn decode_user_groups(body: &[u8]) -> Result<Vec<String>, DecodeError> {
    let data = ocs_data(body)?;
    let shape =
        || DecodeError::Shape("users/{id}/groups without a list of strings ocs.data.groups".into());
    let list = data
        .get("groups")
        .and_then(Value::as_array)
        .ok_or_else(shape)?;
    list.iter()
        .map(|g| g.as_str().map(str::to_string).ok_or_else(shape))
        .collect()
}

/// The answer of a `cloud/user` reply to `user`'s credentials: yes only for
/// HTTP 200 naming this very account (folded), no for HTTP 401 or another
/// account's id, anything else trouble.
pub fn auth_answer(reply: &HttpReply, user: &str) -> Result<bool, BackendError> {
    match reply.status {
        200 => {
            let id = decode_current_user_id(&reply.body)?;
            if fold(&id) == fold(user) {
                Ok(true)
            } else {
                // Nextcloud also takes e-mail addresses and other login
                // names: right credentials, but of another account.
                warn!(
                    "{:?}: the credentials are right but belong to Nextcloud account {:?}, not {:?}; refused",
                    user,
                    printable_snippet(id.as_bytes(), 80),
                    user
                );
                Ok(false)
            }
        }
        // The body is Nextcloud's fixed XML, whatever `format` says.
        401 => Ok(false),
        412 => Err(csrf_stripped()),
        _ => Err(reply.unexpected()),
    }
}

/// The answer of a `cloud/users/{id}` reply: yes for HTTP 200 with
/// `ocs.data.id`, no only for HTTP 404 with OCS statuscode 404.
pub fn is_user_answer(reply: &HttpReply) -> Result<bool, BackendError> {
    match reply.status {
        200 => {
            decode_user_found(&reply.body)?;
            Ok(true)
        }
        // OCS statuscode 404: no such user. 998: the user exists but the
        // service account may not see it (a subadmin of other groups);
        // anything else (an HTML 404: a wrong URL) is no answer at all.
        404 => match ocs_statuscode(&reply.body) {
            Some(404) => Ok(false),
            Some(998) => Err(BackendError::Unauthorized {
                status: 404,
                hint: HINT_RIGHTS,
            }),
            _ => Err(reply.unexpected()),
        },
        401 | 403 => Err(service_refused(reply)),
        412 => Err(csrf_stripped()),
        _ => Err(reply.unexpected()),
    }
}

/// One member of a group, as `users/details` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Nextcloud user id.
    pub uid: String,
    /// Display name (the id when Nextcloud gives none).
    pub name: String,
}

/// The members of a `cloud/groups/{g}/users/details` reply: `ocs.data.users`
/// is an object keyed by user id, or `[]` when empty (PHP's empty array; a
/// PHP array whose keys are all numbers is also sent as a list).
pub fn decode_group_members(body: &[u8]) -> Result<Vec<Member>, DecodeError> {
    let data = ocs_data(body)?;
    let member = |key: Option<&str>, entry: &Value| -> Result<Member, DecodeError> {
        let obj = entry.as_object().ok_or_else(|| {
            DecodeError::Shape("users/details: a member that is not an object".into())
        })?;
        let uid = obj
            .get("id")
            .and_then(Value::as_str)
            .or(key)
            .ok_or_else(|| DecodeError::Shape("users/details: a member without id".into()))?;
        let name = obj
            .get("displayname")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(uid);
        Ok(Member {
            uid: uid.to_string(),
            name: name.to_string(),
        })
    };
    match data.get("users") {
        Some(Value::Object(m)) => m.iter().map(|(k, e)| member(Some(k), e)).collect(),
        Some(Value::Array(a)) => a.iter().map(|e| member(None, e)).collect(),
        _ => Err(DecodeError::Shape(
            "users/details without object ocs.data.users".into(),
        )),
    }
}

/// The shared roster from the user's groups, in the user's order, each
/// with its members: every member once, with its display name and the
/// groups (of these) it is in. The user is a member of its own groups, so
/// it is included, as the JSXC `sharedroster` operation does; no groups
/// give an empty roster.
pub fn build_shared_roster(groups: &[(String, Vec<Member>)]) -> SharedRoster {
    let mut roster = SharedRoster::new();
    for (group, members) in groups {
        for m in members {
            let entry = roster.entry(m.uid.clone()).or_insert_with(|| RosterMember {
                name: m.name.clone(),
                groups: Vec::new(),
            });
            if !entry.groups.contains(group) {
                entry.groups.push(group.clone());
            }
        }
    }
    roster
}

/// `url` for a log line: without user info (which may hold a password) or query.
fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    // Both only fail for URLs without a host, which `url` settings never are.
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The error for a 412: Nextcloud's CSRF check did not see `OCS-APIRequest`.
fn csrf_stripped() -> BackendError {
    BackendError::Api(
        "HTTP 412 \"CSRF check failed\": Nextcloud did not receive the OCS-APIRequest header \
         this server sends; a proxy in front of Nextcloud strips it, configure it to pass the header"
            .into(),
    )
}

/// What a refusal of the service account means: a failed login is answered
/// with Nextcloud's fixed XML body, a login without the rights with an OCS
/// JSON envelope.
fn service_refused(reply: &HttpReply) -> BackendError {
    let hint = match reply.status {
        401 if decode_json(&reply.body).is_err() => HINT_CREDENTIALS,
        _ => HINT_RIGHTS,
    };
    BackendError::Unauthorized {
        status: reply.status,
        hint,
    }
}

/// Typical login latency and the throttle warnings.
#[derive(Debug)]
struct LatencyWatch {
    floor: Duration,
    /// Moving average of login latency in µs; 0 until the first sample.
    typical_us: AtomicU64,
    /// Logins taken as throttled.
    seen: AtomicU64,
    /// When the last warning was logged, in ms since `epoch`, plus one (0: never).
    last_warn: AtomicU64,
    epoch: Instant,
}

/// The latency above which a login counts as throttled.
pub fn throttle_threshold(typical: Option<Duration>, floor: Duration) -> Duration {
    typical.map_or(floor, |t| floor.max(t.saturating_mul(THROTTLE_FACTOR)))
}

impl LatencyWatch {
    fn new(floor: Duration) -> Self {
        LatencyWatch {
            floor,
            typical_us: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn typical(&self) -> Option<Duration> {
        match self.typical_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Records one login's latency; true when it looks throttled. The
    /// average moves by 1/8 per sample, so that a Nextcloud that is simply
    /// slow stops looking throttled after a while, while the throttle's
    /// doubling delays outrun it.
    fn observe(&self, elapsed: Duration) -> bool {
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
    fn claim_warning(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        claim_slot(&self.last_warn, now, THROTTLE_WARN_INTERVAL)
    }
}

/// Sets `last` to `now` (ms + 1; 0 = never) when at least `interval` has
/// passed since it was last set; true when this call set it.
fn claim_slot(last: &AtomicU64, now: u64, interval: Duration) -> bool {
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

/// One Nextcloud, asked through its OCS API.
pub struct Nextcloud {
    base: reqwest::Url,
    current_user: reqwest::Url,
    service: Option<ServiceAccount>,
    http: Arc<HttpClient>,
    /// Whether "isuser and the shared roster are off" was logged.
    told_no_service: AtomicBool,
    latency: LatencyWatch,
}

impl std::fmt::Debug for Nextcloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nextcloud")
            .field("base", &shown(&self.base))
            .field("service", &self.service)
            .finish()
    }
}

impl Nextcloud {
    /// A client for the Nextcloud at `base` (its base URL; a path prefix
    /// such as `/nextcloud` is kept), asking `isuser` and shared rosters as
    /// `service` when given. Errs when `base` cannot have a path.
    pub fn new(
        base: reqwest::Url,
        service: Option<ServiceAccount>,
        http: Arc<HttpClient>,
    ) -> Result<Self, &'static str> {
        let current_user =
            ocs_url(&base, &["cloud", "user"]).ok_or("the URL cannot have a path")?;
        Ok(Nextcloud {
            base,
            current_user,
            service,
            http,
            told_no_service: AtomicBool::new(false),
            latency: LatencyWatch::new(THROTTLE_FLOOR),
        })
    }

    /// The same with another floor for the throttle detection (default
    /// [`THROTTLE_FLOOR`]), for tests and for Nextcloud instances whose
    /// logins are unusually fast or slow.
    pub fn with_throttle_floor(mut self, floor: Duration) -> Self {
        self.latency.floor = floor;
        self
    }

    /// How many logins looked throttled by Nextcloud's brute-force protection.
    pub fn throttling_seen(&self) -> u64 {
        self.latency.seen.load(Ordering::Relaxed)
    }

    /// Whether a service account is configured (isuser and shared roster work).
    pub fn has_service_account(&self) -> bool {
        self.service.is_some()
    }

    /// The service account, or (once logged) the reason there is none.
    fn service(&self) -> Option<&ServiceAccount> {
        if self.service.is_none() && !self.told_no_service.swap(true, Ordering::Relaxed) {
            warn!(
                "Nextcloud at {}: no service account, so isuser cannot find out and the shared roster is off; \
                 to turn them on set service-user and service-password-file (ejabberd: auth_cloud_service_user, \
                 auth_cloud_service_password_file) to a Nextcloud admin or subadmin and a file with its app password",
                shown(&self.base)
            );
        }
        self.service.as_ref()
    }

    fn ocs_request(
        &self,
        url: &reqwest::Url,
        authorization: HeaderValue,
    ) -> Result<reqwest::RequestBuilder, BackendError> {
        Ok(self
            .http
            .request(reqwest::Method::GET, url)?
            .header(OCS_API_REQUEST, "true")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, authorization))
    }

    async fn auth_op(&self, who: Account<'_>, password: &str) -> Result<bool, BackendError> {
        if !basic_auth_user_ok(who.user) || !basic_auth_password_ok(password) {
            // No Nextcloud login can be written so: a request would only
            // add a failure to the throttle's count.
            debug!(
                "{:?}: user or password not expressible in HTTP basic auth; refused without asking Nextcloud",
                who.user
            );
            return Ok(false);
        }
        let url = &self.current_user;
        let request = self.ocs_request(url, basic_authorization(who.user, password.as_bytes()))?;
        let reply = match self.http.send(request, url).await {
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
        auth_answer(&reply, who.user)
    }

    fn warn_throttled(&self, url: &reqwest::Url, took: Duration, timed_out: bool) {
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

    async fn service_get(
        &self,
        svc: &ServiceAccount,
        url: &reqwest::Url,
    ) -> Result<HttpReply, BackendError> {
        let request = self.ocs_request(url, svc.authorization.clone())?;
        self.http.send(request, url).await
    }

    async fn is_user_op(
        &self,
        svc: &ServiceAccount,
        who: Account<'_>,
    ) -> Result<bool, BackendError> {
        // Nextcloud refuses such user ids; a URL could not name them anyway.
        let Some(url) = ocs_url(&self.base, &["cloud", "users", who.user]) else {
            return Ok(false);
        };
        is_user_answer(&self.service_get(svc, &url).await?)
    }

    async fn roster_op(
        &self,
        svc: &ServiceAccount,
        who: Account<'_>,
    ) -> Result<SharedRoster, BackendError> {
        let Some(url) = ocs_url(&self.base, &["cloud", "users", who.user, "groups"]) else {
            return Err(BackendError::Api(format!(
                "user id {:?} cannot be put in a Nextcloud URL",
                who.user
            )));
        };
        let reply = self.service_get(svc, &url).await?;
        let groups = match reply.status {
            200 => decode_user_groups(&reply.body)?,
            // Trouble, not an empty roster: an empty one would remove the
            // user from every provisioned group.
            404 => {
                return Err(BackendError::Api(format!(
                    "Nextcloud does not know user {:?} (HTTP 404 for its groups)",
                    who.user
                )))
            }
            401 | 403 => return Err(service_refused(&reply)),
            412 => return Err(csrf_stripped()),
            _ => return Err(reply.unexpected()),
        };
        let mut seen = BTreeSet::new();
        let mut members = Vec::with_capacity(groups.len());
        // One group after another: a login must not become a burst of
        // requests on Nextcloud.
        for group in groups {
            if !seen.insert(group.clone()) {
                continue;
            }
            let Some(url) = ocs_url(
                &self.base,
                &["cloud", "groups", group.as_str(), "users", "details"],
            ) else {
                return Err(BackendError::Api(format!(
                    "group {:?} cannot be put in a Nextcloud URL",
                    printable_snippet(group.as_bytes(), 80)
                )));
            };
            let reply = self.service_get(svc, &url).await?;
            match reply.status {
                200 => members.push((group, decode_group_members(&reply.body)?)),
                401 | 403 => return Err(service_refused(&reply)),
                412 => return Err(csrf_stripped()),
                _ => return Err(reply.unexpected()),
            }
        }
        Ok(build_shared_roster(&members))
    }
}

impl Nextcloud {
    /// Without credentials, `cloud/user`: Nextcloud's OCS API answers 401
    /// "not logged in" in its own envelope, which tells it is there without
    /// a login the brute-force throttle could count. Then, with a service
    /// account, that account's own record: it logs in, has the rights, and
    /// how long its login took (the throttle delays logins only).
    async fn doctor_op(&self) -> BackendReport {
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
        let Some(svc) = &self.service else {
            report.checks.push(Check::pass(
                "service account",
                "none: passwords only; isuser cannot tell and the shared roster is off \
                 (set service-user and service-password-file to turn them on)",
            ));
            return report;
        };
        let name = "service account";
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
        match reply.status {
            200 => {
                let data = ocs_data(&reply.body).unwrap_or_default();
                let rights = self.doctor_rights(svc).await;
                report.checks.push(service_check(who, &data, rights));
            }
            401 => {
                report.checks.push(Check::fail(
                    name,
                    format!("Nextcloud refused the login of {who} (HTTP 401)"),
                    "check service-user and service-password-file (best an app password of that account: Personal settings → Security)",
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
    /// Whether the service account may look up other users: the details
    /// of a group nobody has need admin or subadmin rights (403 without,
    /// before Nextcloud looks for the group; 404 with them).
    async fn doctor_rights(&self, svc: &ServiceAccount) -> Result<bool, BackendError> {
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
fn service_check(who: &str, data: &Value, rights: Result<bool, BackendError>) -> Check {
    const NAME: &str = "service account";
    let strings = |k: &str| -> Vec<String> {
        data.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
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
fn throttle_fix() -> &'static str {
    "whitelist the XMPP server's address in Nextcloud (Administration → Security, app bruteforcesettings), \
     then run `occ security:bruteforce:reset ADDRESS`"
}

impl Backend for Nextcloud {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(self.auth_op(who, password))
    }

    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        match self.service() {
            Some(svc) => Box::pin(self.is_user_op(svc, who)),
            None => Box::pin(std::future::ready(Err(BackendError::Unsupported(
                "isuser needs a Nextcloud service account (service-user, service-password-file)",
            )))),
        }
    }

    fn shared_roster<'a>(&'a self, who: Account<'a>) -> Option<BackendFuture<'a, SharedRoster>> {
        let svc = self.service()?;
        Some(Box::pin(self.roster_op(svc, who)))
    }

    fn repeat_refusal_window(&self) -> Option<Duration> {
        Some(REPEAT_REFUSAL_WINDOW)
    }

    /// Nextcloud logs in the user part alone.
    fn answer_depends_on_domain(&self) -> bool {
        false
    }

    fn doctor<'a>(&'a self, _domain: &'a str) -> DoctorFuture<'a> {
        Box::pin(self.doctor_op())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn ocs(data: Value) -> Vec<u8> {
        body(json!({"ocs": {"meta": {"status": "ok", "statuscode": 200}, "data": data}}))
    }

    #[test]
    fn current_user_id() {
        let b = ocs(json!({"id": "alice", "display-name": "Alice Liddell"}));
        assert_eq!(decode_current_user_id(&b), Ok("alice".into()));
        for bad in [
            ocs(json!({"id": 7})),
            ocs(json!({})),
            ocs(json!([])),
            body(json!({"ocs": {"meta": {}}})),
            body(json!({"id": "alice"})),
        ] {
            assert!(
                matches!(decode_current_user_id(&bad), Err(DecodeError::Shape(_))),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
        // The 401 body: XML, never decoded as an answer.
        let xml =
            b"<ocs><meta><status>failure</status><statuscode>997</statuscode></meta><data/></ocs>";
        assert!(matches!(
            decode_current_user_id(xml),
            Err(DecodeError::NotJson { .. })
        ));
    }

    #[test]
    fn statuscodes() {
        let b = body(json!({"ocs": {"meta": {"statuscode": 998}, "data": []}}));
        assert_eq!(ocs_statuscode(&b), Some(998));
        let b = body(json!({"ocs": {"meta": {"statuscode": "404"}, "data": []}}));
        assert_eq!(ocs_statuscode(&b), Some(404));
        assert_eq!(ocs_statuscode(b"<html>Not Found</html>"), None);
        assert_eq!(ocs_statuscode(&body(json!({"message": "x"}))), None);
    }

    #[test]
    fn user_groups() {
        assert_eq!(
            decode_user_groups(&ocs(json!({"groups": ["staff", "chess"]}))),
            Ok(vec!["staff".to_string(), "chess".to_string()])
        );
        assert_eq!(decode_user_groups(&ocs(json!({"groups": []}))), Ok(vec![]));
        assert!(decode_user_groups(&ocs(json!({"groups": [1]}))).is_err());
        assert!(decode_user_groups(&ocs(json!({}))).is_err());
    }

    #[test]
    fn group_members_object_and_empty_list() {
        let m = decode_group_members(&ocs(json!({"users": {
            "alice": {"id": "alice", "displayname": "Alice Liddell", "groups": ["staff", "chess"]},
            "bob": {"id": "bob", "displayname": "", "groups": ["staff"]},
            "carol": {"id": "carol"}
        }})))
        .unwrap();
        assert_eq!(
            m,
            vec![
                Member {
                    uid: "alice".into(),
                    name: "Alice Liddell".into()
                },
                Member {
                    uid: "bob".into(),
                    name: "bob".into()
                },
                Member {
                    uid: "carol".into(),
                    name: "carol".into()
                },
            ]
        );
        assert_eq!(decode_group_members(&ocs(json!({"users": []}))), Ok(vec![]));
        // Numeric ids make PHP send a list; the ids are then in the entries.
        assert_eq!(
            decode_group_members(&ocs(json!({"users": [{"id": "0", "displayname": "Zero"}]}))),
            Ok(vec![Member {
                uid: "0".into(),
                name: "Zero".into()
            }])
        );
        // The key stands in for a missing id.
        assert_eq!(
            decode_group_members(&ocs(json!({"users": {"dave": {}}}))),
            Ok(vec![Member {
                uid: "dave".into(),
                name: "dave".into()
            }])
        );
        for bad in [
            json!({"users": [{"displayname": "no id"}]}),
            json!({"users": {"x": "not an object"}}),
            json!({"users": "alice"}),
            json!({}),
        ] {
            assert!(decode_group_members(&ocs(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn roster_from_groups() {
        let m = |uid: &str, name: &str| Member {
            uid: uid.into(),
            name: name.into(),
        };
        let r = build_shared_roster(&[
            (
                "staff".into(),
                vec![m("alice", "Alice Liddell"), m("bob", "Bob")],
            ),
            (
                "chess".into(),
                vec![m("alice", "Alice Liddell"), m("carol", "carol")],
            ),
        ]);
        assert_eq!(r.len(), 3);
        assert_eq!(r["alice"].name, "Alice Liddell");
        assert_eq!(r["alice"].groups, ["staff", "chess"]);
        assert_eq!(r["bob"].groups, ["staff"]);
        assert_eq!(r["carol"].groups, ["chess"]);
        assert!(build_shared_roster(&[]).is_empty());
        // A group without members adds nobody.
        assert!(build_shared_roster(&[("empty".into(), vec![])]).is_empty());
    }

    #[test]
    fn urls_in_logs_lose_user_info() {
        let u = reqwest::Url::parse("https://admin:hunter2@cloud.example.org/nc/?x=1").unwrap();
        assert_eq!(shown(&u), "https://cloud.example.org/nc/");
    }

    #[test]
    fn folding() {
        assert_eq!(fold("Alice"), fold("alice"));
        assert_eq!(fold("ÄRGER"), "ärger");
        assert_ne!(fold("alice@mail.example"), fold("alice"));
    }

    #[test]
    fn what_basic_auth_can_carry() {
        assert!(basic_auth_user_ok("alice") && basic_auth_user_ok("jürgen@x.de"));
        for bad in ["", "a:b", "a\nb", "a\u{7f}", "a\0"] {
            assert!(!basic_auth_user_ok(bad), "{bad:?}");
        }
        assert!(basic_auth_password_ok("p:w d") && basic_auth_password_ok("pässwörd"));
        for bad in ["", "a\rb", "\t"] {
            assert!(!basic_auth_password_ok(bad), "{bad:?}");
        }
        let h = basic_authorization("alice", b"p:w");
        assert_eq!(h.to_str().ok(), Some("Basic YWxpY2U6cDp3"));
        assert!(h.is_sensitive());
    }

    #[test]
    fn service_account_checks_and_never_shows_the_password() {
        let s = ServiceAccount::new("svc", Secret::new("topsecret")).unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
        assert!(!format!("{s:?}").contains(&STANDARD.encode("svc:topsecret")));
        assert_eq!(
            ServiceAccount::new("a:b", Secret::new("x")).err(),
            Some(ServiceAccountError::User)
        );
        assert_eq!(
            ServiceAccount::new("svc", Secret::new("a\nb")).err(),
            Some(ServiceAccountError::Password)
        );
    }

    #[test]
    fn urls_keep_the_prefix_and_encode_segments() {
        let u = |base: &str, segs: &[&str]| {
            ocs_url(&reqwest::Url::parse(base).unwrap(), segs).map(|u| u.to_string())
        };
        assert_eq!(
            u("https://cloud.example.org", &["cloud", "user"]).as_deref(),
            Some("https://cloud.example.org/ocs/v2.php/cloud/user?format=json")
        );
        assert_eq!(
            u("https://example.org/nextcloud/", &["cloud", "user"]).as_deref(),
            Some("https://example.org/nextcloud/ocs/v2.php/cloud/user?format=json")
        );
        assert_eq!(
            u("https://example.org/nextcloud?x=1#f", &["cloud", "users", "a b/c?d#e%f\\g"]).as_deref(),
            Some("https://example.org/nextcloud/ocs/v2.php/cloud/users/a%20b%2Fc%3Fd%23e%25f%5Cg?format=json")
        );
        assert_eq!(
            u(
                "https://x/",
                &["cloud", "groups", "Team ä", "users", "details"]
            )
            .as_deref(),
            Some("https://x/ocs/v2.php/cloud/groups/Team%20%C3%A4/users/details?format=json")
        );
        for bad in ["", ".", ".."] {
            assert_eq!(u("https://x/", &["cloud", "users", bad]), None, "{bad:?}");
        }
        // Only whole dot segments are special; these stay in place.
        assert_eq!(
            u("https://x/", &["cloud", "users", "..."]).as_deref(),
            Some("https://x/ocs/v2.php/cloud/users/...?format=json")
        );
        assert_eq!(
            u("https://x/", &["cloud", "users", "%2e%2e"]).as_deref(),
            Some("https://x/ocs/v2.php/cloud/users/%252e%252e?format=json")
        );
    }

    #[test]
    fn throttle_threshold_and_latency_record() {
        let ms = Duration::from_millis;
        assert_eq!(throttle_threshold(None, THROTTLE_FLOOR), THROTTLE_FLOOR);
        assert_eq!(
            throttle_threshold(Some(ms(400)), THROTTLE_FLOOR),
            THROTTLE_FLOOR
        );
        assert_eq!(throttle_threshold(Some(ms(1000)), THROTTLE_FLOOR), ms(5000));
        let w = LatencyWatch::new(ms(100));
        for _ in 0..5 {
            assert!(!w.observe(ms(10)));
        }
        assert_eq!(w.typical(), Some(ms(10)));
        assert!(!w.observe(ms(90)));
        assert!(w.observe(ms(800)), "above the floor and 5× typical");
        assert_eq!(w.seen.load(Ordering::Relaxed), 1);
        // A Nextcloud that is simply slow stops looking throttled.
        let slow = LatencyWatch::new(ms(100));
        let flagged = (0..40).filter(|_| slow.observe(ms(3000))).count();
        assert!(flagged <= 1, "{flagged}");
    }

    #[test]
    fn warnings_at_most_once_per_interval() {
        let last = AtomicU64::new(0);
        let i = Duration::from_secs(600);
        assert!(claim_slot(&last, 1, i), "the first one");
        assert!(!claim_slot(&last, 2, i));
        assert!(!claim_slot(&last, 600_000, i));
        assert!(claim_slot(&last, 600_001, i));
        assert!(!claim_slot(&last, 900_000, i));
    }

    fn values(kv: &[(&str, &str)]) -> Values {
        Values::from_pairs(kv).unwrap()
    }

    fn build_err(kv: &[(&str, &str)]) -> SettingsError {
        let http = Arc::new(HttpClient::new(crate::settings::timeouts(
            &Values::defaults(),
        )));
        match build(&values(kv), &http) {
            Ok(_) => panic!("built from {kv:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn settings_both_or_neither() {
        let dir = std::env::temp_dir().join(format!("cloudauth-nc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("svc");
        std::fs::write(&f, "svc-secret\n").unwrap();
        let f = f.to_str().unwrap();
        let http = Arc::new(HttpClient::new(crate::settings::timeouts(
            &Values::defaults(),
        )));
        let base = ("url", "https://cloud.example.org");
        assert!(build(&values(&[base]), &http).is_ok());
        assert!(build(
            &values(&[base, ("service-user", "svc"), ("service-password-file", f)]),
            &http
        )
        .is_ok());
        let e = build_err(&[base, ("service-user", "svc")]);
        assert!(e.to_string().contains("needs service-password-file"), "{e}");
        let e = build_err(&[base, ("service-password-file", f)]);
        assert!(e.to_string().contains("needs service-user"), "{e}");
        let e = build_err(&[base, ("service-user", "a:b"), ("service-password-file", f)]);
        assert!(e.to_string().contains("service-user"), "{e}");
        let e = build_err(&[("service-user", "svc"), ("service-password-file", f)]);
        assert!(e.to_string().contains("url"), "{e}");
        let e = build_err(&[("url", "https://x/index.php/apps/ojsxc/ajax/externalApi.php")]);
        assert!(e.to_string().contains("base URL"), "{e}");
        for e in [
            build_err(&[base, ("service-user", "svc")]),
            build_err(&[base, ("service-user", "a:b"), ("service-password-file", f)]),
        ] {
            assert!(!e.to_string().contains("svc-secret"));
        }
    }

    #[test]
    fn settings_are_per_domain_ejabberd_options() {
        for key in [SERVICE_USER, SERVICE_PASSWORD_FILE] {
            let s = crate::catalogue::find(key).expect("declared");
            assert!(s.per_domain);
        }
        assert_eq!(
            crate::catalogue::find_vm("auth_cloud_service_password_file").map(|s| s.key),
            Some(SERVICE_PASSWORD_FILE)
        );
        assert_eq!(
            crate::catalogue::find_vm("auth_cloud_service_user").map(|s| s.key),
            Some(SERVICE_USER)
        );
    }
}
