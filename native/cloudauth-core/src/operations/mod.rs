//! Layer 4, operations: set-up checks (`doctor`), the counters rendered as
//! OpenMetrics text, and the fuzzing entry points; they may use every layer
//! below.

pub mod doctor;
pub mod forget;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
