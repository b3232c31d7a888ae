//! The settings schema: every setting's name, kind, default and help, in
//! one table. The command line (`--KEY`), the config file (`KEY = value`),
//! per-domain rows, the NIF's host options and the ejabberd module's
//! `auth_cloud_*` options are all read through it; backends and token
//! formats declare their own settings next to their code
//! ([`crate::backend::BackendEntry::settings`]), and `crate::catalogue::all`
//! joins them.

use super::choice::{CacheStorage, Choice, TroublePolicy};
use super::keys::*;

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// An `http://` or `https://` URL.
    Url,
    /// A file or directory.
    Path,
    /// A secret given as text (prefer a file: command lines are visible in `ps`).
    SecretText,
    /// A file whose first line is a secret.
    SecretFile,
    /// Seconds, or a number with a suffix s, m, h, d, w.
    Duration,
    /// `T` (both) or `CONNECT,TOTAL` seconds, decimals allowed.
    Timeouts,
    /// A whole number in a range.
    Count {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// bcrypt cost `P[,M]` (persistent, memory), each 4..31.
    Rounds,
    /// One of a fixed list.
    Choice(&'static [&'static str]),
    /// One of the registered backends.
    Backend,
    /// A wire protocol of the `cloudauth` program: its names are the
    /// program's registry (`cloudauth::wire::registry`), which the core
    /// cannot see; read as lowercase text, checked by the program.
    Protocol,
    /// Comma-separated names of registered token formats, tried in order.
    Tokens,
    /// Comma-separated values (repeatable on the command line).
    List,
    /// On or off (`true`/`yes`/`on`/`1` or `false`/`no`/`off`/`0`).
    Flag,
    /// An xcauth setting for a file format no longer used: accepted, warned about, ignored.
    Obsolete,
}

/// Whether and how a setting is an ejabberd option of the in-VM module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vm {
    /// Not in the VM (process-level things: logging, sockets, the port protocol).
    No,
    /// As `auth_cloud_<key, dashes as underscores>`.
    Yes,
    /// Under this exact option name.
    Named(&'static str),
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Long option name, config-file key (`_` and `-` alike) and per-domain key.
    pub key: &'static str,
    /// Short command-line flag.
    pub short: Option<char>,
    /// Values it takes.
    pub kind: Kind,
    /// Default, as it would be written (parsed by the same rules).
    pub default: Option<&'static str>,
    /// May differ per XMPP domain (per-domain file and table, ejabberd `host_config`).
    pub per_domain: bool,
    /// Its ejabberd option.
    pub vm: Vm,
    /// Another way to give the setting named here (`secret-file` for
    /// `secret`): the higher level wins, both at one level is an error.
    pub same_as: Option<&'static str>,
    /// Placeholder in `--help`.
    pub value_name: &'static str,
    /// One line of help.
    pub help: &'static str,
}

impl Spec {
    /// A setting of the port program only, without default.
    pub const fn new(key: &'static str, kind: Kind, help: &'static str) -> Spec {
        Spec {
            key,
            short: None,
            kind,
            default: None,
            per_domain: false,
            vm: Vm::No,
            same_as: None,
            value_name: "VALUE",
            help,
        }
    }

    /// With a short flag.
    pub const fn short(mut self, c: char) -> Spec {
        self.short = Some(c);
        self
    }

    /// With a default.
    pub const fn default(mut self, d: &'static str) -> Spec {
        self.default = Some(d);
        self
    }

    /// Per domain (and so also an ejabberd option, per vhost).
    pub const fn per_domain(mut self) -> Spec {
        self.per_domain = true;
        self.vm = Vm::Yes;
        self
    }

    /// Also an ejabberd option, named after the key.
    pub const fn vm(mut self) -> Spec {
        self.vm = Vm::Yes;
        self
    }

    /// Also an ejabberd option, under this name.
    pub const fn vm_named(mut self, name: &'static str) -> Spec {
        self.vm = Vm::Named(name);
        self
    }

    /// Another spelling of `key`.
    pub const fn same_as(mut self, key: &'static str) -> Spec {
        self.same_as = Some(key);
        self
    }

    /// Placeholder in `--help`.
    pub const fn value_name(mut self, v: &'static str) -> Spec {
        self.value_name = v;
        self
    }

    /// The key its value is stored under.
    pub fn target(&self) -> &'static str {
        self.same_as.unwrap_or(self.key)
    }

    /// Its ejabberd option name, if it has one.
    pub fn vm_name(&self) -> Option<String> {
        match self.vm {
            Vm::No => None,
            Vm::Yes => Some(format!("auth_cloud_{}", self.key.replace('-', "_"))),
            Vm::Named(n) => Some(n.to_string()),
        }
    }

    /// Whether it is an on/off flag (no value on the command line).
    pub fn is_flag(&self) -> bool {
        self.kind == Kind::Flag
    }
}

/// The settings of the core and the port program (backends and token
/// formats add theirs: see [`all`]).
pub(crate) static CORE: &[Spec] = &[
    // Which backend, where, and with which secret.
    Spec::new(BACKEND, Kind::Backend, "Backend to ask for passwords (see docs/admin/backends.md)")
        .default("jsxc")
        .per_domain()
        .value_name("NAME"),
    Spec::new(URL, Kind::Url, "URL of the backend: the JSXC external API, the JSON API's base, or Nextcloud's base URL")
        .short('u')
        .per_domain()
        .value_name("URL"),
    Spec::new(SECRET, Kind::SecretText, "JSXC API secret (visible in ps and quoted in ejabberd's error log: use --secret-file)")
        .short('s')
        .per_domain()
        .value_name("SECRET"),
    Spec::new(SECRET_FILE, Kind::SecretFile, "File holding the JSXC API secret (first line)")
        .per_domain()
        .same_as(SECRET)
        .value_name("FILE"),
    Spec::new(AUTH_DOMAIN, Kind::Text, "Domain sent to the backend instead of the XMPP domain")
        .per_domain()
        .value_name("DOMAIN"),
    Spec::new(TOKENS, Kind::Tokens, "Token formats tried, in order, before the backend (comma-separated)")
        .default("jsxc")
        .per_domain()
        .value_name("FORMATS"),
    // Talking to the backend.
    Spec::new(TIMEOUT, Kind::Timeouts, "Seconds for connection set-up and for the whole request: T or CONNECT,TOTAL")
        .default("5,10")
        .vm()
        .value_name("T|C,T"),
    Spec::new(CONNECT_TIMEOUT, Kind::Duration, "Seconds for connection set-up (overrides the first part of --timeout)")
        .vm()
        .value_name("SECONDS"),
    Spec::new(CLOUD_CONCURRENCY, Kind::Count { min: 0, max: 100_000 }, "Most requests in flight to one backend host (size it to the backend's workers, e.g. Nextcloud's PHP-FPM pm.max_children; 0: no limit)")
        .default("8")
        .vm_named("auth_cloud_concurrency")
        .value_name("N"),
    Spec::new(CLOUD_QUEUE, Kind::Count { min: 0, max: 1_000_000 }, "Most requests waiting for a place among them, per front door (socket-mode protocol); more are answered \"cannot tell\" at once")
        .default("1000")
        .vm_named("auth_cloud_queue")
        .value_name("N"),
    Spec::new(ON_BACKEND_TROUBLE, Kind::Choice(TroublePolicy::WORDS), "Answer when the backend cannot tell: tempfail (nothing cached by ejabberd) or fail (no, like xcauth); see docs/backend-trouble.md")
        .default(TroublePolicy::DEFAULT_WORD)
        .value_name("POLICY"),
    // Password cache.
    Spec::new(CACHE_STORAGE, Kind::Choice(CacheStorage::WORDS), "Password cache: none, memory, db (the authcache table of --db), or mnesia (in ejabberd only: a table shared by the cluster's nodes)")
        .default(CacheStorage::DEFAULT_WORD)
        .vm()
        .value_name("STORAGE"),
    Spec::new(DB, Kind::Path, "xcauth state database (SQLite: domains, authcache, shared roster state)")
        .default("/var/lib/xcauth/xcauth.sqlite3")
        .vm_named("auth_cloud_cache_db")
        .value_name("PATH"),
    Spec::new(CACHE_QUERY_TTL, Kind::Duration, "Longest time between queries for a cache hit")
        .default("1h")
        .vm()
        .value_name("DURATION"),
    Spec::new(CACHE_VERIFICATION_TTL, Kind::Duration, "Longest time since the backend last confirmed a cached password")
        .default("1d")
        .vm()
        .value_name("DURATION"),
    Spec::new(CACHE_UNREACHABLE_TTL, Kind::Duration, "Same, while the backend cannot be asked")
        .default("1w")
        .vm()
        .value_name("DURATION"),
    Spec::new(CACHE_REVALIDATE, Kind::Duration, "A cache hit whose password the backend last confirmed longer ago still answers at once, and is re-checked with the backend in the background (through the failure budget); a refusal drops the row")
        .default("15m")
        .vm()
        .value_name("DURATION"),
    Spec::new(KNOWN_USER_TTL, Kind::Duration, "How long a user the backend confirmed (login, isuser, shared roster) is known: isuser answers yes without the backend, also while it cannot be asked (needs a cache storage; kept in it)")
        .default("30d")
        .vm()
        .value_name("DURATION"),
    Spec::new(KNOWN_USER_REFRESH, Kind::Duration, "Age of a known user's confirmation past which isuser asks the backend again in the background (a no drops the user and his cached password)")
        .default("1h")
        .vm()
        .value_name("DURATION"),
    Spec::new(ACCOUNT_SWEEP, Kind::Duration, "Interval at which every known user is re-checked with the backend in the background, a few at a time (half of --cloud-concurrency): one it says no longer exists or is disabled loses his cached password and known-user entry, his sessions are closed (--ejabberdctl, in the VM, Prosody's module) and he leaves the shared roster groups (0: off)")
        .default("1h")
        .vm()
        .value_name("DURATION"),
    Spec::new(CACHE_BCRYPT_ROUNDS, Kind::Rounds, "bcrypt cost of cached passwords: P[,M] for the database and for memory (one value: both)")
        .default("12,4")
        .vm()
        .value_name("P[,M]"),
    // Guessing passwords.
    Spec::new(THROTTLE_FAILURES, Kind::Count { min: 0, max: 1_000_000 }, "After this many different wrong passwords for one user within --throttle-window, further passwords are answered no without asking the backend, for a pause doubling from 1 s (0: off; tokens and cached passwords still work)")
        .default("10")
        .vm()
        .value_name("N"),
    Spec::new(THROTTLE_WINDOW, Kind::Duration, "How long a wrong password counts for --throttle-failures")
        .default("10m")
        .vm()
        .value_name("DURATION"),
    Spec::new(THROTTLE_MAX_DELAY, Kind::Duration, "Longest pause of --throttle-failures after the last wrong password the backend refused")
        .default("1m")
        .vm()
        .value_name("DURATION"),
    // Shared roster.
    Spec::new(ROSTER_SYNC, Kind::Flag, "Provision Nextcloud groups as shared roster groups after logins (in the VM)")
        .vm_named("auth_cloud_roster_sync")
        .default("false"),
    Spec::new(EJABBERDCTL, Kind::Path, "Provision shared roster groups after each login by running this ejabberdctl (state in --db)")
        .value_name("PATH"),
    Spec::new(ROSTER_GROUPS_ALLOW, Kind::List, "Shared roster: only groups matching one of these patterns (*, ?; comma-separated)")
        .vm()
        .value_name("PATTERNS"),
    Spec::new(ROSTER_GROUPS_DENY, Kind::List, "Shared roster: never groups matching one of these patterns")
        .vm()
        .value_name("PATTERNS"),
    Spec::new(ROSTER_MAX_MEMBERS, Kind::Count { min: 0, max: u32::MAX as u64 }, "Shared roster: never groups with more members than this (0: no limit)")
        .default("0")
        .vm()
        .value_name("N"),
    // The port program.
    Spec::new(TYPE, Kind::Protocol, "Protocol on stdin/stdout (generic is also called prosody)")
        .short('t')
        .value_name("PROTO"),
    Spec::new(LISTEN, Kind::List, "Serve sockets instead of stdin/stdout: PROTO=ADDR, repeatable; PROTO is a protocol --type takes, or metrics (sockets passed by systemd are served too)")
        .value_name("PROTO=ADDR"),
    Spec::new(IDLE_TIMEOUT, Kind::Duration, "Socket mode: close connections that sent nothing for this long")
        .default("5m")
        .value_name("DURATION"),
    Spec::new(WRITE_TIMEOUT, Kind::Duration, "Socket mode: close a connection whose peer has not read a reply for this long")
        .default("10s")
        .value_name("DURATION"),
    Spec::new(MAX_CONNECTIONS, Kind::Count { min: 1, max: 1_000_000 }, "Socket mode: open connections per listener; when full, the connection idle longest is closed for a new one")
        .default("1024")
        .value_name("N"),
    Spec::new(MAX_CONNECTIONS_PER_PEER, Kind::Count { min: 0, max: 1_000_000 }, "Socket mode: open connections per peer of a listener (TCP: its address, on loopback the connecting socket's owner; unix socket: its user id); past it the peer's connection idle longest is closed (0: no limit)")
        .default("512")
        .value_name("N"),
    Spec::new(PER_DOMAIN_CONFIG, Kind::Path, "Per-domain settings file: `domain secret url [authdomain] [key=value ...]` lines")
        .short('p')
        .value_name("FILE"),
    Spec::new(LOG, Kind::Path, "Log directory (cloudauth.log is written there)")
        .short('l')
        .default("/var/log/xcauth")
        .value_name("DIR"),
    Spec::new(DEBUG, Kind::Flag, "Debug logging").short('d').default("false"),
    Spec::new(INTERACTIVE, Kind::Flag, "Log to stderr instead of the log file")
        .short('i')
        .default("false"),
    Spec::new("domain-db", Kind::Obsolete, "Old xcauth dbm domain database (its data lives in --db)").short('b'),
    Spec::new("cache-db", Kind::Obsolete, "Old xcauth dbm cache database (its data lives in --db)"),
    Spec::new("shared-roster-db", Kind::Obsolete, "Old xcauth dbm shared roster database (its data lives in --db)"),
];

/// A key as written in a file or on a command line, in schema form:
/// `_` as `-`, leading dashes dropped, lowercase. Idempotent: `__url` is
/// `url` at once (dropping the dashes before replacing `_` made it `--url`,
/// which became `url` only when normalised again).
pub fn normalise_key(k: &str) -> String {
    k.trim()
        .replace('_', "-")
        .trim_start_matches("--")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{all, find, find_vm, parse_value};

    #[test]
    fn keys_and_vm_names_are_unique() {
        let specs = all();
        let mut keys: Vec<_> = specs.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate setting key");
        let mut vm: Vec<_> = specs.iter().filter_map(|s| s.vm_name()).collect();
        vm.sort();
        let n = vm.len();
        vm.dedup();
        assert_eq!(vm.len(), n, "duplicate ejabberd option");
        let mut shorts: Vec<_> = specs.iter().filter_map(|s| s.short).collect();
        shorts.sort_unstable();
        let n = shorts.len();
        shorts.dedup();
        assert_eq!(shorts.len(), n, "duplicate short flag");
    }

    #[test]
    fn every_default_parses_and_alternatives_point_at_settings() {
        for s in all() {
            if let Some(d) = s.default {
                let mut warnings = Vec::new();
                assert!(
                    parse_value(s, d, &mut warnings).is_ok(),
                    "default of {}",
                    s.key
                );
            }
            if let Some(t) = s.same_as {
                assert!(find(t).is_some(), "{} is the same as unknown {t}", s.key);
            }
        }
    }

    #[test]
    fn vm_names() {
        assert_eq!(
            find(CACHE_QUERY_TTL).and_then(|s| s.vm_name()).as_deref(),
            Some("auth_cloud_cache_query_ttl")
        );
        assert_eq!(find_vm("auth_cloud_cache_db").map(|s| s.key), Some(DB));
        assert!(find(LOG).and_then(|s| s.vm_name()).is_none());
        assert_eq!(normalise_key("--Cache_Query_TTL"), "cache-query-ttl");
    }

    #[test]
    fn normalised_keys_stay_as_they_are() {
        // Found by the xcauth_conf fuzz target: `__…c` normalised to `--…c`, then to `…c`.
        for k in ["__url", "___c", "-_-url", "url", "-x", "----a_b", " --A "] {
            let once = normalise_key(k);
            assert_eq!(normalise_key(&once), once, "{k:?}");
        }
        assert_eq!(normalise_key("__url"), "url");
    }
}
