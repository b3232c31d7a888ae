//! Core of cloudauth: JSXC time-limited tokens, signed requests to the JSXC
//! external API of a Nextcloud/ownCloud instance, and the authentication
//! decision built from both.
//!
//! No process or protocol policy lives here: framing, logging set-up and
//! process lifetime belong to the adapters (the `cloudauth` port binary, the
//! ejabberd NIF).

pub mod api;
pub mod backend;
pub mod cache;
pub mod clock;
pub mod coalesce;
pub mod decision;
pub mod digest;
pub mod domains;
pub mod duration;
pub mod roster;
pub mod secret;
pub mod settings;
pub mod signature;
pub mod timestamp;
pub mod tls;
pub mod token;

pub use backend::{BackendClient, BackendError, Timeouts};
pub use clock::{Clock, FixedClock, SystemClock};
pub use decision::{Authenticator, Decision, Path, Verdict};
pub use secret::Secret;
pub use settings::{DomainSettings, SettingsResolver, SingleDomain};
