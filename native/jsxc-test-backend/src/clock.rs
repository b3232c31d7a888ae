//! A server clock that can be set off: the `Date` header of every API
//! answer is the real time plus an offset (`--clock-offset-s`, or `POST
//! /clock?offset_s=N` on the control server), so that tests can show what
//! a cloud with a wrong clock looks like to cloudauth (its doctor compares
//! the header with the local clock). Offset 0 leaves the header to the
//! HTTP server, as before.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use cloudauth_core::timestamp::format_http_date;

use crate::state::App;

/// Seconds added to the real time in the `Date` header.
#[derive(Debug, Default)]
pub struct ClockOffset(AtomicI64);

impl ClockOffset {
    /// An offset of `s` seconds.
    pub fn new(s: i64) -> Self {
        ClockOffset(AtomicI64::new(s))
    }

    /// The offset now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the offset.
    pub fn set(&self, s: i64) {
        self.0.store(s, Ordering::Relaxed);
    }
}

/// The `Date` value for now plus `offset` seconds.
fn date_with(offset: i64) -> Option<HeaderValue> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let shifted = i64::try_from(now).ok()?.checked_add(offset)?;
    HeaderValue::from_str(&format_http_date(u64::try_from(shifted).ok()?)).ok()
}

/// Middleware around every API route: sets `Date` when the clock is off
/// (hyper adds the real one only when the answer has none).
pub async fn stamp(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let offset = app.clock.get();
    if offset != 0 {
        if let Some(d) = date_with(offset) {
            response.headers_mut().insert(header::DATE, d);
        }
    }
    response
}
