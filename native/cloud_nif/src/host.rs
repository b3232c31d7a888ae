//! Per-virtual-host state: the decision maker built from the host's
//! `auth_cloud_*` options, held by Erlang as a resource.
//!
//! The options arrive as ejabberd parsed them (only those set); names,
//! defaults and the checks of their values are the core's settings schema,
//! the same the command line and xcauth.conf go through.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cloudauth_core::backend::gate::Limits;
use cloudauth_core::cache::{LentStore, PasswordCache};
use cloudauth_core::catalogue;
use cloudauth_core::doctor::{self, Check};
use cloudauth_core::domains::Builder;
use cloudauth_core::known_users::{KnownUsers, LentKnown};
use cloudauth_core::metrics::{self, Requests};
use cloudauth_core::roster::GroupPolicy;
use cloudauth_core::settings::schema::{Spec, Vm};
use cloudauth_core::settings::values::{Layer, Origin, Values};
use cloudauth_core::settings::{
    cache_settings, keys, limits, roster_policy, setting, timeouts, CacheStorage,
};
use cloudauth_core::token::{ClaimReplayGuard, MemoryReplayGuard, ReplayGuard, TokenContext};
use cloudauth_core::{Authenticator, HttpClient, SingleDomain};
use rustler::{Resource, Term, TermType};

/// One host's decision maker, its roster policy and the budget for its
/// asynchronous replies.
pub struct Host {
    /// Token, cache and cloud decisions.
    pub auth: Authenticator,
    /// Decisions made, for `stats`.
    pub requests: Requests,
    /// Which Nextcloud groups become shared roster groups.
    pub policy: GroupPolicy,
    /// Longest time before an asynchronous reply is sent.
    pub budget: Duration,
    /// Longest time before the doctor's reply is sent: it may wait on DNS,
    /// TCP and TLS set-up and on up to three requests.
    pub doctor_budget: Duration,
    /// With `auth_cloud_cache_storage: mnesia`: the cache's rows, lent by
    /// Erlang from Mnesia before each password check.
    pub lent: Option<Arc<LentStore>>,
    /// The same for known users, lent before each `isuser`.
    pub lent_known: Option<Arc<LentKnown>>,
    /// The settings in effect (for the doctor).
    values: Values,
    /// The options as ejabberd gave them (for the doctor: which are set,
    /// which name secret files).
    options: Layer,
    /// The host's HTTP client (its stats and limits; the doctor asks the
    /// cloud through it).
    http: Arc<HttpClient>,
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
/// cache (before and after the cloud) and scheduling; twice the decision's
/// own margin, so that the decision ends first.
const BUDGET_MARGIN: Duration =
    Duration::from_secs(2 * cloudauth_core::authenticator::DECISION_MARGIN.as_secs());

/// Settings that exist as ejabberd options.
pub fn in_vm(spec: &Spec) -> bool {
    spec.vm != Vm::No
}

/// One-time tokens used on this node, whatever vhost or reload they came
/// through (a reload builds new hosts; a used token must stay used).
fn replay_guard() -> Arc<dyn ReplayGuard> {
    static GUARD: OnceLock<Arc<MemoryReplayGuard>> = OnceLock::new();
    let g = GUARD.get_or_init(|| Arc::new(MemoryReplayGuard::default()));
    Arc::clone(g) as Arc<dyn ReplayGuard>
}

/// The same for hosts whose state is the cluster's (cache storage mnesia):
/// a token new on this node is a claim for the cluster's Mnesia table.
fn claim_guard() -> Arc<dyn ReplayGuard> {
    static GUARD: OnceLock<Arc<ClaimReplayGuard>> = OnceLock::new();
    let g = GUARD.get_or_init(|| Arc::new(ClaimReplayGuard::default()));
    Arc::clone(g) as Arc<dyn ReplayGuard>
}

/// The gates of this node: vhosts with the same limits share them, so that
/// several vhosts on one Nextcloud count against one limit.
fn shared_limits(v: &Values) -> Arc<Limits> {
    type ByBounds = HashMap<(usize, usize), Arc<Limits>>;
    static ALL: OnceLock<Mutex<ByBounds>> = OnceLock::new();
    let wanted = limits(v);
    let key = wanted.bounds();
    let mut all = match ALL.get_or_init(Mutex::default).lock() {
        Ok(a) => a,
        Err(p) => p.into_inner(),
    };
    Arc::clone(all.entry(key).or_insert_with(|| Arc::new(wanted)))
}

/// An option's value as text, as it would be written on a command line:
/// binaries as they are, numbers in decimal (seconds for durations), atoms
/// by name, lists of binaries joined with commas.
fn term_text(t: Term) -> Option<String> {
    match t.get_type() {
        TermType::Binary => t
            .decode::<rustler::Binary>()
            .ok()
            .and_then(|b| std::str::from_utf8(b.as_slice()).ok().map(str::to_string)),
        TermType::Integer => t.decode::<i64>().ok().map(|n| n.to_string()),
        TermType::Atom => t.atom_to_string().ok(),
        TermType::List => {
            let items: Vec<Term> = t.decode().ok()?;
            let texts: Option<Vec<String>> = items.into_iter().map(term_text).collect();
            texts.map(|t| t.join(","))
        }
        _ => None,
    }
}

impl Host {
    /// The host's counters as OpenMetrics text.
    pub fn render_stats(&self) -> String {
        metrics::render_for(&self.requests, &self.http, &self.auth, Vec::new())
    }

    /// Builds a host from its options; also returns warnings for the log.
    pub fn new(options: Vec<(String, Term)>) -> Result<(Host, Vec<String>), String> {
        let mut layer = Layer::new(Origin::Ejabberd);
        for (name, value) in options {
            let spec = catalogue::find_vm(&name).ok_or_else(|| format!("unknown option {name}"))?;
            let text = term_text(value).ok_or_else(|| format!("{name}: unreadable value"))?;
            layer.set(spec.key, text);
        }
        let resolved =
            Values::resolve(std::slice::from_ref(&layer), in_vm).map_err(|e| e.to_string())?;
        let v = resolved.values;
        let mut warnings = resolved.warnings;
        let timeouts = timeouts(&v);
        let http = Arc::new(HttpClient::with_limits(timeouts, shared_limits(&v)));
        let caching = cache_settings(&v);
        let in_cluster = caching.storage == CacheStorage::Mnesia;
        let builder = Builder {
            http: Arc::clone(&http),
            tokens: TokenContext {
                replay: if in_cluster {
                    claim_guard()
                } else {
                    replay_guard()
                },
            },
        };
        let settings = builder.build(&v).map_err(|e| e.to_string())?;
        let (cache, lent) = if in_cluster {
            let lent = crate::cluster::lent_store();
            let store = Box::new(Arc::clone(&lent));
            let cache = PasswordCache::new(store, caching.ttls, caching.rounds())
                .ok_or("password cache: the OS gave no random bytes for the cache key")?;
            (Some(cache), Some(lent))
        } else {
            let cache_db = setting(&v, keys::DB, |v, k| v.path(k).map(Path::to_path_buf));
            let cache = caching
                .open(&cache_db)
                .map_err(|e| format!("password cache: {e}"))?;
            (cache, None)
        };
        // The decision's own deadline (DECISION_MARGIN past the request
        // timeout) ends before the reply budget, so a slow decision is
        // answered as trouble with its cause.
        let (known, lent_known) = if in_cluster {
            let lent = crate::cluster::lent_known();
            let known = KnownUsers::new(Box::new(Arc::clone(&lent)), caching.known);
            (Some(known), Some(lent))
        } else {
            let known_db = setting(&v, keys::DB, |v, k| v.path(k).map(Path::to_path_buf));
            let known = caching
                .open_known(&known_db)
                .map_err(|e| format!("known users: {e}"))?;
            (known, None)
        };
        let auth = Authenticator::from_settings(Arc::new(SingleDomain(settings)), &v, cache, known);
        let budget = timeouts.total.max(timeouts.connect) + BUDGET_MARGIN;
        let doctor_budget = timeouts.connect * 4 + timeouts.total * 3 + BUDGET_MARGIN;
        warnings.retain(|w| !w.is_empty());
        Ok((
            Host {
                auth,
                requests: Requests::default(),
                policy: roster_policy(&v),
                budget,
                doctor_budget,
                lent,
                lent_known,
                values: v,
                options: layer,
                http,
            },
            warnings,
        ))
    }

    /// The doctor's checks for this host serving `server`: the options in
    /// effect, the secret files they name, the cache database when used,
    /// then the core's checks of the settings (URL, DNS, TCP, TLS, the
    /// backend, the clock, the token formats).
    pub async fn doctor(&self, server: &str) -> Vec<Check> {
        let mut out = vec![Check::pass("options", self.summary())];
        // Named as in ejabberd.yml.
        out.extend(
            doctor::secret_files([&self.options])
                .into_iter()
                .map(|mut c| {
                    if let Some(n) = catalogue::find(&c.name).and_then(|s| s.vm_name()) {
                        c.name = n;
                    }
                    c
                }),
        );
        let cache = cache_settings(&self.values);
        if cache.storage == CacheStorage::Db {
            if let Some(db) = self.values.path(keys::DB) {
                out.push(doctor::state_db(db));
            }
        }
        out.extend(doctor::check_domain(&self.values, server, &self.http).await);
        out
    }

    /// The options in effect, in a line: the main ones with their values
    /// (never a secret's), then the names of those set.
    fn summary(&self) -> String {
        let v = &self.values;
        let t = timeouts(v);
        let set: Vec<String> = self
            .options
            .entries
            .iter()
            .filter_map(|(k, _)| catalogue::find(k).and_then(|s| s.vm_name()))
            .collect();
        format!(
            "backend {}, url {}, tokens {}, cache {}, timeout {}+{} s; set: {}",
            setting(v, keys::BACKEND, |v, k| v.text(k).map(str::to_string)),
            v.url(keys::URL)
                .map_or_else(|| "none".to_string(), doctor::shown_url),
            match v.list(keys::TOKENS) {
                [] => "none".to_string(),
                l => l.join(","),
            },
            setting(v, keys::CACHE_STORAGE, |v, k| v.text(k).map(str::to_string)),
            t.connect.as_secs_f64(),
            t.total.as_secs_f64(),
            if set.is_empty() {
                "nothing (all defaults)".to_string()
            } else {
                set.join(", ")
            }
        )
    }
}
