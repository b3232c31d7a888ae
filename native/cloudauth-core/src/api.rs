//! The JSXC external API (ojsxc `externalApi.php`, protocol version 1):
//! operations, their request bodies and the decoding of replies.
//!
//! Replies are JSON `{"result": "success"|"noauth"|"error", "data": …}`.
//! `auth` answers `success` (with `data.uid`) or `noauth`; `isuser` answers
//! `success` with `data.isUser`; `sharedroster` answers `success` with
//! `data.sharedRoster`, an object `{uid: {name, groups}}` or `[]` when empty
//! (PHP's empty array).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::signature::form_body;

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

/// A reply that is not what the API promises.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON at all (an HTML error page, a proxy's answer, …).
    #[error("reply is not JSON: {snippet:?}")]
    NotJson {
        /// The start of the body, made printable.
        snippet: String,
    },
    /// JSON, but without the fields this operation needs.
    #[error("unexpected reply shape: {0}")]
    Shape(String),
}

/// Decodes the envelope of a reply body.
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| DecodeError::NotJson {
        snippet: printable_snippet(body, 120),
    })?;
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
            Ok(Envelope::Error(printable_snippet(msg.as_bytes(), 200)))
        }
        other => Err(DecodeError::Shape(format!(
            "unknown result {:?}",
            printable_snippet(other.as_bytes(), 40)
        ))),
    }
}

/// Reads `data.isUser` of a successful `isuser` reply.
pub fn decode_is_user(data: &Value) -> Result<bool, DecodeError> {
    data.get("isUser")
        .and_then(Value::as_bool)
        .ok_or_else(|| DecodeError::Shape("success without boolean data.isUser".into()))
}

/// One member of a shared roster: display name and the groups shared with the asker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterMember {
    /// Display name in the cloud.
    #[serde(default)]
    pub name: String,
    /// Display names of the groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The shared roster: cloud user id → member.
pub type SharedRoster = BTreeMap<String, RosterMember>;

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

/// The first `max` characters of `bytes`, lossily decoded, control
/// characters replaced, so that it is safe to put in a log line.
pub fn printable_snippet(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
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

    #[test]
    fn snippets_are_printable_and_bounded() {
        let s = printable_snippet(b"a\nb\x00c\xffd", 100);
        assert!(!s.contains('\n') && !s.contains('\0'));
        assert_eq!(printable_snippet(b"abcdef", 3), "abc…");
    }
}
