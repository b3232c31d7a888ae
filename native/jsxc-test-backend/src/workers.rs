//! The API's worker pool, emulating PHP-FPM in front of a real Nextcloud:
//! at most `workers` requests are processed at once, the others wait in
//! arrival order (tokio's semaphore is fair, like FPM's listen queue), and
//! each takes `delay` before its answer (argon2id in a real Nextcloud).
//! Also keeps `in_flight` / `peak_in_flight` for every API request.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use crate::state::App;

/// Worker limit and per-request work time; both off by default.
#[derive(Debug)]
pub struct Workers {
    slots: Option<Semaphore>,
    delay: Duration,
}

impl Workers {
    /// `workers == 0`: no limit. `delay` applies to every request either way.
    pub fn new(workers: usize, delay: Duration) -> Self {
        Workers {
            slots: (workers > 0).then(|| Semaphore::new(workers)),
            delay,
        }
    }
}

/// Middleware around every API route: waits for a worker, then counts the
/// request as in flight while it is processed.
pub async fn admit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let _slot = match &app.workers.slots {
        // `acquire` fails only on a closed semaphore, and this one is never
        // closed; were it to happen, serving without a slot beats hanging.
        Some(s) => s.acquire().await.ok(),
        None => None,
    };
    let _busy = app.stats.enter();
    if !app.workers.delay.is_zero() {
        tokio::time::sleep(app.workers.delay).await;
    }
    next.run(req).await
}
