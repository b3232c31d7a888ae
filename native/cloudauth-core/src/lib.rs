//! Core of cloudauth: token formats checked locally, backends asked over
//! HTTP (the JSXC app's API, a JSON login API, Nextcloud's own OCS API), the
//! authentication decision built from both, the password cache, the
//! settings schema every adapter reads its settings through, and the shared
//! roster plan.
//!
//! No process or protocol policy lives here: framing, logging set-up and
//! process lifetime belong to the adapters (the `cloudauth` port binary, the
//! ejabberd NIF).

pub mod backend;
pub mod bruteforce;
pub mod cache;
pub mod clock;
pub mod coalesce;
pub mod decision;
pub mod digest;
pub mod doctor;
pub mod domains;
pub mod duration;
pub mod forget;
#[doc(hidden)]
pub mod fuzzing;
pub mod jid;
pub mod known_users;
pub mod log_text;
pub mod metrics;
pub mod refusals;
pub mod roster;
pub mod secret;
pub mod settings;
pub mod signature;
pub mod throttle;
pub mod timestamp;
pub mod tls;
pub mod token;

pub use backend::{Backend, BackendError, HttpClient, Timeouts};
pub use clock::{Clock, FixedClock, SystemClock};
pub use decision::{Authenticator, Decision, Path, TokenAnswer, Verdict};
pub use secret::Secret;
pub use settings::{DomainSettings, SettingsResolver, SingleDomain};
