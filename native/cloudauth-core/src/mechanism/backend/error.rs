//! Why a backend could not give a yes or a no, and what its reply looked
//! like instead (its shape, never its text: it may hold a password).

use std::time::Duration;

use thiserror::Error;

use crate::log_text::printable_snippet;

/// Why a backend could not give a yes or a no. Each variant is a distinct
/// cause for the log; none of them carries a password or a secret.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BackendError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("HTTP client set-up failed: {0}")]
    Setup(String),
    /// Nothing listens at the URL's host and port.
    #[error("connection refused by {host} (is the URL right and the cloud up?)")]
    ConnectionRefused {
        /// Host and port of the URL.
        host: String,
    },
    /// The host name did not resolve.
    #[error("DNS lookup failed for {host} (check the API URL)")]
    Dns {
        /// Host of the URL.
        host: String,
    },
    /// TLS failed (certificate not trusted, name mismatch, protocol error).
    #[error("TLS failure with {host}: {detail}{}", crate::tls::hint(detail))]
    Tls {
        /// Host of the URL.
        host: String,
        /// What rustls reported.
        detail: String,
    },
    /// Other connection failures (reset, unreachable network, …).
    #[error("connection to {host} failed: {detail}")]
    Connect {
        /// Host of the URL.
        host: String,
        /// The underlying error.
        detail: String,
    },
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A redirect, which is never followed.
    #[error("HTTP {status} redirect to {location:?} not followed (use the final URL in the configuration)")]
    Redirect {
        /// 3xx status code.
        status: u16,
        /// The `Location` header, if any.
        location: String,
    },
    /// The cloud refused the request signature.
    #[error("the cloud rejected the request signature (HTTP {status}: {msg}); is the API secret the one on the JSXC admin page?")]
    SignatureRejected {
        /// HTTP status (500 from ojsxc).
        status: u16,
        /// The cloud's message.
        msg: String,
    },
    /// The backend refused the server's own credentials (API token, service account).
    #[error("the backend refused the server's credentials (HTTP {status}): {hint}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// What to check.
        hint: &'static str,
    },
    /// The service account's login was refused (any HTTP 401 for it):
    /// its credentials, never its rights.
    #[error("Nextcloud refuses service-user {user}'s password: {hint}")]
    ServiceRefused {
        /// The service account's name.
        user: String,
        /// What to check (a two-factor account needs an app password).
        hint: &'static str,
    },
    /// Not asked: the service account's password was refused lately and
    /// neither its file changed nor the back-off passed (each resend would
    /// be one more failure Nextcloud records against this server).
    #[error("not asked: Nextcloud refused service-user {user}'s password {ago_s} s ago: check service-password-file (asked again when the file changes, or in {retry_s} s)")]
    ServicePaused {
        /// The service account's name.
        user: String,
        /// Seconds since the refusal.
        ago_s: u64,
        /// Seconds until it is tried again.
        retry_s: u64,
    },
    /// Nextcloud answered 404 with OCS statuscode 998 for a user: it does
    /// not exist, or the service account may not see it. Not a "no".
    #[error("Nextcloud does not show user {user:?} to service-user {service_user}: unknown, or not visible to the service account (a subadmin sees only its groups' members{scope}); make it an admin, or a subadmin of the user's groups")]
    NotVisible {
        /// The user asked about.
        user: String,
        /// The service account's name.
        service_user: String,
        /// ": the groups …" when known, else empty.
        scope: String,
    },
    /// Nextcloud's brute-force protection blocks this server's address
    /// (HTTP 429 or OCS 429; on 25–28 HTTP 500 "Reached maximum delay"):
    /// every request with credentials is refused, right ones included.
    #[error("Nextcloud at {host}: its brute-force protection blocks this server's address (every login from it is refused, for up to 30 minutes after the failures stop); allow-list the address in Administration → Security (or `occ config:app:set bruteForce whitelist_1 --value=ADDR/32`), then `occ security:bruteforce:reset ADDR`")]
    Blocked {
        /// Host and port of Nextcloud.
        host: String,
    },
    /// Any other status than the ones the API promises.
    #[error("HTTP status {status}{}: {snippet}", status_hint(*status))]
    HttpStatus {
        /// The status code.
        status: u16,
        /// Start of the body, printable.
        snippet: String,
    },
    /// The body exceeded [`http::MAX_BODY`].
    #[error("reply larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not what the API promises.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The cloud answered an error.
    #[error("the cloud answered an error: {0}")]
    Api(String),
    /// The connection broke while the reply was being read.
    #[error("reading the reply failed: {0}")]
    Body(String),
    /// Not asked: the failed logins this server caused at Nextcloud within
    /// its 30-minute window reached what this check may spend
    /// ([`crate::bruteforce`]); one more might get the server's address
    /// blocked. Whether the password is right is not known: "cannot tell".
    #[error("not asked: this server caused {failures} failed logins at Nextcloud within 30 minutes ({limit} may be spent on this kind of check; Nextcloud's brute-force protection blocks the address beyond its max-attempts); try again later, or allow-list this server's address in Nextcloud")]
    FailuresBudgetSpent {
        /// Failures counted (and checks in flight).
        failures: u32,
        /// What this kind of check may spend.
        limit: u32,
    },
    /// This server's own queue to the backend (the request gate) had no
    /// place: says nothing about the backend itself.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// This backend, as configured, cannot answer this question.
    #[error("cannot find out: {0}")]
    Unsupported(&'static str),
}

/// The request gate's refusals: this server's own overload, no backend trouble.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum GateError {
    /// Too many requests already wait for this backend.
    #[error("{waiting} requests already wait for the backend ({limit} in flight): not queued (raise cloud-concurrency only if the backend has the workers)")]
    Overloaded {
        /// Requests in flight allowed.
        limit: usize,
        /// Requests allowed to wait.
        waiting: usize,
    },
    /// The request could not start before its deadline.
    #[error("could not start within {waited:?}: {limit} requests to the backend in flight")]
    QueueTimeout {
        /// Requests in flight allowed.
        limit: usize,
        /// How long it waited.
        waited: Duration,
    },
}

impl From<crate::bruteforce::Spent> for BackendError {
    fn from(s: crate::bruteforce::Spent) -> Self {
        BackendError::FailuresBudgetSpent {
            failures: s.failures,
            limit: s.limit,
        }
    }
}

impl BackendError {
    /// Whether this error means the backend could not be reached or could
    /// not answer (down, unreachable, failing, blocking this server, or not
    /// asked so that it does not block it): the password cache's outage rules
    /// ([`crate::cache::Rules::Unreachable`]) may then stand in for it.
    /// cloudauth's own overload (its queue full, a request that could not
    /// start in time: [`GateError`]) says nothing about the backend: a
    /// week-old cached password must not admit anyone just because this
    /// server is busy. (The decision's other own causes, its guessing pause,
    /// its deadline, its local state, are no `BackendError` at all:
    /// `decision::OwnCause`.)
    pub fn backend_unreachable(&self) -> bool {
        match self {
            BackendError::ConnectionRefused { .. }
            | BackendError::Dns { .. }
            | BackendError::Tls { .. }
            | BackendError::Connect { .. }
            | BackendError::Timeout(_)
            | BackendError::Redirect { .. }
            | BackendError::SignatureRejected { .. }
            | BackendError::Unauthorized { .. }
            | BackendError::ServiceRefused { .. }
            | BackendError::ServicePaused { .. }
            | BackendError::NotVisible { .. }
            | BackendError::Blocked { .. }
            | BackendError::HttpStatus { .. }
            | BackendError::BodyTooLarge(_)
            | BackendError::Decode(_)
            | BackendError::Api(_)
            | BackendError::Body(_)
            | BackendError::FailuresBudgetSpent { .. } => true,
            BackendError::Setup(_) | BackendError::Gate(_) | BackendError::Unsupported(_) => false,
        }
    }

    /// Whether the backend was not asked on purpose (a pause that is
    /// already explained once in the log): the request's own log line is
    /// then no warning.
    pub fn not_asked(&self) -> bool {
        matches!(
            self,
            BackendError::ServicePaused { .. } | BackendError::FailuresBudgetSpent { .. }
        )
    }
}

/// A reply that is not what the API promises.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON at all (an HTML error page, a proxy's answer, …).
    #[error("reply is not JSON{}: {snippet}", page_hint(snippet))]
    NotJson {
        /// The start of the body, made printable.
        snippet: String,
    },
    /// JSON, but without the fields this operation needs.
    #[error("unexpected reply shape: {0}")]
    Shape(String),
}

/// What an unexpected status usually means, for the admin.
fn status_hint(status: u16) -> &'static str {
    match status {
        404 => " (nothing at this URL: check its path, e.g. /index.php/apps/ojsxc/ajax/externalApi.php for jsxc, Nextcloud's base URL for nextcloud)",
        401 | 403 => " (the web server or a proxy refused us before the API: check its access rules)",
        500..=599 => " (the backend failed: see its log, e.g. Nextcloud's nextcloud.log)",
        _ => "",
    }
}

/// What a web page where JSON was expected usually means.
fn page_hint(snippet: &str) -> &'static str {
    if snippet.contains(WEB_PAGE) {
        " but a web page (a login or error page: the URL points at the site, not the API; check its path)"
    } else {
        ""
    }
}

/// Reads a JSON reply body, or says what it was instead.
pub fn decode_json(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    serde_json::from_slice(body).map_err(|_| DecodeError::NotJson {
        snippet: body_shape(body),
    })
}

/// A reply body as it may be logged: its length, what kind of text it is,
/// and the message of a known error field (OCS `ocs.meta.message`, the JSON
/// API's `message`, JSXC's `data.msg`) — never any other text of it. An
/// error page, a debug dump (`print_r`, `var_dump`, a Python repr) or a
/// backend reflecting the request may hold the password or the
/// `Authorization` header in any syntax, so no masking of "values" can be
/// trusted (issue 24: `[password] => …` and "… with password …" leaked).
pub fn body_shape(body: &[u8]) -> String {
    let kind = body_kind(body);
    match known_message(body) {
        Some(m) => format!("{} bytes, {kind}, message {m:?}", body.len()),
        None => format!("{} bytes, {kind}", body.len()),
    }
}

/// What kind of body it is, sniffed (the `Content-Type` may lie).
fn body_kind(body: &[u8]) -> &'static str {
    let text = body.trim_ascii_start();
    if text.is_empty() {
        "empty"
    } else if text.starts_with(b"<") {
        WEB_PAGE
    } else if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        "JSON"
    } else if std::str::from_utf8(body).is_ok() {
        "text"
    } else {
        "binary"
    }
}

/// How [`body_shape`] names markup.
const WEB_PAGE: &str = "markup (a web page)";

/// Where the APIs put an error's message for people.
const MESSAGE_FIELDS: &[&str] = &["/ocs/meta/message", "/message", "/data/msg"];

/// The first non-empty known message field of a JSON body, printable and bounded.
fn known_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    MESSAGE_FIELDS
        .iter()
        .filter_map(|p| v.pointer(p).and_then(serde_json::Value::as_str))
        .find(|m| !m.trim().is_empty())
        .map(|m| printable_snippet(m.as_bytes(), 120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_check() {
        let e = BackendError::HttpStatus {
            status: 404,
            snippet: body_shape(b""),
        };
        assert!(e.to_string().contains("check its path"), "{e}");
        let e = BackendError::from(decode_json(b"<!DOCTYPE html><html>Log in</html>").unwrap_err());
        assert!(e.to_string().contains("a web page"), "{e}");
        let e = BackendError::from(decode_json(b"oops").unwrap_err());
        assert!(!e.to_string().contains("a web page"), "{e}");
    }

    /// Issue 24: only `key=value` and `"key":"value"` were masked; a PHP
    /// `print_r` page, a plain-text page, a Python repr, `var_dump` and a
    /// body reflecting the request's `Authorization` leaked at WARN.
    #[test]
    fn body_shapes_never_show_the_body_but_a_known_message() {
        let leaks: &[&[u8]] = &[
            b"<html><body>Bad request: operation=auth&username=alice&password=hunter2 {\"password\": \"hunter2\"}</body></html>",
            b"Array\n(\n    [user] => alice\n    [password] => hunter2\n)\n",
            b"Login failed for alice with password hunter2, sorry",
            b"{'user': 'alice', 'password': 'hunter2'}",
            b"array(2) {\n  [\"user\"]=>\n  string(5) \"alice\"\n  [\"password\"]=>\n  string(7) \"hunter2\"\n}\n",
            b"POST /login HTTP/1.1\r\nAuthorization: Bearer hunter2\r\n\r\n",
            b"{\"headers\": {\"Authorization\": [\"Basic hunter2\"]}, \"user\": \"alice\"}",
            b"\xff\xfehunter2 alice",
        ];
        for page in leaks {
            let shape = body_shape(page);
            assert!(!shape.contains("hunter2"), "{shape}");
            assert!(!shape.contains("alice"), "{shape}");
            assert!(
                shape.starts_with(&format!("{} bytes, ", page.len())),
                "{shape}"
            );
        }
        assert_eq!(
            body_shape(leaks[0]),
            format!("{} bytes, markup (a web page)", leaks[0].len())
        );
        assert!(body_shape(leaks[2]).ends_with(", text"));
        assert!(body_shape(leaks[6]).ends_with(", JSON"));
        assert!(body_shape(leaks[7]).ends_with(", binary"));
        assert_eq!(body_shape(b""), "0 bytes, empty");
        // A known error field is what an admin needs, and it is shown.
        let ocs = br#"{"ocs":{"meta":{"status":"failure","statuscode":997,"message":"Current user is not logged in"},"data":[]}}"#;
        assert_eq!(
            body_shape(ocs),
            format!(
                "{} bytes, JSON, message \"Current user is not logged in\"",
                ocs.len()
            )
        );
        let jsxc = br#"{"result":"error","data":{"msg":"Signature\nwrong"}}"#;
        assert!(
            body_shape(jsxc).ends_with(r#"message "Signature wrong""#),
            "{}",
            body_shape(jsxc)
        );
    }
}
