//! The `json` backend: the generic JSON login API of the ejabberd extauth
//! scripts that post to `{url}/login` and `{url}/exists`:
//! `{"username": "user@domain", "password": …}` in, `{"success": true|false,
//! "message"?}` out. HTTP other than 200, a body that is not JSON, or no
//! boolean `success` is trouble, never a "no". An optional bearer token
//! (from a file) lets the API tell that the XMPP server is calling.

use std::sync::Arc;

use serde_json::{json, Value};
use tracing::debug;

use super::http::HttpClient;
use super::{
    decode_json, Account, Backend, BackendEntry, BackendError, BackendFuture, DecodeError,
};
use crate::secret::Secret;
use crate::settings::keys;
use crate::settings::schema::{Kind, Spec};
use crate::settings::values::{SettingsError, Values};

/// `api-token-file`: a bearer token sent with every request.
pub const API_TOKEN_FILE: &str = "api-token-file";

/// The registry entry: `backend = json` needs `url` (the API's base).
pub static ENTRY: BackendEntry = BackendEntry {
    name: "json",
    summary: "a JSON login API: POST {url}/login and {url}/exists (password, isuser)",
    settings: &[Spec::new(
        API_TOKEN_FILE,
        Kind::SecretFile,
        "json backend: file holding a bearer token sent as Authorization (first line)",
    )
    .per_domain()
    .value_name("FILE")],
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
pub struct JsonApi {
    login: reqwest::Url,
    exists: reqwest::Url,
    token: Option<Secret>,
    http: Arc<HttpClient>,
}

/// Reads `{"success": bool, "message"?}`.
pub fn decode_success(body: &[u8]) -> Result<(bool, Option<String>), DecodeError> {
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
    async fn post(&self, url: &reqwest::Url, body: Value) -> Result<bool, BackendError> {
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
        let reply = self.http.send(request, url).await?;
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
