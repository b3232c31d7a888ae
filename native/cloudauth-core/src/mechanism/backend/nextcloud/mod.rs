//! The `nextcloud` backend: Nextcloud's own OCS API (v2), no app needed.
//!
//! - Passwords (and app passwords, which are passwords to this API): `GET
//!   {url}/ocs/v2.php/cloud/user?format=json` with the user's credentials
//!   as HTTP basic auth; 200 names the account the credentials belong to,
//!   401 is a wrong password (24: a fixed XML body whatever `format` asks
//!   for; 32/34: JSON as asked). 401 "Current user is not logged in" with
//!   credentials sent is a two-factor (or `token_auth_enforced`) account:
//!   Nextcloud did not check the password, only app passwords work; a "no",
//!   logged once per user with that hint.
//! - Whether a user exists, and the shared roster, need a service account
//!   (`service-user`, `service-password-file`) that is a Nextcloud admin or
//!   a subadmin of the users' groups: `cloud/users/{id}`,
//!   `cloud/users/{id}/groups/details` (group display names; `…/groups`,
//!   ids only, where that is missing) and `cloud/groups/{g}/users/details`
//!   (paged with `limit`/`offset`). Without one, `isuser` cannot find out
//!   (trouble, never "no") and the shared roster is off. 404 with OCS 998
//!   is "unknown, or not visible to the service account" (trouble), 404
//!   with OCS 404 unknown ("no"); a disabled account (`enabled: false`)
//!   does not exist for `isuser` and is left out of shared rosters. Any 401
//!   for the service account is about its credentials: once refused, they
//!   are not sent again until `service-password-file` changes or
//!   [`SERVICE_BACKOFF`] passed (each refusal is one failure Nextcloud
//!   records against this server's address); meanwhile `isuser` and the
//!   roster answer trouble without asking.
//!
//! Every OCS request carries `OCS-APIRequest: true`; Nextcloud answers 412
//! without it, which in practice means a proxy stripped it.
//!
//! Nextcloud's brute-force protection records failed logins per client
//! address. Nextcloud 24 then delays *every* request from there (right
//! passwords included, up to 25 s); 32/34 block it instead: HTTP 429 (OCS
//! 429, no `Retry-After`) for every request with credentials once more
//! than 10 failures were recorded in 30 minutes (25–28: HTTP 500 "Reached
//! maximum delay"). A block is [`BackendError::Blocked`], which names the
//! fix. For Nextcloud the XMPP server is one address, so this backend asks
//! the decision layer not to resend a password that just failed
//! ([`Backend::repeat_refusal_window`]) and watches login latency to tell
//! the admin when 24's delay has kicked in.
//!
//! The replies handled here are those real Nextcloud 24.0.5, 32.0.2 and
//! 34.0.1 gave when recorded; `jsxc-test-backend` emulates them (its
//! `src/ocs.rs`, `--nextcloud-version`).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use super::http::{host_of, HttpClient, HttpReply};
use super::{
    decode_json, printable_snippet, Account, Backend, BackendEntry, BackendError, BackendFuture,
    DecodeError, DoctorFuture,
};
use crate::bruteforce::FailureBudget;
use crate::doctor::{self, BackendReport, Check};
use crate::roster::{RosterMember, SharedRoster};
use crate::secret::Secret;
use crate::settings::keys;
use crate::settings::schema::{Kind, Spec};
use crate::settings::values::{Origin, SettingsError, Values};

mod doctor_checks;
mod login;
mod protection;
mod provisioning;
mod service;

pub(crate) use login::*;
pub use service::*;

/// `service-user`: the Nextcloud account `isuser` and the shared roster ask as.
pub(crate) const SERVICE_USER: &str = "service-user";
/// `service-password-file`: file whose first line is that account's (app) password.
pub(crate) const SERVICE_PASSWORD_FILE: &str = "service-password-file";

/// How long a wrong password is answered "no" from memory: each resent
/// failure is recorded by Nextcloud's brute-force protection against this
/// server's address, and a client with a stale password retries for
/// hours. Far beyond Nextcloud's 30-minute window, so such a client costs
/// at most one recorded failure per four hours; a different password (the
/// right one) still goes through at once.
pub(crate) const REPEAT_REFUSAL_WINDOW: Duration = Duration::from_secs(4 * 3600);
/// `bruteforce-max-attempts`: Nextcloud's `auth.bruteforce.max-attempts`.
pub(crate) const BRUTEFORCE_MAX_ATTEMPTS: &str = "bruteforce-max-attempts";
/// Setting: send the client's address (when the XMPP server tells it) as
/// `X-Forwarded-For` on users' password checks.
pub(crate) const FORWARD_CLIENT_ADDRESS: &str = "forward-client-address";
/// A login slower than this (and than [`THROTTLE_FACTOR`] × the typical
/// latency) is taken as a sign of the brute-force throttle. Nextcloud's
/// first delays are 0.2–0.4 s, too close to an argon2id check (≈0.4 s) to
/// tell apart; from 2 s on nothing but the throttle explains it.
pub(crate) const THROTTLE_FLOOR: Duration = Duration::from_secs(2);
/// How many times the typical login latency counts as throttled.
pub(crate) const THROTTLE_FACTOR: u32 = 5;
/// At most one throttle warning per this interval (the condition lasts).
pub(crate) const THROTTLE_WARN_INTERVAL: Duration = Duration::from_secs(600);

/// How long refused service-account credentials are not sent again (unless
/// `service-password-file` changes first): Nextcloud 32/34 block this
/// server's address after 11 failures in 30 minutes, and `isuser` comes
/// once per message to an offline user.
pub(crate) const SERVICE_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// Group members asked for per request (`limit`), so that a group of
/// thousands is a few bounded replies rather than one huge one.
pub(crate) const MEMBERS_PAGE: usize = 200;
/// More members than this in one group is taken as a reply gone wrong.
pub(crate) const MAX_GROUP_MEMBERS: usize = 100_000;
/// At most this many two-factor users are remembered as already told about.
const TWO_FACTOR_TOLD_MAX: usize = 10_000;

/// The OCS header Nextcloud's CSRF check requires of API clients.
const OCS_API_REQUEST: &str = "OCS-APIRequest";
/// Nextcloud's OCS message when it did not log the request in: no
/// credentials, or (with credentials) an account whose password this API
/// does not take: two-factor, or `token_auth_enforced`.
const NOT_LOGGED_IN: &str = "Current user is not logged in";

/// What to check when Nextcloud refuses the service account's login.
const HINT_CREDENTIALS: &str = "check service-user and service-password-file";
/// The same for a plain refusal (wrong, rotated or revoked password).
const HINT_SERVICE_PASSWORD: &str = "check service-password-file (best an app password of that account: Personal settings → Security → Devices & sessions)";
/// The same when Nextcloud did not even check it.
const HINT_SERVICE_TWO_FACTOR: &str = "Nextcloud did not check it (\"Current user is not logged in\"): the account uses two-factor authentication, so service-password-file must hold an app password of it (Personal settings → Security → Devices & sessions)";
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
        Spec::new(
            BRUTEFORCE_MAX_ATTEMPTS,
            Kind::Count { min: 1, max: 1_000 },
            "nextcloud backend: Nextcloud's auth.bruteforce.max-attempts (failed logins per address within 30 minutes before it blocks the address); cloudauth causes at most this less 2 there, unless Nextcloud allow-lists this server",
        )
        .default("10")
        .per_domain()
        .value_name("N"),
        Spec::new(
            FORWARD_CLIENT_ADDRESS,
            Kind::Flag,
            "nextcloud backend: send the client's address (Prosody tells it; ejabberd cannot) as X-Forwarded-For on users' password checks, so that a Nextcloud listing this server in trusted_proxies counts failed logins per client instead of for this server",
        )
        .default("false")
        .per_domain(),
    ],
    transport: super::Transport::Http,
    schemes: crate::vocab::url::HTTP_SCHEMES,
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
    // The schema gives the default and bounds it (1..=1000).
    let max_attempts = v
        .count(BRUTEFORCE_MAX_ATTEMPTS)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            invalid(
                BRUTEFORCE_MAX_ATTEMPTS,
                "must be a whole number from 1 to 1000".into(),
            )
        })?;
    let mut nc = Nextcloud::new(url, service, Arc::clone(http))
        .map_err(|why| invalid(keys::URL, why.to_string()))?
        .with_failure_budget(max_attempts, v.path(keys::DB))
        .with_client_address_forwarding(v.flag(FORWARD_CLIENT_ADDRESS));
    if let Some(file) = v.secret_file(SERVICE_PASSWORD_FILE) {
        nc = nc.with_service_password_file(file.to_path_buf());
    }
    Ok(Arc::new(nc))
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
pub(crate) fn ocs_url(base: &reqwest::Url, segments: &[&str]) -> Option<reqwest::Url> {
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

/// The strings of the list `key` in an OCS record (`groups`, `subadmin`);
/// empty when it is missing or not a list.
fn string_list(data: &Value, key: &str) -> Vec<String> {
    data.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `ocs.data` of an OCS JSON reply.
fn ocs_data(body: &[u8]) -> Result<Value, DecodeError> {
    let mut v = decode_json(body)?;
    v.pointer_mut("/ocs/data")
        .map(Value::take)
        .ok_or_else(|| DecodeError::Shape("no ocs.data in the reply".into()))
}

/// `ocs.meta.statuscode` of an OCS reply (a number, or digits in a
/// string), JSON or XML: 24 always sends its 401 as XML, 32/34 send XML
/// whenever the JSON was not asked for.
pub(crate) fn ocs_statuscode(body: &[u8]) -> Option<u64> {
    match decode_json(body) {
        Ok(v) => match v.pointer("/ocs/meta/statuscode")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        },
        Err(_) => xml_meta(body, "statuscode")?.trim().parse().ok(),
    }
}

/// `ocs.meta.message` of an OCS reply, JSON or XML.
pub(crate) fn ocs_message(body: &[u8]) -> Option<String> {
    match decode_json(body) {
        Ok(v) => v
            .pointer("/ocs/meta/message")
            .and_then(Value::as_str)
            .map(str::to_string),
        Err(_) => xml_meta(body, "message").map(str::to_string),
    }
}

/// The text of `<ocs><meta><NAME>…</NAME>`: enough of XML for the
/// envelope Nextcloud writes (no attributes, no entities in these fields).
fn xml_meta<'b>(body: &'b [u8], name: &str) -> Option<&'b str> {
    let text = std::str::from_utf8(body).ok()?;
    let meta_start = text.find("<meta>")? + "<meta>".len();
    let meta = &text[meta_start..text[meta_start..].find("</meta>")? + meta_start];
    let open = format!("<{name}>");
    let start = meta.find(&open)? + open.len();
    let end = meta[start..].find(&format!("</{name}>"))? + start;
    Some(&meta[start..end])
}

/// Whether `reply` is Nextcloud's brute-force block: HTTP 429, OCS
/// statuscode 429 (in a reply that is neither a success nor a login
/// refusal), or on Nextcloud 25–28 HTTP 500 "Reached maximum delay".
pub(crate) fn is_blocked(reply: &HttpReply) -> bool {
    const MAX_DELAY: &[u8] = b"Reached maximum delay";
    reply.status == 429
        || (!matches!(reply.status, 200 | 401) && ocs_statuscode(&reply.body) == Some(429))
        || (reply.status == 500 && reply.body.windows(MAX_DELAY.len()).any(|w| w == MAX_DELAY))
}

/// The trouble every OCS reply can be, whatever was asked: the brute-force
/// block, a stripped `OCS-APIRequest` header.
fn shared_trouble(reply: &HttpReply, url: &reqwest::Url) -> Option<BackendError> {
    if is_blocked(reply) {
        return Some(BackendError::Blocked { host: host_of(url) });
    }
    (reply.status == 412).then(csrf_stripped)
}

/// The account id of a successful `cloud/user` reply (`ocs.data.id`).
pub(crate) fn decode_current_user_id(body: &[u8]) -> Result<String, DecodeError> {
    ocs_data(body)?
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| DecodeError::Shape("cloud/user without string ocs.data.id".into()))
}

/// A successful `cloud/users/{id}` reply: the account is there (`ocs.data.id`)
/// and whether it is enabled (`enabled: false` only for a disabled one;
/// the field is missing for viewers who may not manage the account).
fn decode_user_found(body: &[u8]) -> Result<bool, DecodeError> {
    let data = ocs_data(body)?;
    match data.get("id") {
        Some(Value::String(_)) => Ok(enabled(&data)),
        _ => Err(DecodeError::Shape(
            "cloud/users/{id} without string ocs.data.id".into(),
        )),
    }
}

/// Whether a user record is not marked disabled (`enabled` false, 0, "0"
/// or "" is disabled; a missing field is not).
fn enabled(record: &Value) -> bool {
    match record.get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() != Some(0),
        Some(Value::String(s)) => !matches!(s.as_str(), "" | "0" | "false"),
        _ => true,
    }
}

/// One group of a user, as `users/{id}/groups/details` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Nextcloud group id (what URLs name).
    pub id: String,
    /// Display name (the id when Nextcloud gives none).
    pub name: String,
}

/// The groups of a `cloud/users/{id}/groups/details` reply
/// (`ocs.data.groups`: a list of `{"id", "displayname", …}`).
pub(crate) fn decode_user_group_details(body: &[u8]) -> Result<Vec<Group>, DecodeError> {
    let data = ocs_data(body)?;
    let shape = || {
        DecodeError::Shape(
            "users/{id}/groups/details without a list of {id, displayname} in ocs.data.groups"
                .into(),
        )
    };
    let list = data
        .get("groups")
        .and_then(Value::as_array)
        .ok_or_else(shape)?;
    list.iter()
        .map(|g| {
            let id = g.get("id").and_then(Value::as_str).ok_or_else(shape)?;
            let name = g
                .get("displayname")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(id);
            Ok(Group {
                id: id.to_string(),
                name: name.to_string(),
            })
        })
        .collect()
}

/// The group ids of a `cloud/users/{id}/groups` reply (`ocs.data.groups`).
pub(crate) fn decode_user_groups(body: &[u8]) -> Result<Vec<String>, DecodeError> {
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

/// What Nextcloud said to a user's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginAnswer {
    /// Right, for this very account.
    Accepted,
    /// Wrong (or unknown user, or a disabled account, or another account's).
    Refused,
    /// Refused without the password being checked: a two-factor or
    /// `token_auth_enforced` account, which only app passwords open.
    PasswordNotChecked,
}

impl LoginAnswer {
    /// The yes or no of it.
    pub fn accepted(self) -> bool {
        self == LoginAnswer::Accepted
    }
}

/// The answer of a `cloud/user` reply to `user`'s credentials: yes only for
/// HTTP 200 naming this very account (folded), no for HTTP 401 or another
/// account's id, anything else trouble (a block: [`BackendError::Blocked`]).
pub(crate) fn auth_answer(
    reply: &HttpReply,
    url: &reqwest::Url,
    user: &str,
) -> Result<LoginAnswer, BackendError> {
    if let Some(e) = shared_trouble(reply, url) {
        return Err(e);
    }
    match reply.status {
        200 => {
            let id = decode_current_user_id(&reply.body)?;
            if fold(&id) == fold(user) {
                Ok(LoginAnswer::Accepted)
            } else {
                // Nextcloud also takes e-mail addresses and other login
                // names: right credentials, but of another account.
                warn!(
                    "{:?}: the credentials are right but belong to Nextcloud account {:?}, not {:?}; refused",
                    user,
                    printable_snippet(id.as_bytes(), 80),
                    user
                );
                Ok(LoginAnswer::Refused)
            }
        }
        // 24: a fixed XML body whatever `format` says; 32/34: as asked.
        // Credentials were sent, so "not logged in" means Nextcloud would
        // not take a password for this account at all.
        401 if ocs_message(&reply.body).as_deref() == Some(NOT_LOGGED_IN) => {
            Ok(LoginAnswer::PasswordNotChecked)
        }
        401 => Ok(LoginAnswer::Refused),
        _ => Err(reply.unexpected()),
    }
}

/// The answer of a `cloud/users/{id}` reply about `user`, asked as
/// `service_user`: yes for HTTP 200 with `ocs.data.id` of an enabled
/// account, no for a disabled one and for HTTP 404 with OCS statuscode
/// 404; 404 with 998 is "unknown, or not visible" (trouble).
pub(crate) fn is_user_answer(
    reply: &HttpReply,
    url: &reqwest::Url,
    user: &str,
    service_user: &str,
) -> Result<bool, BackendError> {
    if let Some(e) = shared_trouble(reply, url) {
        return Err(e);
    }
    match reply.status {
        // A disabled account cannot log in: for XMPP it does not exist.
        200 => Ok(decode_user_found(&reply.body)?),
        // OCS statuscode 404: no such user. 998: no such user, or one the
        // service account may not see (a subadmin of other groups), which
        // Nextcloud does not tell apart; anything else (an HTML 404: a
        // wrong URL) is no answer at all.
        404 => match ocs_statuscode(&reply.body) {
            Some(404) => Ok(false),
            Some(998) => Err(not_visible(user, service_user)),
            _ => Err(reply.unexpected()),
        },
        401 | 403 => Err(service_refused(reply, service_user)),
        _ => Err(reply.unexpected()),
    }
}

/// 404 with OCS 998 for `user`.
fn not_visible(user: &str, service_user: &str) -> BackendError {
    BackendError::NotVisible {
        user: printable_snippet(user.as_bytes(), 80),
        service_user: service_user.to_string(),
        scope: String::new(),
    }
}

/// One member of a group, as `users/details` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Nextcloud user id.
    pub uid: String,
    /// Display name (the id when Nextcloud gives none).
    pub name: String,
    /// False for a disabled account (left out of shared rosters).
    pub enabled: bool,
}

/// The members of a `cloud/groups/{g}/users/details` reply: `ocs.data.users`
/// is an object keyed by user id, or `[]` when empty (PHP's empty array; a
/// PHP array whose keys are all numbers is also sent as a list).
pub(crate) fn decode_group_members(body: &[u8]) -> Result<Vec<Member>, DecodeError> {
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
            enabled: enabled(entry),
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

/// The shared roster from the user's groups (by display name), in the
/// user's order, each with its members: every enabled member once, with
/// its display name and the groups (of these) it is in. The user is a
/// member of its own groups, so it is included, as the JSXC `sharedroster`
/// operation does; no groups give an empty roster. Disabled accounts are
/// left out: they cannot log in, and a contact nobody answers is noise.
pub(crate) fn build_shared_roster(groups: &[(String, Vec<Member>)]) -> SharedRoster {
    let mut roster = SharedRoster::new();
    for (group, members) in groups {
        for m in members.iter().filter(|m| m.enabled) {
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

/// What a refusal of the service account (`user`) means: a 401 is about
/// its credentials (on 32/34 a wrong password's 401 is a JSON envelope
/// too, so the body's format tells nothing), "not logged in" with them a
/// two-factor account; a 403, and the 401 with an empty OCS message that
/// a controller sends to a logged-in account without the rights (a plain
/// user asking for another's groups), are about its rights.
fn service_refused(reply: &HttpReply, user: &str) -> BackendError {
    let message = ocs_message(&reply.body);
    match reply.status {
        401 if message.as_deref() != Some("") => BackendError::ServiceRefused {
            user: user.to_string(),
            hint: if message.as_deref() == Some(NOT_LOGGED_IN) {
                HINT_SERVICE_TWO_FACTOR
            } else {
                HINT_SERVICE_PASSWORD
            },
        },
        status => BackendError::Unauthorized {
            status,
            hint: HINT_RIGHTS,
        },
    }
}

/// One Nextcloud, asked through its OCS API.
pub struct Nextcloud {
    base: reqwest::Url,
    current_user: reqwest::Url,
    service: Option<Service>,
    http: Arc<HttpClient>,
    /// Whether "isuser and the shared roster are off" was logged.
    told_no_service: AtomicBool,
    /// Two-factor users already told to use an app password (bounded).
    told_two_factor: Mutex<HashSet<String>>,
    /// Set once `users/{id}/groups/details` turned out missing (Nextcloud
    /// before 32): group ids are then taken as their names.
    no_group_details: AtomicBool,
    /// What the service account covers ("; svc is subadmin of staff,
    /// chess"), asked once, on the first 404 998, for the message.
    service_scope: Mutex<Option<String>>,
    latency: LatencyWatch,
    /// Failed logins this server caused here, and Nextcloud's block.
    budget: Option<Arc<FailureBudget>>,
    capabilities: reqwest::Url,
    /// `forward-client-address`: users' client addresses go to Nextcloud.
    forward_client: bool,
}

impl std::fmt::Debug for Nextcloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nextcloud")
            .field("base", &shown(&self.base))
            .field("service", &self.service.as_ref().map(|s| &s.user))
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
        let capabilities =
            ocs_url(&base, &["cloud", "capabilities"]).ok_or("the URL cannot have a path")?;
        Ok(Nextcloud {
            base,
            current_user,
            service: service.map(Service::new),
            http,
            told_no_service: AtomicBool::new(false),
            told_two_factor: Mutex::new(HashSet::new()),
            no_group_details: AtomicBool::new(false),
            service_scope: Mutex::new(None),
            latency: LatencyWatch::new(THROTTLE_FLOOR),
            budget: None,
            capabilities,
            forward_client: false,
        })
    }

    /// The file the service account's password came from: re-read after
    /// Nextcloud refused it, once it changed.
    pub(crate) fn with_service_password_file(mut self, path: PathBuf) -> Self {
        if let Some(s) = &mut self.service {
            s.password_file = Some(path);
        }
        self
    }

    /// Another back-off for refused service credentials (default
    /// [`SERVICE_BACKOFF`]), for tests.
    pub fn with_service_backoff(mut self, backoff: Duration) -> Self {
        if let Some(s) = &mut self.service {
            s.backoff = backoff;
        }
        self
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
    fn service(&self) -> Option<&Service> {
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

    fn failure_budget(&self) -> Option<&FailureBudget> {
        self.budget.as_deref()
    }

    /// Nextcloud logs in the user part alone.
    fn answer_depends_on_domain(&self) -> bool {
        false
    }

    fn doctor<'a>(&'a self, _domain: &'a str) -> DoctorFuture<'a> {
        Box::pin(self.doctor_op())
    }

    /// Reads the capabilities (public) now rather than at the first login.
    fn start(&self) -> Option<super::StartFuture<'_>> {
        self.budget.as_ref()?;
        Some(Box::pin(self.read_capabilities_if_due()))
    }
}

#[cfg(test)]
mod tests {
    use super::doctor_checks::bruteforce_check;
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
                    name: "Alice Liddell".into(),
                    enabled: true,
                },
                Member {
                    uid: "bob".into(),
                    name: "bob".into(),
                    enabled: true,
                },
                Member {
                    uid: "carol".into(),
                    name: "carol".into(),
                    enabled: true,
                },
            ]
        );
        assert_eq!(decode_group_members(&ocs(json!({"users": []}))), Ok(vec![]));
        // Numeric ids make PHP send a list; the ids are then in the entries.
        assert_eq!(
            decode_group_members(&ocs(json!({"users": [{"id": "0", "displayname": "Zero"}]}))),
            Ok(vec![Member {
                uid: "0".into(),
                name: "Zero".into(),
                enabled: true,
            }])
        );
        // The key stands in for a missing id.
        assert_eq!(
            decode_group_members(&ocs(json!({"users": {"dave": {}}}))),
            Ok(vec![Member {
                uid: "dave".into(),
                name: "dave".into(),
                enabled: true,
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
            enabled: true,
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

    fn reply(status: u16, body: &[u8]) -> HttpReply {
        HttpReply {
            status,
            content_type: "application/json".into(),
            body: body.to_vec(),
            elapsed: Duration::from_millis(5),
            date: None,
        }
    }

    fn failure(statuscode: u16, message: &str) -> Vec<u8> {
        body(
            json!({"ocs": {"meta": {"status": "failure", "statuscode": statuscode,
            "message": message}, "data": []}}),
        )
    }

    fn nc_url() -> reqwest::Url {
        reqwest::Url::parse("http://127.0.0.1:8080/ocs/v2.php/cloud/user?format=json").unwrap()
    }

    /// Nextcloud 32/34: 429 (JSON as asked, or XML), and 25–28's 500.
    #[test]
    fn a_block_is_its_own_trouble_and_names_the_fix() {
        let url = nc_url();
        let xml = b"<?xml version=\"1.0\"?>\n<ocs>\n <meta>\n  <status>failure</status>\n  <statuscode>429</statuscode>\n  <message>Reached maximum delay</message>\n </meta>\n <data/>\n</ocs>\n";
        for r in [
            reply(429, &failure(429, "Reached maximum delay")),
            reply(429, xml),
            reply(429, b""),
            reply(500, &failure(500, "Reached maximum delay")),
            reply(500, b"<html>Reached maximum delay</html>"),
        ] {
            assert!(is_blocked(&r), "{}", r.status);
            let e = auth_answer(&r, &url, "alice").unwrap_err();
            assert_eq!(
                e,
                BackendError::Blocked {
                    host: "127.0.0.1:8080".into()
                }
            );
            let e = is_user_answer(&r, &url, "alice", "svc").unwrap_err();
            assert!(matches!(e, BackendError::Blocked { .. }));
            let m = e.to_string();
            assert!(m.contains("Administration → Security"), "{m}");
            assert!(
                m.contains("occ config:app:set bruteForce whitelist_1 --value=ADDR/32"),
                "{m}"
            );
            assert!(m.contains("occ security:bruteforce:reset ADDR"), "{m}");
        }
        assert!(!is_blocked(&reply(500, b"oops")));
        assert_eq!(ocs_statuscode(xml), Some(429));
        assert_eq!(ocs_message(xml).as_deref(), Some("Reached maximum delay"));
    }

    #[test]
    fn login_answers_of_24_and_32() {
        let url = nc_url();
        let ok = ocs(json!({"id": "alice", "display-name": "Alice Liddell"}));
        assert_eq!(
            auth_answer(&reply(200, &ok), &url, "Alice"),
            Ok(LoginAnswer::Accepted)
        );
        // 24: the fixed XML; 32/34: JSON.
        let xml24 = b"<ocs><meta><status>failure</status><statuscode>997</statuscode><message>Unauthorised</message></meta><data/></ocs>";
        for b in [&xml24[..], &failure(997, "Unauthorised")] {
            assert_eq!(
                auth_answer(&reply(401, b), &url, "alice"),
                Ok(LoginAnswer::Refused)
            );
        }
        // Two-factor or token_auth_enforced: the password was never checked.
        let xml_tfa = b"<?xml version=\"1.0\"?>\n<ocs>\n <meta>\n  <status>failure</status>\n  <statuscode>997</statuscode>\n  <message>Current user is not logged in</message>\n </meta>\n <data/>\n</ocs>\n";
        for b in [&xml_tfa[..], &failure(997, NOT_LOGGED_IN)] {
            let a = auth_answer(&reply(401, b), &url, "erin");
            assert_eq!(a, Ok(LoginAnswer::PasswordNotChecked));
            assert!(!a.unwrap().accepted(), "a no");
        }
        // An e-mail login answers with the uid; "grace" logging in is grace.
        let grace = ocs(json!({"id": "grace"}));
        assert_eq!(
            auth_answer(&reply(200, &grace), &url, "grace"),
            Ok(LoginAnswer::Accepted)
        );
        assert!(matches!(
            auth_answer(&reply(412, br#"{"message":"CSRF check failed"}"#), &url, "a"),
            Err(BackendError::Api(m)) if m.contains("OCS-APIRequest")
        ));
    }

    #[test]
    fn is_user_answers_of_32() {
        let url = nc_url();
        let user =
            |enabled: Value| ocs(json!({"id": "frank", "enabled": enabled, "groups": ["staff"]}));
        assert_eq!(
            is_user_answer(&reply(200, &user(json!(true))), &url, "frank", "svc"),
            Ok(true)
        );
        assert_eq!(
            is_user_answer(&reply(200, &ocs(json!({"id": "bob"}))), &url, "bob", "svc"),
            Ok(true)
        );
        // Disabled: does not exist for XMPP.
        assert_eq!(
            is_user_answer(&reply(200, &user(json!(false))), &url, "frank", "svc"),
            Ok(false)
        );
        assert_eq!(
            is_user_answer(
                &reply(404, &failure(404, "User does not exist")),
                &url,
                "nobody",
                "svc"
            ),
            Ok(false)
        );
        // 998: unknown or invisible to a subadmin: trouble, never "no".
        let e = is_user_answer(&reply(404, &failure(998, "")), &url, "dave", "svc").unwrap_err();
        assert!(
            matches!(&e, BackendError::NotVisible { user, service_user, .. } if user == "dave" && service_user == "svc")
        );
        let m = e.to_string();
        assert!(
            m.contains("unknown, or not visible to the service account"),
            "{m}"
        );
        assert!(
            m.contains("a subadmin sees only its groups' members"),
            "{m}"
        );
        // Any 401 is the credentials, whatever the body's format.
        for b in [failure(997, "Unauthorised"), b"<ocs/>".to_vec()] {
            let e = is_user_answer(&reply(401, &b), &url, "bob", "svc").unwrap_err();
            assert_eq!(
                e,
                BackendError::ServiceRefused {
                    user: "svc".into(),
                    hint: HINT_SERVICE_PASSWORD
                }
            );
            assert!(
                e.to_string().starts_with(
                    "Nextcloud refuses service-user svc's password: check service-password-file"
                ),
                "{e}"
            );
            assert!(!e.to_string().contains("subadmin"), "{e}");
        }
        let e = is_user_answer(
            &reply(401, &failure(997, NOT_LOGGED_IN)),
            &url,
            "bob",
            "svc",
        )
        .unwrap_err();
        assert!(e.to_string().contains("app password"), "{e}");
        assert!(e.to_string().contains("two-factor"), "{e}");
        // Logged in, but no rights: the controller's own 401, message "".
        let e = is_user_answer(&reply(401, &failure(997, "")), &url, "bob", "svc").unwrap_err();
        assert_eq!(
            e,
            BackendError::Unauthorized {
                status: 401,
                hint: HINT_RIGHTS
            }
        );
        let e = is_user_answer(&reply(403, &failure(403, "x")), &url, "bob", "svc").unwrap_err();
        assert_eq!(
            e,
            BackendError::Unauthorized {
                status: 403,
                hint: HINT_RIGHTS
            }
        );
    }

    #[test]
    fn group_details_and_disabled_members() {
        let b = ocs(json!({"groups": [
            {"id": "staff", "displayname": "Staff Team", "usercount": 4, "disabled": 1},
            {"id": "chess", "displayname": ""}
        ]}));
        assert_eq!(
            decode_user_group_details(&b),
            Ok(vec![
                Group {
                    id: "staff".into(),
                    name: "Staff Team".into()
                },
                Group {
                    id: "chess".into(),
                    name: "chess".into()
                },
            ])
        );
        assert!(decode_user_group_details(&ocs(json!({"groups": ["staff"]}))).is_err());
        let m = decode_group_members(&ocs(json!({"users": {
            "bob": {"id": "bob", "enabled": true},
            "frank": {"id": "frank", "enabled": false}
        }})))
        .unwrap();
        assert_eq!(
            m.iter().map(|m| m.enabled).collect::<Vec<_>>(),
            [true, false]
        );
        let r = build_shared_roster(&[("Staff Team".into(), m)]);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["bob"], "frank is disabled");
        assert_eq!(r["bob"].groups, ["Staff Team"]);
    }

    #[test]
    fn refused_service_password_waits_for_its_file_or_the_backoff() {
        let dir = std::env::temp_dir().join(format!("cloudauth-nc-svc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("svc");
        std::fs::write(&f, "old-pw\n").unwrap();
        let mut svc = Service::new(ServiceAccount::new("svc", Secret::new("old-pw")).unwrap());
        svc.password_file = Some(f.clone());
        assert!(svc.credentials().is_ok());
        let refused = BackendError::ServiceRefused {
            user: "svc".into(),
            hint: HINT_SERVICE_PASSWORD,
        };
        svc.note(&BackendError::Timeout(Duration::from_secs(1)));
        assert!(svc.credentials().is_ok(), "only a refusal pauses");
        svc.note(&refused);
        for _ in 0..3 {
            let e = svc.credentials().unwrap_err();
            assert!(matches!(e, BackendError::ServicePaused { .. }), "{e}");
            assert!(e.to_string().contains("check service-password-file"), "{e}");
        }
        // Rewritten with the same password: still paused.
        std::fs::write(&f, "old-pw\n\n").unwrap();
        assert!(svc.credentials().is_err());
        // A new password: used at once.
        std::fs::write(&f, "new-password\n").unwrap();
        let a = svc.credentials().unwrap();
        assert_eq!(a.authorization, basic_authorization("svc", b"new-password"));
        // The back-off passed: one more try with the same password.
        svc.note(&refused);
        assert!(svc.credentials().is_err());
        svc.backoff = Duration::ZERO;
        assert!(svc.credentials().is_ok());
    }

    #[test]
    fn bruteforce_lines() {
        use crate::doctor::Status;
        let caps = |bf: Value| json!({"capabilities": {"bruteforce": bf}});
        let st = |bf: Value| bruteforce_check(&caps(bf)).map(|c| (c.status, c.detail));
        assert_eq!(
            st(json!({"delay": 0, "allow-listed": false})).unwrap().0,
            Status::Pass
        );
        let (s, d) = st(json!({"delay": 800, "allow-listed": false})).unwrap();
        assert_eq!(s, Status::Warn);
        assert!(d.contains("about 3 failed logins"), "{d}");
        assert_eq!(
            st(json!({"delay": 25000, "allow-listed": false}))
                .unwrap()
                .0,
            Status::Fail
        );
        let (s, d) = st(json!({"delay": 0, "allow-listed": true})).unwrap();
        assert_eq!(s, Status::Warn);
        assert!(d.contains("only protection"), "{d}");
        assert!(bruteforce_check(&json!({"capabilities": {}})).is_none());
        assert!(looks_like_app_password(&[b'a'; 72]));
        assert!(!looks_like_app_password(b"svc-app"));
        assert!(!looks_like_app_password(&[b'-'; 72]));
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
