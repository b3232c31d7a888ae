//! The control API: fault modes, the OCS brute-force throttle, counters, reloading users.

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
        .route("/throttle", get(throttle_state).post(set_throttle))
        .route("/throttle/reset", post(reset_throttle))
        .route("/clock", get(clock_state).post(set_clock))
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

async fn throttle_state(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.throttle.snapshot())
}

/// `on=1|0` (also true/false, on/off) and/or `scale_ms_per_s=N`.
async fn set_throttle(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let on = q.get("on").map(|v| match v.as_str() {
        "1" | "true" | "on" => Some(true),
        "0" | "false" | "off" => Some(false),
        _ => None,
    });
    let scale = q.get("scale_ms_per_s").map(|v| v.parse::<u64>().ok());
    let usage = || {
        (
            StatusCode::BAD_REQUEST,
            "on=1|0 and/or scale_ms_per_s=N (ms per second of Nextcloud delay, 1000 = real)\n",
        )
            .into_response()
    };
    // Something to set, and nothing unreadable.
    if (on.is_none() && scale.is_none()) || on == Some(None) || scale == Some(None) {
        return usage();
    }
    app.throttle.set(on.flatten(), scale.flatten());
    if !app.quiet {
        eprintln!("jsxc-test-backend: throttle {}", app.throttle.snapshot());
    }
    Json(app.throttle.snapshot()).into_response()
}

/// Forgets recorded failures: of `addr=IP` only, or of every address.
async fn reset_throttle(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ip = match q.get("addr").map(|a| a.parse()) {
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => {
            return (StatusCode::BAD_REQUEST, "addr=IP (or no addr: all)\n").into_response()
        }
        None => None,
    };
    app.throttle.reset(ip);
    Json(app.throttle.snapshot()).into_response()
}

async fn clock_state(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "offset_s": app.clock.get() }))
}

/// `offset_s=N`: the `Date` header of API answers is N seconds off from now on.
async fn set_clock(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match q.get("offset_s").map(|v| v.parse::<i64>()) {
        Some(Ok(s)) => {
            app.clock.set(s);
            if !app.quiet {
                eprintln!("jsxc-test-backend: clock offset {s} s");
            }
            Json(serde_json::json!({ "offset_s": s })).into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "offset_s=N (seconds, may be negative)\n",
        )
            .into_response(),
    }
}
