//! Per-virtual-host state: the decision maker built from the host's
//! `auth_cloud_*` options, held by Erlang as a resource.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudauth_core::cache::{CacheTtls, PasswordCache, Storage};
use cloudauth_core::roster::{Glob, GroupPolicy};
use cloudauth_core::secret::{self, Secret};
use cloudauth_core::{
    Authenticator, BackendClient, DomainSettings, SingleDomain, SystemClock, Timeouts,
};
use rustler::{NifMap, NifUnitEnum, Resource};

/// Where the password cache keeps its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, NifUnitEnum)]
pub enum CacheStorage {
    /// No cache.
    None,
    /// VM memory (lost on restart and reload).
    Memory,
    /// The `authcache` table of an xcauth SQLite database.
    Db,
}

/// A host's options as the Erlang module passes them (validated by
/// ejabberd's option checks already; empty binaries mean "not set").
#[derive(Debug, NifMap)]
pub struct HostConfig {
    /// JSXC external API URL.
    pub url: String,
    /// API secret, or empty when `secret_file` is given.
    pub secret: String,
    /// File holding the API secret (first line), or empty.
    pub secret_file: String,
    /// Domain sent to the cloud, or empty for the XMPP domain.
    pub auth_domain: String,
    /// Connection set-up deadline.
    pub connect_timeout_ms: u64,
    /// Whole-request deadline.
    pub timeout_ms: u64,
    /// Password cache storage.
    pub cache_storage: CacheStorage,
    /// Database file for `db` storage, or empty.
    pub cache_db: String,
    /// Longest time between queries for a cache hit.
    pub cache_query_ttl_s: u64,
    /// Longest time since the cloud last confirmed a cached password.
    pub cache_verification_ttl_s: u64,
    /// Same, while the cloud cannot be asked.
    pub cache_unreachable_ttl_s: u64,
    /// bcrypt cost for new cache entries.
    pub cache_bcrypt_rounds: u32,
    /// Shared roster: only Nextcloud groups matching one of these (all if empty).
    pub roster_groups_allow: Vec<String>,
    /// Shared roster: never Nextcloud groups matching one of these.
    pub roster_groups_deny: Vec<String>,
    /// Shared roster: never groups with more members (0: no limit).
    pub roster_max_members: u64,
}

/// One host's decision maker, its roster policy and the budget for its
/// asynchronous replies.
pub struct Host {
    /// Token, cache and cloud decisions.
    pub auth: Authenticator,
    /// Which Nextcloud groups become shared roster groups.
    pub policy: GroupPolicy,
    /// Longest time before an asynchronous reply is sent.
    pub budget: Duration,
}

#[rustler::resource_impl]
impl Resource for Host {}

// rustler runs every NIF inside catch_unwind. A Host is shared read-only;
// what it mutates (cache entries, the in-flight map, the HTTP pool) sits
// behind mutexes or atomics whose users tolerate poisoning, so a panic in
// one call leaves nothing half-changed for the next.
impl std::panic::RefUnwindSafe for Host {}
impl std::panic::UnwindSafe for Host {}

/// Time the reply budget adds to the request deadline: bcrypt work of the
/// cache (before and after the cloud) and scheduling.
const BUDGET_MARGIN: Duration = Duration::from_secs(2);

fn read_secret(c: &HostConfig, warnings: &mut Vec<String>) -> Result<Secret, String> {
    match (c.secret.is_empty(), c.secret_file.is_empty()) {
        (false, false) => Err("give auth_cloud_secret or auth_cloud_secret_file, not both".into()),
        (true, true) => Err("auth_cloud_secret or auth_cloud_secret_file is required".into()),
        (false, true) => Ok(Secret::new(c.secret.as_bytes())),
        (true, false) => {
            let read = secret::read_file(Path::new(&c.secret_file)).map_err(|e| e.to_string())?;
            if read.world_readable {
                warnings.push(format!(
                    "secret file {} is readable by other users; chmod 600 it",
                    c.secret_file
                ));
            }
            Ok(read.secret)
        }
    }
}

fn open_cache(c: &HostConfig) -> Result<Option<PasswordCache>, String> {
    let ttls = CacheTtls {
        query: Duration::from_secs(c.cache_query_ttl_s),
        verification: Duration::from_secs(c.cache_verification_ttl_s),
        unreachable: Duration::from_secs(c.cache_unreachable_ttl_s),
    };
    let storage = match c.cache_storage {
        CacheStorage::None => return Ok(None),
        CacheStorage::Memory => Storage::Memory,
        CacheStorage::Db if c.cache_db.is_empty() => {
            return Err("auth_cloud_cache_storage db needs auth_cloud_cache_db".into())
        }
        CacheStorage::Db => Storage::Sqlite(Path::new(&c.cache_db)),
    };
    PasswordCache::open(storage, ttls, c.cache_bcrypt_rounds)
        .map(Some)
        .map_err(|e| e.to_string())
}

impl Host {
    /// Builds a host from its options; also returns warnings for the log.
    pub fn new(c: &HostConfig) -> Result<(Host, Vec<String>), String> {
        let mut warnings = Vec::new();
        let secret = read_secret(c, &mut warnings)?;
        let auth_domain = (!c.auth_domain.is_empty()).then(|| c.auth_domain.clone());
        let settings = DomainSettings::new(c.url.clone(), secret, auth_domain);
        if let Err(e) = &settings.parsed_url {
            return Err(format!("auth_cloud_url: {e}"));
        }
        if c.connect_timeout_ms == 0 || c.timeout_ms == 0 {
            return Err("timeouts must be positive".into());
        }
        let timeouts = Timeouts {
            connect: Duration::from_millis(c.connect_timeout_ms),
            total: Duration::from_millis(c.timeout_ms),
        };
        let auth = Authenticator::new(
            BackendClient::new(timeouts),
            Arc::new(SingleDomain::new(settings)),
            Arc::new(SystemClock),
        );
        let auth = match open_cache(c)? {
            Some(cache) => auth.with_cache(cache),
            None => auth,
        };
        let policy = GroupPolicy {
            allow: c.roster_groups_allow.iter().map(|p| Glob::new(p)).collect(),
            deny: c.roster_groups_deny.iter().map(|p| Glob::new(p)).collect(),
            max_members: usize::try_from(c.roster_max_members)
                .ok()
                .filter(|n| *n > 0),
        };
        let budget = timeouts.total.max(timeouts.connect) + BUDGET_MARGIN;
        Ok((
            Host {
                auth,
                policy,
                budget,
            },
            warnings,
        ))
    }
}
