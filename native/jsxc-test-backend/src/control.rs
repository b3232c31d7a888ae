//! The control API: fault modes, counters, reloading users.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::faults::Fault;
use crate::state::App;

/// Longest wait for the API listener to close or reopen after a switch.
const SETTLE: Duration = Duration::from_secs(10);

/// Routes of the control server.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/fault", post(set_fault))
        .route("/reload", post(reload))
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset))
        .route("/health", get(|| async { "ok" }))
        .with_state(app)
}

async fn set_fault(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ms = q.get("ms").and_then(|v| v.parse().ok());
    match q.get("mode").and_then(|m| Fault::parse(m, ms)) {
        Some(f) => {
            app.fault.send_replace(f);
            // Answer only once the listener is in the state the mode implies,
            // so that a test's next request sees the new mode.
            let want_open = f != Fault::Down;
            let mut listening = app.listening.subscribe();
            let settled =
                tokio::time::timeout(SETTLE, listening.wait_for(|open| *open == want_open)).await;
            if !matches!(settled, Ok(Ok(_))) {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{f:?} did not take effect within {SETTLE:?}\n"),
                )
                    .into_response();
            }
            if !app.quiet {
                eprintln!("jsxc-test-backend: fault mode {f:?}");
            }
            (StatusCode::OK, format!("{f:?}\n")).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            "mode=ok|down|delay&ms=N|http500|nonjson|redirect|huge\n",
        )
            .into_response(),
    }
}

async fn reload(State(app): State<Arc<App>>) -> Response {
    match app.reload() {
        Ok(()) => (StatusCode::OK, "reloaded\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn stats(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.stats.snapshot())
}

async fn reset(State(app): State<Arc<App>>) -> &'static str {
    app.stats.reset();
    "reset\n"
}
