//! Settings: the schema every setting is declared in ([`schema`]), values
//! read through it ([`values`]), and what serves one XMPP domain
//! ([`DomainSettings`]: a backend, token formats, the domain name the
//! backend knows), built from those values.

#[cfg(test)]
mod reference;
pub use crate::vocab::settings::choice::{self, CacheStorage, Choice, TroublePolicy};
pub use crate::vocab::settings::{keys, schema, values};

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::backend::{Backend, HttpClient, Timeouts};
use crate::cache::{CacheTtls, PasswordCache, Storage, StoreError};
use crate::known_users::{KnownStore, KnownTtls, KnownUsers, MemoryKnown, SqliteKnown};
use crate::roster::{Glob, GroupPolicy};
use crate::token::{TokenContext, TokenFormat};
use values::{SettingsError, Values};

/// The schema's defaults, parsed once.
fn schema_defaults() -> &'static Values {
    static DEFAULTS: OnceLock<Values> = OnceLock::new();
    DEFAULTS.get_or_init(Values::defaults)
}

/// What `read` finds for `key` in `v`, else in the schema's defaults: a
/// default is written once, in the schema, and `Values` not made by
/// `Values::resolve` (a test's `Values::default()`) still read as the
/// schema says. Only for a key the schema gives a default (so
/// `T::default()` is never reached: `tests::read_settings_have_schema_defaults`).
pub fn setting<T: Default>(v: &Values, key: &str, read: impl Fn(&Values, &str) -> Option<T>) -> T {
    read(v, key)
        .or_else(|| read(schema_defaults(), key))
        .unwrap_or_default()
}

/// A [`Choice`] setting: the variant `v` gives, else the type's
/// [`Choice::DEFAULT_VARIANT`], which is the schema's default.
pub fn choice_setting<C: Choice>(v: &Values, key: &str) -> C {
    v.choice(key).unwrap_or(C::DEFAULT_VARIANT)
}

/// A count setting as a `usize` (saturating on 32-bit targets).
pub fn count_setting(v: &Values, key: &str) -> usize {
    usize::try_from(setting(v, key, Values::count)).unwrap_or(usize::MAX)
}

/// The deadlines: `timeout`, with `connect-timeout` over its first part.
pub fn timeouts(v: &Values) -> Timeouts {
    let mut t = setting(v, keys::TIMEOUT, Values::timeouts);
    if let Some(c) = v.duration(keys::CONNECT_TIMEOUT) {
        t.connect = c;
    }
    t
}

/// The limits on requests in flight to each backend host.
pub fn limits(v: &Values) -> crate::backend::gate::Limits {
    crate::backend::gate::Limits::new(
        count_setting(v, keys::CLOUD_CONCURRENCY),
        count_setting(v, keys::CLOUD_QUEUE),
    )
}

/// Known users the account sweep asks about at once: half of
/// `cloud-concurrency`, so that logins keep the other half of the places
/// (at least 1; without a limit, [`UNLIMITED_SWEEP_BATCH`]).
pub fn sweep_batch(v: &Values) -> usize {
    match count_setting(v, keys::CLOUD_CONCURRENCY) {
        0 => UNLIMITED_SWEEP_BATCH,
        n => (n / 2).max(1),
    }
}

/// The sweep's batch when `cloud-concurrency` is 0 (no limit): a sweep
/// still asks only a few at once, or it would be a storm of its own.
pub const UNLIMITED_SWEEP_BATCH: usize = 8;

/// When password checks for a user with many wrong passwords are paused.
pub fn throttle(v: &Values) -> crate::throttle::ThrottleSettings {
    crate::throttle::ThrottleSettings {
        failures: u32::try_from(setting(v, keys::THROTTLE_FAILURES, Values::count))
            .unwrap_or(u32::MAX),
        window: setting(v, keys::THROTTLE_WINDOW, Values::duration),
        max_delay: setting(v, keys::THROTTLE_MAX_DELAY, Values::duration),
    }
}

impl Default for crate::throttle::ThrottleSettings {
    /// The settings schema's defaults, read where the schema is known.
    fn default() -> Self {
        throttle(schema_defaults())
    }
}

/// Which Nextcloud groups become shared roster groups.
pub fn roster_policy(v: &Values) -> GroupPolicy {
    let globs = |k| v.list(k).iter().map(|p| Glob::new(p)).collect();
    GroupPolicy {
        allow: globs(keys::ROSTER_GROUPS_ALLOW),
        deny: globs(keys::ROSTER_GROUPS_DENY),
        max_members: v
            .count(keys::ROSTER_MAX_MEMBERS)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0),
    }
}

impl Default for CacheTtls {
    /// The settings schema's defaults (1 h, 1 d, 1 w: xcauth's), read where
    /// the schema is known.
    fn default() -> Self {
        cache_settings(&Values::defaults()).ttls
    }
}

/// Password cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Storage.
    pub storage: CacheStorage,
    /// TTL rules.
    pub ttls: CacheTtls,
    /// bcrypt cost for the database.
    pub rounds_persistent: u32,
    /// bcrypt cost for memory.
    pub rounds_memory: u32,
    /// Age of a cached password's confirmation past which a hit is re-checked.
    pub revalidate: Duration,
    /// Known users' TTL and refresh interval.
    pub known: KnownTtls,
    /// Interval of the account sweep (zero: off).
    pub sweep: Duration,
}

/// Why the port program cannot use `mnesia`: its rows are lent by ejabberd.
const ONLY_IN_EJABBERD: &str =
    "cache storage mnesia exists only inside ejabberd (auth_method: cloud)";

impl CacheSettings {
    /// The bcrypt cost for the configured storage.
    pub fn rounds(&self) -> u32 {
        match self.storage {
            CacheStorage::Memory => self.rounds_memory,
            _ => self.rounds_persistent,
        }
    }

    /// Opens the cache (`db` in the database at `db`), or `None` for no cache.
    pub fn open(&self, db: &Path) -> Result<Option<PasswordCache>, StoreError> {
        let storage = match self.storage {
            CacheStorage::None => return Ok(None),
            CacheStorage::Memory => Storage::Memory,
            CacheStorage::Db => Storage::Sqlite(db),
            CacheStorage::Mnesia => return Err(StoreError(ONLY_IN_EJABBERD.into())),
        };
        PasswordCache::open(storage, self.ttls, self.rounds()).map(Some)
    }

    /// Opens the known users, in the same storage as the cache (`db`: the
    /// database at `db`); `None` without a cache. In a cluster (`mnesia`)
    /// the caller lends them ([`crate::known_users::LentKnown`]).
    pub fn open_known(&self, db: &Path) -> Result<Option<KnownUsers>, StoreError> {
        let store: Box<dyn KnownStore> = match self.storage {
            CacheStorage::None => return Ok(None),
            CacheStorage::Memory => Box::new(MemoryKnown::default()),
            CacheStorage::Db => Box::new(SqliteKnown::open(db)?),
            CacheStorage::Mnesia => return Err(StoreError(ONLY_IN_EJABBERD.into())),
        };
        Ok(Some(KnownUsers::new(store, self.known)))
    }
}

/// The password cache settings.
pub fn cache_settings(v: &Values) -> CacheSettings {
    let storage: CacheStorage = choice_setting(v, keys::CACHE_STORAGE);
    let ttl = |k| setting(v, k, Values::duration);
    let (rounds_persistent, rounds_memory) = setting(v, keys::CACHE_BCRYPT_ROUNDS, Values::rounds);
    CacheSettings {
        storage,
        ttls: CacheTtls {
            query: ttl(keys::CACHE_QUERY_TTL),
            verification: ttl(keys::CACHE_VERIFICATION_TTL),
            unreachable: ttl(keys::CACHE_UNREACHABLE_TTL),
        },
        rounds_persistent,
        rounds_memory,
        revalidate: ttl(keys::CACHE_REVALIDATE),
        known: KnownTtls {
            ttl: ttl(keys::KNOWN_USER_TTL),
            refresh: ttl(keys::KNOWN_USER_REFRESH),
        },
        sweep: ttl(keys::ACCOUNT_SWEEP),
    }
}

/// What serves one XMPP domain.
#[derive(Clone)]
pub struct DomainSettings {
    /// Asked for passwords (and users, and shared rosters).
    pub backend: Arc<dyn Backend>,
    /// Tried in order before the backend.
    pub tokens: Vec<Arc<dyn TokenFormat>>,
    /// Domain sent to the backend, when it differs from the XMPP domain.
    pub auth_domain: Option<String>,
    /// The settings it was built from (for diagnostics; secrets stay redacted).
    pub values: Values,
    /// Distinct for every build: what was learnt from one backend (a
    /// refused password) is not taken for another's after a settings change.
    pub generation: u64,
}

/// The next [`DomainSettings::generation`].
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl std::fmt::Debug for DomainSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens: Vec<_> = self.tokens.iter().map(|t| t.name()).collect();
        f.debug_struct("DomainSettings")
            .field("backend", &self.backend.name())
            .field("tokens", &tokens)
            .field("auth_domain", &self.auth_domain)
            .finish()
    }
}

impl DomainSettings {
    /// Builds the backend and the token formats `v` names.
    ///
    /// A token format left at its default that lacks what it needs (the
    /// `jsxc` format without a secret, next to a backend that needs none)
    /// is left out; one asked for explicitly is an error.
    pub fn build(
        v: &Values,
        http: &Arc<HttpClient>,
        ctx: &TokenContext,
    ) -> Result<Self, SettingsError> {
        let name = &setting(v, keys::BACKEND, |v, k| v.text(k).map(str::to_string));
        let entry =
            crate::catalogue::backend_entry(name).ok_or_else(|| SettingsError::Invalid {
                key: keys::BACKEND.into(),
                origin: v
                    .origin(keys::BACKEND)
                    .cloned()
                    .unwrap_or(values::Origin::Default),
                why: format!("unknown backend {name:?}"),
            })?;
        if let Some(url) = v.url(keys::URL) {
            crate::vocab::url::check_scheme(url, entry.schemes).map_err(|why| {
                SettingsError::Invalid {
                    key: keys::URL.into(),
                    origin: v
                        .origin(keys::URL)
                        .cloned()
                        .unwrap_or(values::Origin::Default),
                    why: format!("{why} (what the {} backend takes)", entry.name),
                }
            })?;
        }
        let backend =
            crate::backend::metered::as_run(entry.transport, (entry.build)(v, http)?, http);
        let mut tokens = Vec::new();
        for name in v.list(keys::TOKENS) {
            let Some(entry) = crate::catalogue::token_entry(name) else {
                continue;
            };
            match (entry.build)(v, ctx) {
                Ok(t) => tokens.push(t),
                Err(SettingsError::Missing { .. }) if v.is_default(keys::TOKENS) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(DomainSettings {
            backend,
            tokens,
            auth_domain: v
                .text(keys::AUTH_DOMAIN)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            values: v.clone(),
            generation: next_generation(),
        })
    }

    /// The domain name to send to the backend for a request on `xmpp_domain`.
    pub fn auth_domain<'a>(&'a self, xmpp_domain: &'a str) -> &'a str {
        self.auth_domain.as_deref().unwrap_or(xmpp_domain)
    }
}

/// Finds the settings for an XMPP domain.
pub trait SettingsResolver: Send + Sync {
    /// Settings for `xmpp_domain`, or `None` when this domain is not served.
    fn resolve(&self, xmpp_domain: &str) -> Option<Arc<DomainSettings>>;

    /// Whether `xmpp_domain` has settings of its own, rather than being
    /// served by global settings that take any domain name a client invents.
    fn listed(&self, _xmpp_domain: &str) -> bool {
        true
    }

    /// Every domain's settings served now (the global ones included), for
    /// what a backend does at start ([`crate::Authenticator::start`]).
    fn served(&self) -> Vec<Arc<DomainSettings>> {
        Vec::new()
    }
}

/// The same settings for every domain (xcauth's global `--url`/`--secret`,
/// or one ejabberd vhost).
#[derive(Debug, Clone)]
pub struct SingleDomain(pub Arc<DomainSettings>);

impl SingleDomain {
    /// Serves every domain with `settings`.
    pub fn new(settings: DomainSettings) -> Self {
        SingleDomain(Arc::new(settings))
    }
}

impl SettingsResolver for SingleDomain {
    fn resolve(&self, _xmpp_domain: &str) -> Option<Arc<DomainSettings>> {
        Some(Arc::clone(&self.0))
    }

    fn served(&self) -> Vec<Arc<DomainSettings>> {
        vec![Arc::clone(&self.0)]
    }
}

#[cfg(test)]
mod tests {
    use super::values::{Layer, Origin};
    use super::*;
    use crate::backend::Timeouts;
    use crate::token::MemoryReplayGuard;
    use std::time::Duration;

    fn build(kv: &[(&str, &str)]) -> Result<DomainSettings, SettingsError> {
        let mut l = Layer::new(Origin::CommandLine);
        for (k, v) in kv {
            l.set(*k, *v);
        }
        let v = Values::resolve(&[l], |_| true)?.values;
        let http = Arc::new(HttpClient::new(Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_secs(1),
        }));
        let ctx = TokenContext {
            replay: Arc::new(MemoryReplayGuard::default()),
        };
        DomainSettings::build(&v, &http, &ctx)
    }

    #[test]
    fn a_url_the_backend_does_not_take_is_refused_by_name() {
        // No backend of this build takes ldap, so parsing refuses it
        // already; a `Values` holding one (as it would with a directory
        // backend registered) is refused for the backend it is not for.
        let mut v = Values::from_pairs(&[("secret", "s")]).unwrap();
        v.map.insert(
            keys::URL,
            values::Entry {
                value: values::Value::Url(reqwest::Url::parse("ldaps://dir.example.org/").unwrap()),
                origin: Origin::CommandLine,
            },
        );
        let http = Arc::new(HttpClient::new(Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_secs(1),
        }));
        let ctx = TokenContext {
            replay: Arc::new(MemoryReplayGuard::default()),
        };
        let e = DomainSettings::build(&v, &http, &ctx)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "the URL's scheme \"ldaps\" is not http or https (what the jsxc backend takes)"
            ),
            "{e}"
        );
    }

    #[test]
    fn read_settings_have_schema_defaults() {
        // The keys read through `setting` (here and in the program and the
        // NIF): each must have a default in the schema, which is then the
        // only place it is written.
        for key in [
            keys::TIMEOUT,
            keys::CLOUD_CONCURRENCY,
            keys::CLOUD_QUEUE,
            keys::THROTTLE_FAILURES,
            keys::THROTTLE_WINDOW,
            keys::THROTTLE_MAX_DELAY,
            keys::CACHE_STORAGE,
            keys::CACHE_BCRYPT_ROUNDS,
            keys::CACHE_QUERY_TTL,
            keys::CACHE_VERIFICATION_TTL,
            keys::CACHE_UNREACHABLE_TTL,
            keys::CACHE_REVALIDATE,
            keys::KNOWN_USER_TTL,
            keys::KNOWN_USER_REFRESH,
            keys::BACKEND,
            keys::ON_BACKEND_TROUBLE,
            keys::IDLE_TIMEOUT,
            keys::WRITE_TIMEOUT,
            keys::MAX_CONNECTIONS,
            keys::MAX_CONNECTIONS_PER_PEER,
            keys::DB,
        ] {
            let spec = crate::catalogue::find(key).expect(key);
            assert!(spec.default.is_some(), "{key} has no default in the schema");
            assert!(
                schema_defaults().get(key).is_some(),
                "{key}'s default parses"
            );
        }
        // A `Values` without them reads the schema's.
        let empty = Values::default();
        assert_eq!(throttle(&empty), throttle(schema_defaults()));
        assert_eq!(cache_settings(&empty), cache_settings(schema_defaults()));
        assert_eq!(timeouts(&empty), timeouts(schema_defaults()));
        assert_eq!(
            choice_setting::<TroublePolicy>(&empty, keys::ON_BACKEND_TROUBLE),
            TroublePolicy::TempFail
        );
        // The schema's default word is the type's default variant.
        for (key, default) in [
            (keys::CACHE_STORAGE, CacheStorage::DEFAULT_VARIANT.word()),
            (
                keys::ON_BACKEND_TROUBLE,
                TroublePolicy::DEFAULT_VARIANT.word(),
            ),
        ] {
            assert_eq!(
                crate::catalogue::find(key).expect(key).default,
                Some(default)
            );
        }
    }

    #[test]
    fn jsxc_needs_url_and_secret() {
        let s = build(&[("url", "http://x/api"), ("secret", "k")]).unwrap();
        assert_eq!(s.backend.name(), "jsxc");
        assert_eq!(s.tokens.len(), 1);
        assert_eq!(s.auth_domain("chat.example.org"), "chat.example.org");
        let e = build(&[("url", "http://x/api")]).unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        let e = build(&[("secret", "k")]).unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
        let s = build(&[
            ("url", "http://x/api"),
            ("secret", "k"),
            ("auth-domain", "example.org"),
        ])
        .unwrap();
        assert_eq!(s.auth_domain("chat.example.org"), "example.org");
    }
}
