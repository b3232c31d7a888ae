//! Command-line flags, compatible with xcauth's.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// XMPP server authentication against Nextcloud/ownCloud with JSXC (xcauth-compatible).
#[derive(Debug, Parser)]
#[command(name = "cloudauth", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file (xcauth.conf syntax); default /etc/xcauth.conf if it exists.
    #[arg(short = 'c', long = "config-file", global = true)]
    pub config_file: Option<PathBuf>,
    /// URL of the JSXC external API.
    #[arg(short = 'u', long, global = true)]
    pub url: Option<String>,
    /// API secret (visible in `ps` and quoted in ejabberd's error log lines: use --secret-file).
    #[arg(short = 's', long, global = true)]
    pub secret: Option<String>,
    /// File holding the API secret (first line).
    #[arg(long = "secret-file", global = true)]
    pub secret_file: Option<PathBuf>,
    /// Protocol on stdin/stdout: ejabberd, generic (alias prosody).
    #[arg(short = 't', long = "type")]
    pub protocol: Option<String>,
    /// Serve sockets instead of stdin/stdout: PROTO=ADDR, repeatable (e.g.
    /// saslauthd=/run/cloudauth/mux, postfix=127.0.0.1:23663). Sockets passed
    /// by systemd are served too.
    #[arg(long = "listen")]
    pub listen: Vec<String>,
    /// Socket mode: close connections that sent nothing for this long
    /// (default 5m; suffixes s/m/h). Clients reconnect when they need to.
    #[arg(long = "idle-timeout")]
    pub idle_timeout: Option<String>,
    /// Log directory (cloudauth.log is written there); default /var/log/xcauth.
    #[arg(short = 'l', long, global = true)]
    pub log: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'd', long, global = true)]
    pub debug: bool,
    /// Log to stderr instead of the log file.
    #[arg(short = 'i', long, global = true)]
    pub interactive: bool,
    /// Seconds for connection set-up and for the whole request: `T` or `CONNECT,TOTAL`.
    #[arg(long, global = true)]
    pub timeout: Option<String>,
    /// One-shot: check a password (exit 0 yes, 1 no, 2 backend trouble).
    #[arg(short = 'A', long = "auth-test", num_args = 3, value_names = ["USER", "DOMAIN", "PASSWORD"])]
    pub auth_test: Option<Vec<String>>,
    /// One-shot: does the user exist (exit 0 yes, 1 no, 2 backend trouble).
    #[arg(short = 'I', long = "isuser-test", num_args = 2, value_names = ["USER", "DOMAIN"])]
    pub isuser_test: Option<Vec<String>>,
    /// One-shot: print the user's shared roster as JSON (exit 0, or 2 on backend trouble).
    #[arg(short = 'R', long = "roster-test", num_args = 2, value_names = ["USER", "DOMAIN"])]
    pub roster_test: Option<Vec<String>>,

    /// Per-domain settings file: `domain secret url [authdomain]` lines.
    #[arg(short = 'p', long = "per-domain-config")]
    pub per_domain_config: Option<PathBuf>,
    /// xcauth state database (SQLite: `domains`, `authcache`); default /var/lib/xcauth/xcauth.sqlite3.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Password cache: none, memory or db (the `authcache` table of --db).
    #[arg(long = "cache-storage")]
    pub cache_storage: Option<String>,
    /// Longest time between queries for a cache hit (default 1h; suffixes s/m/h/d/w).
    #[arg(long = "cache-query-ttl")]
    pub cache_query_ttl: Option<String>,
    /// Longest time since the cloud last confirmed a cached password (default 1d).
    #[arg(long = "cache-verification-ttl")]
    pub cache_verification_ttl: Option<String>,
    /// Same, while the cloud is unreachable (default 1w).
    #[arg(long = "cache-unreachable-ttl")]
    pub cache_unreachable_ttl: Option<String>,
    /// bcrypt cost for the persistent and the in-memory cache: `P[,M]` (default 12,4).
    #[arg(long = "cache-bcrypt-rounds")]
    pub cache_bcrypt_rounds: Option<String>,
    /// Answer on backend trouble: tempfail (default; ejabberd takes it as a
    /// failure but caches nothing, so no user is remembered as non-existent)
    /// or fail (answer no, like xcauth). See docs/backend-trouble.md.
    #[arg(long = "on-backend-trouble")]
    pub on_backend_trouble: Option<String>,
    /// Old xcauth dbm domain database (not supported: convert it with xcauth).
    #[arg(short = 'b', long = "domain-db", hide = true)]
    pub domain_db: Option<String>,
    /// Old xcauth dbm cache database (not supported: use --db).
    #[arg(long = "cache-db", hide = true)]
    pub cache_db: Option<String>,
    /// Provision shared roster groups from Nextcloud groups after each login
    /// by running this ejabberdctl (state in the --db database).
    #[arg(long)]
    pub ejabberdctl: Option<PathBuf>,
    /// Shared roster: only Nextcloud groups matching one of these patterns
    /// (`*`, `?`; comma-separated; default all).
    #[arg(long = "roster-groups-allow")]
    pub roster_groups_allow: Option<String>,
    /// Shared roster: never Nextcloud groups matching one of these patterns.
    #[arg(long = "roster-groups-deny")]
    pub roster_groups_deny: Option<String>,
    /// Shared roster: never groups with more members than this (0: no limit).
    #[arg(long = "roster-max-members")]
    pub roster_max_members: Option<String>,
    /// Old xcauth dbm shared roster database (obsolete: its data lives in --db).
    #[arg(long = "shared-roster-db", hide = true)]
    pub shared_roster_db: Option<String>,

    /// Subcommands.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands beyond xcauth's flags.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a JSXC time-limited token for USER@DOMAIN (signed with the API secret).
    Token {
        /// Local part.
        user: String,
        /// XMPP domain.
        domain: String,
        /// Lifetime: seconds or with suffix s/m/h/d/w.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Exact expiry as Unix time (overrides --ttl).
        #[arg(long)]
        expiry: Option<u64>,
    },
}

impl Cli {
    /// Obsolete xcauth flags given on the command line (accepted, ignored).
    pub fn obsolete_flags(&self) -> Vec<&'static str> {
        let flags: [(&'static str, bool); 3] = [
            ("domain-db", self.domain_db.is_some()),
            ("cache-db", self.cache_db.is_some()),
            ("shared-roster-db", self.shared_roster_db.is_some()),
        ];
        flags
            .iter()
            .filter(|(_, given)| *given)
            .map(|(n, _)| *n)
            .collect()
    }
}

const AFTER_HELP: &str = "\
-A takes precedence over -I over -R over -t. -A, -I and -R log to stderr.
Command line beats the config file, which beats the defaults.
ejabberd: extauth_program: \"/usr/bin/cloudauth -t ejabberd -c /etc/xcauth.conf\"";
