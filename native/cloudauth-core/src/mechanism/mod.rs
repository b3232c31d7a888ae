//! Layer 2, mechanisms and plug-ins: the HTTP transport, the request gate,
//! backends, token formats, password cache stores, the shared roster plan,
//! coalescing, the departure log, recent refusals and the throttle. Each uses only the
//! vocabulary and other mechanisms, never the assembly that picks and joins
//! them (`tests/layers.rs` keeps it so).

pub mod backend;
pub mod bruteforce;
pub mod cache;
pub mod coalesce;
pub mod departures;
pub mod known_users;
pub mod refusals;
pub mod roster;
pub mod throttle;
pub mod token;
