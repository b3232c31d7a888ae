//! A generic JSON login API, as generic ejabberd extauth scripts call it
//! (seed 002): `POST {base}/login` with `{"username": "user@domain",
//! "password": "…"}` and `POST {base}/exists` with `{"username": …}`, both
//! answered `{"success": true}` or `{"success": false, "message": "…"}`.
//! Served at `/json/login` and `/json/exists`, so the base URL is
//! `http://ADDR/json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::faults;
use crate::state::App;
use crate::stats::{Event, Req};
use crate::users::ct_eq;

/// The JSON API's routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/json/login", post(login))
        .route("/json/exists", post(exists))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn failure(status: StatusCode, message: &str) -> Response {
    reply(status, json!({"success": false, "message": message}))
}

/// Whether the request carries the configured bearer token (always, when
/// none is configured). The token is compared in constant time; only its
/// length can leak, which a test server can live with.
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(want) = &app.api_token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // The scheme name is case-insensitive (RFC 7235).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| ct_eq(token.trim().as_bytes(), want.expose()))
}

/// A string field of the request body.
fn text<'a>(body: &'a Value, key: &str) -> Result<&'a str, String> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{key} must be a string")),
        None => Err(format!("missing {key}")),
    }
}

/// The checks every request goes through, in order: counted, fault mode,
/// bearer token, body parsed as JSON. `Err` is the answer to send instead.
async fn admit(
    app: &App,
    op: Req,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Response> {
    app.stats.request(op);
    if let Some(faulty) = faults::apply(app, uri.path()).await {
        return Err(faulty);
    }
    if !authorized(app, headers) {
        app.stats.event(Event::Unauthorized);
        return Err(failure(StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    serde_json::from_slice(body).map_err(|e| {
        app.stats.event(Event::BadRequest);
        failure(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}"))
    })
}

fn bad_request(app: &App, message: &str) -> Response {
    app.stats.event(Event::BadRequest);
    failure(StatusCode::BAD_REQUEST, message)
}

/// `user@domain` as the JSXC API gets it: split at the first `@` (a JID's
/// local part cannot contain one); no `@`, no domain.
fn split_jid(jid: &str) -> (&str, &str) {
    jid.split_once('@').unwrap_or((jid, ""))
}

fn log(app: &App, op: &str, jid: &str, outcome: &str) {
    if !app.quiet {
        // Never the password.
        eprintln!("jsxc-test-backend: json {op} {jid}: {outcome}");
    }
}

async fn login(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let req = match admit(&app, Req::Login, &uri, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (jid, password) = match (text(&req, "username"), text(&req, "password")) {
        (Ok(j), Ok(p)) => (j, p),
        (Err(e), _) | (_, Err(e)) => return bad_request(&app, &e),
    };
    let (user, domain) = split_jid(jid);
    match app.directory().check_password(user, domain, password) {
        Some(uid) => {
            log(&app, "login", jid, &format!("success as {uid}"));
            reply(StatusCode::OK, json!({"success": true}))
        }
        None => {
            log(&app, "login", jid, "failed");
            failure(StatusCode::OK, "invalid username or password")
        }
    }
}

async fn exists(
    State(app): State<Arc<App>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match admit(&app, Req::Exists, &uri, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let jid = match text(&req, "username") {
        Ok(j) => j,
        Err(e) => return bad_request(&app, &e),
    };
    let (user, domain) = split_jid(jid);
    if app.directory().exists(user, domain) {
        log(&app, "exists", jid, "yes");
        reply(StatusCode::OK, json!({"success": true}))
    } else {
        log(&app, "exists", jid, "no");
        // A message with `false`: the seed-002 script reads `message`
        // whenever `success` is false, and would fail without one.
        failure(StatusCode::OK, "no such user")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids() {
        assert_eq!(split_jid("alice@example.org"), ("alice", "example.org"));
        assert_eq!(split_jid("alice"), ("alice", ""));
        assert_eq!(split_jid("a@b@c"), ("a", "b@c"));
    }

    #[test]
    fn fields() {
        let v = json!({"username": "a@b", "password": 5});
        assert_eq!(text(&v, "username"), Ok("a@b"));
        assert_eq!(
            text(&v, "password"),
            Err("password must be a string".into())
        );
        assert_eq!(
            text(&json!([1]), "username"),
            Err("missing username".into())
        );
    }
}
