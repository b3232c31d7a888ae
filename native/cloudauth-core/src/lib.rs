//! Core of cloudauth: token formats checked locally, backends asked over
//! HTTP (the JSXC app's API, a JSON login API, Nextcloud's own OCS API), the
//! authentication decision built from both, the password cache, the
//! settings schema every adapter reads its settings through, and the shared
//! roster plan.
//!
//! No process or protocol policy lives here: framing, logging set-up and
//! process lifetime belong to the adapters (the `cloudauth` port binary, the
//! ejabberd NIF).

// The four layers, each using only the ones declared before it
// (`tests/layers.rs`); their modules keep their paths at the crate root
// (`crate::backend`, …), so callers need not know the layers.
mod assembly;
mod mechanism;
mod operations;
mod vocab;

pub use assembly::{authenticator, catalogue, decision, domains, settings, sweep};
pub use mechanism::{
    backend, bruteforce, cache, coalesce, departures, known_users, refusals, roster, throttle,
    token,
};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use operations::fuzzing;
pub use operations::{doctor, forget, metrics};
pub use vocab::{clock, digest, duration, jid, log_text, secret, signature, timestamp, tls};

pub use backend::{Backend, BackendError, HttpClient, Timeouts};
pub use clock::{Clock, FixedClock, SystemClock};
pub use decision::{Authenticator, Decision, OwnCause, Path, TokenAnswer, Trouble, Verdict};
pub use secret::Secret;
pub use settings::{DomainSettings, SettingsResolver, SingleDomain};
