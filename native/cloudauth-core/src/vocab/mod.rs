//! Layer 1, vocabulary: the words every other layer speaks and that depend
//! on nothing of this crate above them: clocks, digests, JIDs, secrets,
//! timestamps, TLS set-up, the settings vocabulary (keys, the schema's
//! `Spec`, typed `Values`), URL rules, the state database, check lines and
//! metric counters. Nothing here imports from `mechanism`, `assembly` or
//! `operations` (`tests/layers.rs` keeps it so).

pub mod check;
pub mod clock;
pub mod counters;
pub mod digest;
pub mod duration;
pub mod jid;
pub mod log_text;
pub mod secret;
pub mod settings;
pub mod signature;
pub mod state_db;
pub mod timeouts;
pub mod timestamp;
pub mod tls;
pub mod url;
