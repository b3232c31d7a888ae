//! Names of the core's settings, for typed access to [`super::values::Values`].
//! Backends and token formats keep their own keys in their files.

/// `backend`
pub const BACKEND: &str = "backend";
/// `url`
pub const URL: &str = "url";
/// `secret`
pub const SECRET: &str = "secret";
/// `secret-file`
pub(crate) const SECRET_FILE: &str = "secret-file";
/// `auth-domain`
pub(crate) const AUTH_DOMAIN: &str = "auth-domain";
/// `tokens`
pub const TOKENS: &str = "tokens";
/// `timeout`
pub(crate) const TIMEOUT: &str = "timeout";
/// `connect-timeout`
pub(crate) const CONNECT_TIMEOUT: &str = "connect-timeout";
/// `on-backend-trouble`
pub const ON_BACKEND_TROUBLE: &str = "on-backend-trouble";
/// `cache-storage`
pub const CACHE_STORAGE: &str = "cache-storage";
/// `db`
pub const DB: &str = "db";
/// `cache-query-ttl`
pub(crate) const CACHE_QUERY_TTL: &str = "cache-query-ttl";
/// `cache-verification-ttl`
pub(crate) const CACHE_VERIFICATION_TTL: &str = "cache-verification-ttl";
/// `cache-unreachable-ttl`
pub(crate) const CACHE_UNREACHABLE_TTL: &str = "cache-unreachable-ttl";
/// `cache-revalidate`
pub(crate) const CACHE_REVALIDATE: &str = "cache-revalidate";
/// `known-user-ttl`
pub(crate) const KNOWN_USER_TTL: &str = "known-user-ttl";
/// `known-user-refresh`
pub(crate) const KNOWN_USER_REFRESH: &str = "known-user-refresh";
/// `account-sweep`
pub(crate) const ACCOUNT_SWEEP: &str = "account-sweep";
/// `cache-bcrypt-rounds`
pub(crate) const CACHE_BCRYPT_ROUNDS: &str = "cache-bcrypt-rounds";
/// `roster-sync`
pub(crate) const ROSTER_SYNC: &str = "roster-sync";
/// `ejabberdctl`
pub const EJABBERDCTL: &str = "ejabberdctl";
/// `roster-groups-allow`
pub(crate) const ROSTER_GROUPS_ALLOW: &str = "roster-groups-allow";
/// `roster-groups-deny`
pub(crate) const ROSTER_GROUPS_DENY: &str = "roster-groups-deny";
/// `roster-max-members`
pub(crate) const ROSTER_MAX_MEMBERS: &str = "roster-max-members";
/// `type`
pub const TYPE: &str = "type";
/// `listen`
pub const LISTEN: &str = "listen";
/// `idle-timeout`
pub const IDLE_TIMEOUT: &str = "idle-timeout";
/// `per-domain-config`
pub const PER_DOMAIN_CONFIG: &str = "per-domain-config";
/// `log`
pub const LOG: &str = "log";
/// `debug`
pub const DEBUG: &str = "debug";
/// `interactive`
pub const INTERACTIVE: &str = "interactive";
/// `cloud-concurrency`
pub(crate) const CLOUD_CONCURRENCY: &str = "cloud-concurrency";
/// `cloud-queue`
pub(crate) const CLOUD_QUEUE: &str = "cloud-queue";
/// `max-connections`
pub const MAX_CONNECTIONS: &str = "max-connections";
/// `max-connections-per-peer`
pub const MAX_CONNECTIONS_PER_PEER: &str = "max-connections-per-peer";
/// `write-timeout`
pub const WRITE_TIMEOUT: &str = "write-timeout";
/// `throttle-failures`
pub(crate) const THROTTLE_FAILURES: &str = "throttle-failures";
/// `throttle-window`
pub(crate) const THROTTLE_WINDOW: &str = "throttle-window";
/// `throttle-max-delay`
pub(crate) const THROTTLE_MAX_DELAY: &str = "throttle-max-delay";
