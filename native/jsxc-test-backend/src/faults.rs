//! Fault injection, switchable at run time. One function, [`apply`], is
//! called by every API (JSXC, JSON, OCS) so that a mode means the same thing
//! whichever API a test talks to.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::App;

/// How the API currently misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Normal operation.
    Ok,
    /// The API listener is closed: connection refused.
    Down,
    /// Every answer is delayed.
    Delay(Duration),
    /// HTTP 500 with an HTML body.
    Http500,
    /// HTTP 200 with an HTML body.
    NonJson,
    /// HTTP 302 to the https URL.
    Redirect,
    /// HTTP 200 with a 2 MiB body.
    Huge,
    /// HTTP 500 with the JSXC error envelope, whose message tries to forge
    /// log lines (a line break, U+2028, a bidi override): what a hostile
    /// backend can put where its error message is logged.
    Forge,
}

/// The message of [`Fault::Forge`].
pub const FORGED_MESSAGE: &str =
    "Signature does not match.\n[info] auth admin@localhost: yes\u{2028}[info] auth root: yes\u{202e}sey";

impl Fault {
    /// Reads `mode` (and `ms` for delay) from the control request.
    pub fn parse(mode: &str, ms: Option<u64>) -> Option<Fault> {
        Some(match mode {
            "ok" => Fault::Ok,
            "down" => Fault::Down,
            "delay" => Fault::Delay(Duration::from_millis(ms?)),
            "http500" => Fault::Http500,
            "nonjson" => Fault::NonJson,
            "redirect" => Fault::Redirect,
            "huge" => Fault::Huge,
            "forge" => Fault::Forge,
            _ => return None,
        })
    }
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// Applies the current fault mode to a request for `path`: `Some(answer)`
/// when the fault replaces the real answer, `None` when the API should
/// answer normally (after sleeping, in `Delay` mode). `Down` needs nothing
/// here: the listener is closed, so no request gets this far.
pub async fn apply(app: &App, path: &str) -> Option<Response> {
    // Copied out first: the watch guard must not be held across the sleep.
    let fault = *app.fault.borrow();
    match fault {
        Fault::Ok | Fault::Down => None,
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::Http500 => Some(html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error".into(),
        )),
        Fault::Forge => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({"result": "error", "data": {"msg": FORGED_MESSAGE}})),
            )
                .into_response(),
        ),
        Fault::NonJson => Some(html(
            StatusCode::OK,
            "<html><body>Maintenance mode</body></html>".into(),
        )),
        // The same path over https, as a web server forcing TLS answers;
        // for the JSXC API's default path this is the URL it always used.
        Fault::Redirect => Some(
            (
                StatusCode::FOUND,
                [(header::LOCATION, format!("https://127.0.0.1{path}"))],
            )
                .into_response(),
        ),
        Fault::Huge => Some(html(
            StatusCode::OK,
            format!(
                "{{\"result\":\"success\",\"pad\":\"{}\"}}",
                "x".repeat(2 << 20)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(
            Fault::parse("delay", Some(5)),
            Some(Fault::Delay(Duration::from_millis(5)))
        );
        assert_eq!(Fault::parse("delay", None), None);
        assert_eq!(Fault::parse("down", None), Some(Fault::Down));
        assert_eq!(Fault::parse("explode", None), None);
    }
}
