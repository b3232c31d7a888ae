//! The authenticator as every adapter runs it (the `cloudauth` program, the
//! NIF): one rule for its deadline and throttle, read from the settings.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::PasswordCache;
use crate::clock::SystemClock;
use crate::decision::Authenticator;
use crate::known_users::KnownUsers;
use crate::settings::values::Values;
use crate::settings::{cache_settings, sweep_batch, throttle, timeouts, SettingsResolver};

/// What a decision may take beyond the request timeout (or the connect
/// timeout, if longer): the cache's bcrypt work, whatever the queue before
/// the backend or the CPU.
pub const DECISION_MARGIN: Duration = Duration::from_secs(1);

impl Authenticator {
    /// The authenticator for `resolver`'s domains, with the deadline and the
    /// throttle of the global `values`, on the system clock, over `cache`
    /// (revalidated as `values` say) and `known` users if there are any.
    pub fn from_settings(
        resolver: Arc<dyn SettingsResolver>,
        values: &Values,
        cache: Option<PasswordCache>,
        known: Option<KnownUsers>,
    ) -> Authenticator {
        let t = timeouts(values);
        let auth = Authenticator::new(resolver, Arc::new(SystemClock))
            .with_deadline(t.total.max(t.connect) + DECISION_MARGIN)
            .with_throttle(throttle(values))
            .with_sweep_batch(sweep_batch(values));
        let cs = cache_settings(values);
        let auth = match cache {
            Some(c) => auth
                .with_cache(c)
                .with_revalidation(cs.revalidate)
                .with_sweep_every(cs.sweep),
            None => auth,
        };
        match known {
            Some(k) => auth.with_known_users(k),
            None => auth,
        }
    }
}
