//! The `json` backend: the generic JSON login API of the ejabberd extauth
//! scripts that post to `{url}/login` and `{url}/exists`:
//! `{"username": "user@domain", "password": …}` in, `{"success": true|false,
//! "message"?}` out. HTTP other than 200, a body that is not JSON, or no
//! boolean `success` is trouble, never a "no". An optional bearer token
//! (from a file) lets the API tell that the XMPP server is calling.

use std::sync::Arc;

use serde_json::{json, Value};
use tracing::debug;

use super::http::{HttpClient, HttpReply};
use super::{
    decode_json, Account, Backend, BackendEntry, BackendError, BackendFuture, DecodeError,
    DoctorFuture,
};
use crate::doctor::{self, BackendReport, Check};
use crate::secret::Secret;
use crate::settings::keys;
use crate::settings::schema::{Kind, Spec};
use crate::settings::values::{SettingsError, Values};

/// `api-token-file`: a bearer token sent with every request.
pub(crate) const API_TOKEN_FILE: &str = "api-token-file";

/// The registry entry: `backend = json` needs `url` (the API's base).
pub(crate) static ENTRY: BackendEntry = BackendEntry {
    name: "json",
    summary: "a JSON login API: POST {url}/login and {url}/exists (password, isuser)",
    settings: &[Spec::new(
        API_TOKEN_FILE,
        Kind::SecretFile,
        "json backend: file holding a bearer token sent as Authorization (first line)",
    )
    .per_domain()
    .value_name("FILE")],
    transport: super::Transport::Http,
    schemes: crate::vocab::url::HTTP_SCHEMES,
    build,
};

fn build(v: &Values, http: &Arc<HttpClient>) -> Result<Arc<dyn Backend>, SettingsError> {
    let base = v.require_url(keys::URL, "backend json")?;
    let endpoint = |name: &str| {
        let mut u = base.clone();
        let path = format!("{}/{name}", base.path().trim_end_matches('/'));
        u.set_path(&path);
        u
    };
    Ok(Arc::new(JsonApi {
        login: endpoint("login"),
        exists: endpoint("exists"),
        token: v.secret(API_TOKEN_FILE).cloned(),
        http: Arc::clone(http),
    }))
}

/// A JSON login API.
pub(crate) struct JsonApi {
    login: reqwest::Url,
    exists: reqwest::Url,
    token: Option<Secret>,
    http: Arc<HttpClient>,
}

/// Reads `{"success": bool, "message"?}`.
pub(crate) fn decode_success(body: &[u8]) -> Result<(bool, Option<String>), DecodeError> {
    let v = decode_json(body)?;
    let success = v
        .get("success")
        .and_then(Value::as_bool)
        .ok_or_else(|| DecodeError::Shape("no boolean member \"success\"".into()))?;
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .map(|m| super::printable_snippet(m.as_bytes(), 200));
    Ok((success, message))
}

impl JsonApi {
    /// Posts `body` to `url` (with the bearer token, if any); the reply as it came.
    async fn send(&self, url: &reqwest::Url, body: Value) -> Result<HttpReply, BackendError> {
        let mut request = self
            .http
            .request(reqwest::Method::POST, url)?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.to_string());
        if let Some(t) = &self.token {
            let value = format!("Bearer {}", String::from_utf8_lossy(t.expose()));
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        self.http.send(request, url).await
    }

    async fn post(&self, url: &reqwest::Url, body: Value) -> Result<bool, BackendError> {
        answer(&self.send(url, body).await?)
    }
}

/// The answer of a `login` or `exists` reply: HTTP 200 with a boolean
/// `success`; anything else is trouble.
pub fn answer(reply: &HttpReply) -> Result<bool, BackendError> {
    match reply.status {
        200 => {}
        401 | 403 => {
            return Err(BackendError::Unauthorized {
                status: reply.status,
                hint: "check api-token-file against the token the API expects",
            })
        }
        _ => return Err(reply.unexpected()),
    }
    let (success, message) = decode_success(&reply.body)?;
    if let (false, Some(m)) = (success, message) {
        debug!("JSON API said no: {m}");
    }
    Ok(success)
}

impl JsonApi {
    /// `exists` for a name nobody has: a 200 with `{"success": bool}` tells
    /// the URL is right and the token (if any) accepted; 401/403 that the
    /// API is there but wants another token.
    async fn doctor_op(&self, domain: &str) -> BackendReport {
        const API: &str = "JSON API";
        let shown = doctor::shown_url(&self.exists);
        let wrong_path = "url must be the API's base: POST {url}/login and {url}/exists must answer {\"success\": true|false}";
        let mut report = BackendReport::default();
        let user = format!("{}@{domain}", doctor::probe_user());
        let reply = match self.send(&self.exists, json!({ "username": user })).await {
            Ok(r) => r,
            Err(e) => {
                report.checks.push(Check::fail(
                    API,
                    format!("no answer from {shown}: {e}"),
                    "check url and that the API is up",
                ));
                return report;
            }
        };
        report.date = reply.date;
        let answers = Check::pass(
            API,
            format!("answers at {shown} in {}", doctor::took(reply.elapsed)),
        );
        match reply.status {
            200 => match decode_success(&reply.body) {
                Ok(_) => {
                    report.checks.push(answers);
                    if self.token.is_some() {
                        report.checks.push(Check::pass("API token", "accepted"));
                    }
                }
                Err(e) => report.checks.push(Check::fail(
                    API,
                    format!("{shown} answered HTTP 200 but not {{\"success\": bool}}: {e}"),
                    wrong_path,
                )),
            },
            401 | 403 => {
                report.checks.push(answers);
                report.checks.push(match self.token {
                    Some(_) => Check::fail(
                        "API token",
                        format!("the API refused our token (HTTP {})", reply.status),
                        "check api-token-file against the token the API expects",
                    ),
                    None => Check::fail(
                        "API token",
                        format!("the API wants a token (HTTP {})", reply.status),
                        "put the API's token in a file and give it as api-token-file",
                    ),
                });
            }
            status => report.checks.push(Check::fail(
                API,
                format!("no JSON API at {shown}: HTTP {status}, {}", reply.shape()),
                wrong_path,
            )),
        }
        if reply.elapsed > doctor::SLOW {
            report.checks.push(Check::warn(
                "latency",
                format!("the API took {}", doctor::took(reply.elapsed)),
                "the API is overloaded or slow: logins will be too",
            ));
        }
        report
    }
}

impl Backend for JsonApi {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn auth<'a>(&'a self, who: Account<'a>, password: &'a str) -> BackendFuture<'a, bool> {
        let body =
            json!({"username": format!("{}@{}", who.user, who.domain), "password": password});
        Box::pin(self.post(&self.login, body))
    }

    fn is_user<'a>(&'a self, who: Account<'a>) -> BackendFuture<'a, bool> {
        let body = json!({"username": format!("{}@{}", who.user, who.domain)});
        Box::pin(self.post(&self.exists, body))
    }

    fn doctor<'a>(&'a self, domain: &'a str) -> DoctorFuture<'a> {
        Box::pin(self.doctor_op(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_shapes() {
        assert_eq!(decode_success(br#"{"success":true}"#), Ok((true, None)));
        assert_eq!(
            decode_success(br#"{"success":false,"message":"bad"}"#),
            Ok((false, Some("bad".into())))
        );
        assert!(matches!(
            decode_success(br#"{"success":"yes"}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            decode_success(br#"{}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            decode_success(b"<html>"),
            Err(DecodeError::NotJson { .. })
        ));
    }
}
