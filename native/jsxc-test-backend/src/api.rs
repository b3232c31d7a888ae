//! The JSXC external API (ojsxc `externalApi.php`, protocol version 1).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloudauth_core::signature::{self, SIGNATURE_HEADER};
use serde_json::{json, Value};

use crate::faults;
use crate::state::App;
use crate::stats::Event;

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(msg: &str) -> Response {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"result": "error", "data": {"msg": msg}}),
    )
}

/// Handles one API POST.
pub async fn handle(
    State(app): State<Arc<App>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let operation = field("operation");
    app.stats.count(operation);

    if let Some(faulty) = faults::apply(&app, uri.path()).await {
        return faulty;
    }

    let Some(sig) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        app.stats.event(Event::BadSignature);
        return error("No signature provided");
    };
    if !signature::verify(&app.secret, &body, sig) {
        app.stats.event(Event::BadSignature);
        return error("Signature does not match");
    }

    let (username, domain) = (field("username"), field("domain"));
    let users = app.directory();
    let (response, outcome) = match operation {
        "auth" => match users.check_password(username, domain, field("password")) {
            Some(uid) => (
                reply(
                    StatusCode::OK,
                    json!({"result": "success", "data": {"uid": uid}}),
                ),
                "success",
            ),
            None => (reply(StatusCode::OK, json!({"result": "noauth"})), "noauth"),
        },
        "isuser" => {
            let is = users.exists(username, domain);
            (
                reply(
                    StatusCode::OK,
                    json!({"result": "success", "data": {"isUser": is}}),
                ),
                if is { "yes" } else { "no" },
            )
        }
        "sharedroster" if username.is_empty() => (error("No username provided"), "error"),
        "sharedroster" => {
            let roster = users.shared_roster(username, domain);
            (
                reply(
                    StatusCode::OK,
                    json!({"result": "success", "data": {"sharedRoster": roster}}),
                ),
                "success",
            )
        }
        _ => (error("Unsupported operation."), "unsupported"),
    };
    if !app.quiet {
        // Never the password.
        eprintln!("jsxc-test-backend: {operation} {username}@{domain}: {outcome}");
    }
    response
}
