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
    /// API secret (visible in `ps`: prefer --secret-file).
    #[arg(short = 's', long, global = true)]
    pub secret: Option<String>,
    /// File holding the API secret (first line).
    #[arg(long = "secret-file", global = true)]
    pub secret_file: Option<PathBuf>,
    /// Protocol on stdin/stdout: ejabberd, generic (alias prosody).
    #[arg(short = 't', long = "type")]
    pub protocol: Option<String>,
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

    /// Per-domain settings file (accepted; not implemented yet).
    #[arg(short = 'p', long = "per-domain-config", hide = true)]
    pub per_domain_config: Option<String>,
    /// xcauth domain database (accepted; not implemented yet).
    #[arg(short = 'b', long = "domain-db", hide = true)]
    pub domain_db: Option<String>,
    /// xcauth state database (accepted; not implemented yet).
    #[arg(long, hide = true)]
    pub db: Option<String>,
    /// xcauth cache database (accepted; not implemented yet).
    #[arg(long = "cache-db", hide = true)]
    pub cache_db: Option<String>,
    /// Cache storage (accepted; not implemented yet).
    #[arg(long = "cache-storage", hide = true)]
    pub cache_storage: Option<String>,
    /// Cache query TTL (accepted; not implemented yet).
    #[arg(long = "cache-query-ttl", hide = true)]
    pub cache_query_ttl: Option<String>,
    /// Cache verification TTL (accepted; not implemented yet).
    #[arg(long = "cache-verification-ttl", hide = true)]
    pub cache_verification_ttl: Option<String>,
    /// Cache unreachable TTL (accepted; not implemented yet).
    #[arg(long = "cache-unreachable-ttl", hide = true)]
    pub cache_unreachable_ttl: Option<String>,
    /// Cache bcrypt rounds (accepted; not implemented yet).
    #[arg(long = "cache-bcrypt-rounds", hide = true)]
    pub cache_bcrypt_rounds: Option<String>,
    /// ejabberdctl path for shared rosters (accepted; not implemented yet).
    #[arg(long, hide = true)]
    pub ejabberdctl: Option<String>,
    /// Shared roster database (accepted; not implemented yet).
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
    /// Compatibility flags given on the command line that have no effect yet: (name, given).
    pub fn deferred_flags(&self) -> Vec<&'static str> {
        let flags: [(&'static str, bool); 11] = [
            ("per-domain-config", self.per_domain_config.is_some()),
            ("domain-db", self.domain_db.is_some()),
            ("db", self.db.is_some()),
            ("cache-db", self.cache_db.is_some()),
            ("cache-storage", self.cache_storage.is_some()),
            ("cache-query-ttl", self.cache_query_ttl.is_some()),
            (
                "cache-verification-ttl",
                self.cache_verification_ttl.is_some(),
            ),
            (
                "cache-unreachable-ttl",
                self.cache_unreachable_ttl.is_some(),
            ),
            ("cache-bcrypt-rounds", self.cache_bcrypt_rounds.is_some()),
            ("ejabberdctl", self.ejabberdctl.is_some()),
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
