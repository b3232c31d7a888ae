//! The `jsxc` backend: the JSXC Nextcloud app's external API (ojsxc
//! `externalApi.php`, protocol version 1): HMAC-signed form POSTs, the
//! operations' bodies and the decoding of replies.
//!
//! Replies are JSON `{"result": "success"|"noauth"|"error", "data": …}`.
//! `auth` answers `success` (with `data.uid`) or `noauth`; `isuser` answers
//! `success` with `data.isUser`; `sharedroster` answers `success` with
//! `data.sharedRoster`, an object `{uid: {name, groups}}` or `[]` when empty
//! (PHP's empty array).

use std::sync::Arc;

use serde_json::Value;

use super::http::{HttpClient, HttpReply};
use super::{
    decode_json, Account, Backend, BackendEntry, BackendError, BackendFuture, DecodeError,
    DoctorFuture,
};
use crate::doctor::{self, BackendReport, Check};
use crate::roster::SharedRoster;
use crate::secret::Secret;
use crate::settings::keys;
use crate::settings::values::{SettingsError, Values};
use crate::signature::{form_body, sign, SIGNATURE_HEADER};

/// The registry entry: `backend = jsxc` (the default) needs `url` and `secret`.
pub(crate) static ENTRY: BackendEntry = BackendEntry {
    name: "jsxc",
    summary:
        "the JSXC Nextcloud app's external API (signed requests; password, isuser, shared roster)",
    settings: &[],
    transport: super::Transport::Http,
    schemes: crate::vocab::url::HTTP_SCHEMES,
    build,
};

fn build(v: &Values, http: &Arc<HttpClient>) -> Result<Arc<dyn Backend>, SettingsError> {
    Ok(Arc::new(Jsxc {
        url: v.require_url(keys::URL, "backend jsxc")?,
        secret: v.require_secret(keys::SECRET, "backend jsxc")?,
        http: Arc::clone(http),
    }))
}

/// The JSXC external API of one Nextcloud.
pub struct Jsxc {
    url: reqwest::Url,
    secret: Secret,
    http: Arc<HttpClient>,
}

impl Jsxc {
    /// A client for the API at `url`, signing with `secret`.
    pub fn new(url: reqwest::Url, secret: Secret, http: Arc<HttpClient>) -> Self {
        Jsxc { url, secret, http }
    }

    /// Sends `op`, signed, and decodes the envelope; `result: error` is trouble.
    pub async fn call(&self, op: Operation<'_>) -> Result<Envelope, BackendError> {
        let reply = self.send(op).await?;
        envelope_of(&reply)
    }

    /// Sends `op`, signed; the reply as it came.
    async fn send(&self, op: Operation<'_>) -> Result<HttpReply, BackendError> {
        let body = op.body();
        let signature = sign(&self.secret, body.as_bytes());
        let request = self
            .http
            .request(reqwest::Method::POST, &self.url)?
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        self.http.send(request, &self.url).await
    }

    /// `isuser` of a name nobody has, signed: an answer at all tells the
    /// URL is right, a `success` that the secret is (ojsxc checks the
    /// signature before anything else and refuses it with HTTP 500
    /// "Signature does not match").
    async fn doctor_op(&self, domain: &str) -> BackendReport {
        const API: &str = "JSXC API";
        let user = doctor::probe_user();
        let shown = doctor::shown_url(&self.url);
        let wrong_path = "url must be the JSXC external API, https://CLOUD/index.php/apps/ojsxc/ajax/externalApi.php \
                          (is the JSXC app installed and enabled in Nextcloud?)";
        let mut report = BackendReport::default();
        let op = Operation::IsUser {
            username: &user,
            domain,
        };
        let reply = match self.send(op).await {
            Ok(r) => r,
            Err(e) => {
                report.checks.push(Check::fail(
                    API,
                    format!("no answer from {shown}: {e}"),
                    "check url and that the cloud is up",
                ));
                return report;
            }
        };
        report.date = reply.date;
        let answers = Check::pass(
            API,
            format!("answers at {shown} in {}", doctor::took(reply.elapsed)),
        );
        match envelope_of(&reply) {
            Ok(Envelope::Success(data)) if decode_is_user(&data).is_ok() => {
                report.checks.push(answers);
                report.checks.push(Check::pass(
                    "signature",
                    "accepted: the secret is the cloud's",
                ));
            }
            Err(BackendError::SignatureRejected { msg, .. }) => {
                report.checks.push(answers);
                report.checks.push(Check::fail(
                    "signature",
                    format!("wrong secret: the API answered, but refused our signature ({msg:?})"),
                    "copy the secret from the JSXC admin page (Nextcloud: Administration → JSXC → API secret) into the secret file",
                ));
            }
            Err(BackendError::HttpStatus { status, snippet }) => {
                report.checks.push(Check::fail(
                    API,
                    format!("no JSXC API at {shown}: HTTP {status} {snippet:?}"),
                    wrong_path,
                ));
            }
            Err(BackendError::Decode(e)) => {
                report.checks.push(Check::fail(
                    API,
                    format!(
                        "no JSXC API at {shown}: HTTP {} {}, {e}",
                        reply.status, reply.content_type
                    ),
                    wrong_path,
                ));
            }
            Ok(other) => {
                report.checks.push(Check::fail(
                    API,
                    format!("{shown} answered isuser with {other:?}, not with data.isUser"),
                    wrong_path,
                ));
            }
            Err(e) => {
                report.checks.push(Check::fail(
                    API,
                    format!("{shown}: {e}"),
                    "see the cloud's log (Nextcloud: Administration → Logging)",
                ));
            }
        }
        if reply.elapsed > doctor::SLOW {
            report.checks.push(Check::warn(
                "latency",
                format!("the API took {}", doctor::took(reply.elapsed)),
                "the cloud is overloaded or slow: logins will be too",
            ));
        }
        report
    }

    async fn auth_op(&self, who: Account<'_>, password: &str) -> Result<bool, BackendError> {
        let op = Operation::Auth {
            username: who.user,
            domain: who.domain,
            password,
        };
        auth_answer(&self.send(op).await?)
    }

    async fn is_user_op(&self, who: Account<'_>) -> Result<bool, BackendError> {
        let op = Operation::IsUser {
            username: who.user,
            domain: who.domain,
        };
        is_user_answer(&self.send(op).await?)
    }

    async fn roster_op(&self, who: Account<'_>) -> Result<SharedRoster, BackendError> {
        let op = Operation::SharedRoster {
            username: who.user,
            domain: who.domain,
        };
        match self.call(op).await? {
            Envelope::Success(data) => Ok(decode_shared_roster(&data)?),
            Envelope::NoAuth => {
                Err(DecodeError::Shape("sharedroster answered noauth".into()).into())
            }
            Envelope::Error(msg) => Err(BackendError::Api(msg)),
        }
    }
}

/// The envelope of a reply; `result: error` is trouble, and a refused
/// signature (any status but 200, with "signature" in the message) is told
/// apart from other errors.
fn envelope_of(reply: &HttpReply) -> Result<Envelope, BackendError> {
    if reply.status != 200 {
        if let Ok(Envelope::Error(msg)) = decode_envelope(&reply.body) {
            if msg.to_ascii_lowercase().contains("signature") {
                return Err(BackendError::SignatureRejected {
                    status: reply.status,
                    msg,
                });
            }
        }
        return Err(reply.unexpected());
    }
    match decode_envelope(&reply.body)? {
        Envelope::Error(msg) => Err(BackendError::Api(msg)),
        other => Ok(other),
    }
}

/// The answer of an `auth` reply: yes only for HTTP 200 with `result:
/// success`, no only for HTTP 200 with `result: noauth`, anything else trouble.
pub fn auth_answer(reply: &HttpReply) -> Result<bool, BackendError> {
    match envelope_of(reply)? {
        Envelope::Success(_) => Ok(true),
        Envelope::NoAuth => Ok(false),
        Envelope::Error(msg) => Err(BackendError::Api(msg)),
    }
}

/// The answer of an `isuser` reply: `data.isUser` of a `result: success`.
pub fn is_user_answer(reply: &HttpReply) -> Result<bool, BackendError> {
    match envelope_of(reply)? {
        Envelope::Success(data) => Ok(decode_is_user(&data)?),
        Envelope::NoAuth => Err(DecodeError::Shape("isuser answered noauth".into()).into()),
        Envelope::Error(msg) => Err(BackendError::Api(msg)),
    }
}

impl Backend for Jsxc {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(self.auth_op(who, password))
    }

    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        Box::pin(self.is_user_op(who))
    }

    fn shared_roster<'a>(&'a self, who: Account<'a>) -> Option<BackendFuture<'a, SharedRoster>> {
        Some(Box::pin(self.roster_op(who)))
    }

    fn doctor<'a>(&'a self, domain: &'a str) -> DoctorFuture<'a> {
        Box::pin(self.doctor_op(domain))
    }
}

/// One call to the external API.
#[derive(Clone, Copy)]
pub enum Operation<'a> {
    /// Is `password` right for `username` (tried as `username@domain`, then `username`)?
    Auth {
        /// Local part as the XMPP server sent it.
        username: &'a str,
        /// Domain sent to the cloud (the auth domain).
        domain: &'a str,
        /// The password to check; never logged.
        password: &'a str,
    },
    /// Does `username` exist?
    IsUser {
        /// Local part.
        username: &'a str,
        /// Domain sent to the cloud.
        domain: &'a str,
    },
    /// Which users share a group with `username`?
    SharedRoster {
        /// Local part.
        username: &'a str,
        /// Domain sent to the cloud.
        domain: &'a str,
    },
}

impl std::fmt::Debug for Operation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so that a password can never reach a log line.
        write!(f, "{}({}@{})", self.name(), self.username(), self.domain())
    }
}

impl<'a> Operation<'a> {
    /// The `operation` field's value.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Auth { .. } => "auth",
            Operation::IsUser { .. } => "isuser",
            Operation::SharedRoster { .. } => "sharedroster",
        }
    }

    /// The local part the operation is about.
    pub fn username(&self) -> &'a str {
        match *self {
            Operation::Auth { username, .. }
            | Operation::IsUser { username, .. }
            | Operation::SharedRoster { username, .. } => username,
        }
    }

    /// The domain sent to the cloud.
    pub fn domain(&self) -> &'a str {
        match *self {
            Operation::Auth { domain, .. }
            | Operation::IsUser { domain, .. }
            | Operation::SharedRoster { domain, .. } => domain,
        }
    }

    /// The exact form-encoded request body, fields in protocol order.
    pub fn body(&self) -> String {
        let mut fields = vec![
            ("operation", self.name()),
            ("username", self.username()),
            ("domain", self.domain()),
        ];
        if let Operation::Auth { password, .. } = self {
            fields.push(("password", password));
        }
        form_body(&fields)
    }
}

/// The `result` field of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// `"success"`, with the `data` member (or `null`).
    Success(Value),
    /// `"noauth"`: wrong credentials.
    NoAuth,
    /// `"error"`, with `data.msg` when the cloud gave one.
    Error(String),
}

/// Decodes the envelope of a reply body.
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, DecodeError> {
    let v = decode_json(body)?;
    let result = v
        .get("result")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::Shape("no string member \"result\"".into()))?;
    match result {
        "success" => Ok(Envelope::Success(
            v.get("data").cloned().unwrap_or(Value::Null),
        )),
        "noauth" => Ok(Envelope::NoAuth),
        "error" => {
            let msg = v
                .pointer("/data/msg")
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            Ok(Envelope::Error(super::printable_snippet(
                msg.as_bytes(),
                200,
            )))
        }
        other => Err(DecodeError::Shape(format!(
            "unknown result {:?}",
            super::printable_snippet(other.as_bytes(), 40)
        ))),
    }
}

/// Reads `data.isUser` of a successful `isuser` reply.
pub(crate) fn decode_is_user(data: &Value) -> Result<bool, DecodeError> {
    data.get("isUser")
        .and_then(Value::as_bool)
        .ok_or_else(|| DecodeError::Shape("success without boolean data.isUser".into()))
}

/// Reads `data.sharedRoster` of a successful `sharedroster` reply (`[]` = empty).
pub fn decode_shared_roster(data: &Value) -> Result<SharedRoster, DecodeError> {
    match data.get("sharedRoster") {
        Some(Value::Array(a)) if a.is_empty() => Ok(SharedRoster::new()),
        Some(v @ Value::Object(_)) => serde_json::from_value(v.clone())
            .map_err(|e| DecodeError::Shape(format!("data.sharedRoster: {e}"))),
        _ => Err(DecodeError::Shape(
            "success without object data.sharedRoster".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_field_order_and_password_only_for_auth() {
        let a = Operation::Auth {
            username: "u",
            domain: "d",
            password: "p:w",
        };
        assert_eq!(
            a.body(),
            "operation=auth&username=u&domain=d&password=p%3Aw"
        );
        let i = Operation::IsUser {
            username: "u",
            domain: "d",
        };
        assert_eq!(i.body(), "operation=isuser&username=u&domain=d");
        let s = Operation::SharedRoster {
            username: "u",
            domain: "d",
        };
        assert_eq!(s.body(), "operation=sharedroster&username=u&domain=d");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let a = Operation::Auth {
            username: "u",
            domain: "d",
            password: "topsecret",
        };
        assert!(!format!("{a:?}").contains("topsecret"));
    }

    #[test]
    fn envelopes() {
        assert_eq!(
            decode_envelope(br#"{"result":"success","data":{"uid":"a"}}"#),
            Ok(Envelope::Success(json!({"uid":"a"})))
        );
        assert_eq!(
            decode_envelope(br#"{"result":"noauth"}"#),
            Ok(Envelope::NoAuth)
        );
        assert_eq!(
            decode_envelope(br#"{"result":"error","data":{"msg":"Signature does not match"}}"#),
            Ok(Envelope::Error("Signature does not match".into()))
        );
        assert!(matches!(
            decode_envelope(b"<html>oops</html>"),
            Err(DecodeError::NotJson { .. })
        ));
        assert!(matches!(decode_envelope(b"{}"), Err(DecodeError::Shape(_))));
        assert!(matches!(
            decode_envelope(br#"{"result":"maybe"}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            decode_envelope(b"[1,2]"),
            Err(DecodeError::Shape(_))
        ));
    }

    #[test]
    fn is_user() {
        assert_eq!(decode_is_user(&json!({"isUser": true})), Ok(true));
        assert_eq!(decode_is_user(&json!({"isUser": false})), Ok(false));
        assert!(decode_is_user(&json!({})).is_err());
        assert!(decode_is_user(&json!({"isUser": "yes"})).is_err());
    }

    #[test]
    fn shared_roster_object_and_empty_array() {
        let r = decode_shared_roster(&json!({"sharedRoster": {
            "bob": {"name": "Bob B", "groups": ["Team"]},
            "carol@example.org": {"name": "Carol", "groups": ["Team", "Ops"]}
        }}))
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r["bob"].name, "Bob B");
        assert_eq!(r["carol@example.org"].groups, vec!["Team", "Ops"]);
        assert!(decode_shared_roster(&json!({"sharedRoster": []}))
            .unwrap()
            .is_empty());
        assert!(decode_shared_roster(&json!({"sharedRoster": [1]})).is_err());
        assert!(decode_shared_roster(&json!({})).is_err());
    }
}
