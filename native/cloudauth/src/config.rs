//! Effective settings: command line beats config file beats defaults.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudauth_core::cache::CacheTtls;
use cloudauth_core::duration::parse_duration;
use cloudauth_core::roster::{Glob, GroupPolicy};
use cloudauth_core::secret::{self, Secret};
use cloudauth_core::Timeouts;
use thiserror::Error;

use crate::cli::Cli;
use crate::config_file::{self, FileSettings};
use crate::listen::{parse_spec, ListenSpec};

/// Config file read when `-c` is not given (and it exists).
pub const DEFAULT_CONFIG: &str = "/etc/xcauth.conf";
/// Log directory when none is configured (xcauth's).
pub const DEFAULT_LOG_DIR: &str = "/var/log/xcauth";
/// xcauth's state database.
pub const DEFAULT_DB: &str = "/var/lib/xcauth/xcauth.sqlite3";
/// Socket connections idle this long are closed (their clients reconnect).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Keys of obsolete xcauth dbm files (xcauth imported them into its SQLite
/// database once): accepted, with a warning.
const OBSOLETE_KEYS: [&str; 3] = ["domain-db", "cache-db", "shared-roster-db"];
const KNOWN_KEYS: [&str; 22] = [
    "ejabberdctl",
    "roster-groups-allow",
    "roster-groups-deny",
    "roster-max-members",
    "listen",
    "idle-timeout",
    "url",
    "secret",
    "secret-file",
    "type",
    "log",
    "debug",
    "interactive",
    "timeout",
    "per-domain-config",
    "db",
    "cache-storage",
    "cache-query-ttl",
    "cache-verification-ttl",
    "cache-unreachable-ttl",
    "cache-bcrypt-rounds",
    "on-backend-trouble",
];

/// Where cached passwords live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStorage {
    /// No cache.
    None,
    /// Process memory.
    Memory,
    /// The `authcache` table of the state database.
    Db,
}

/// What to answer when the cloud cannot say yes or no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TroublePolicy {
    /// Answer "no", like xcauth.
    Fail,
    /// Answer something ejabberd takes neither as yes nor as no: the request
    /// fails and nothing is cached (ejabberd's auth cache would otherwise
    /// remember the user as non-existent after an outage).
    TempFail,
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
}

impl CacheSettings {
    /// The bcrypt cost for the configured storage.
    pub fn rounds(&self) -> u32 {
        match self.storage {
            CacheStorage::Memory => self.rounds_memory,
            _ => self.rounds_persistent,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file has a line that is not a setting.
    #[error("config file {path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: config_file::SyntaxError,
    },
    /// The secret file could not be used.
    #[error(transparent)]
    SecretFile(secret::SecretFileError),
    /// `--secret` and `--secret-file` at the same level.
    #[error("give either secret or secret-file, not both ({0})")]
    TwoSecrets(&'static str),
    /// A bad value for a setting.
    #[error("invalid {key}: {why}")]
    Value {
        /// The setting.
        key: &'static str,
        /// What is wrong (never the value of a secret).
        why: String,
    },
}

/// The wire protocol spoken on stdin/stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// ejabberd extauth: 2-byte length prefix.
    Ejabberd,
    /// One request per line (Prosody's mod_auth_external "generic").
    Generic,
    /// saslauthd's length-prefixed fields (Cyrus SASL, Postfix SMTP auth).
    Saslauthd,
    /// Postfix tcp_table lookups (`get user@domain`).
    Postfix,
}

impl Protocol {
    /// Reads a protocol name (`prosody` is `generic`).
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "ejabberd" => Ok(Protocol::Ejabberd),
            "generic" | "prosody" => Ok(Protocol::Generic),
            "saslauthd" => Ok(Protocol::Saslauthd),
            "postfix" => Ok(Protocol::Postfix),
            _ => Err(ConfigError::Value {
                key: "type",
                why: format!("{v:?}: expected ejabberd, generic, prosody, saslauthd or postfix"),
            }),
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (`-i`, one-shot checks).
    Stderr,
    /// `<dir>/cloudauth.log`.
    Dir(PathBuf),
}

/// Everything the program needs to run, after merging all sources.
#[derive(Debug)]
pub struct Config {
    /// API URL, if configured.
    pub url: Option<String>,
    /// API secret, if configured.
    pub secret: Option<Secret>,
    /// Protocol for serving stdin/stdout.
    pub protocol: Option<Protocol>,
    /// Sockets to serve.
    pub listen: Vec<ListenSpec>,
    /// Socket connections without a request for this long are closed.
    pub idle_timeout: Duration,
    /// ejabberdctl for shared roster provisioning.
    pub ejabberdctl: Option<PathBuf>,
    /// Which Nextcloud groups become shared roster groups.
    pub roster_policy: GroupPolicy,
    /// Log destination.
    pub log: LogTarget,
    /// Debug level logging.
    pub debug: bool,
    /// Request deadlines.
    pub timeouts: Timeouts,
    /// State database path, and whether it was configured explicitly.
    pub db: (PathBuf, bool),
    /// Per-domain settings file.
    pub per_domain_file: Option<PathBuf>,
    /// Password cache.
    pub cache: CacheSettings,
    /// Answer on backend trouble.
    pub on_trouble: TroublePolicy,
    /// Warnings to log once logging is set up.
    pub warnings: Vec<String>,
}

/// Reads `--timeout`: `T` sets both deadlines, `C,T` sets them apart (seconds, decimals allowed).
pub fn parse_timeout(v: &str) -> Result<Timeouts, ConfigError> {
    let secs = |s: &str| -> Result<Duration, ConfigError> {
        let f: f64 = s.trim().parse().map_err(|_| ConfigError::Value {
            key: "timeout",
            why: format!("{v:?} is not a number of seconds"),
        })?;
        if !(f > 0.0 && f <= 3600.0) {
            return Err(ConfigError::Value {
                key: "timeout",
                why: format!("{v:?} must be between 0 and 3600 seconds"),
            });
        }
        Ok(Duration::from_secs_f64(f))
    };
    match v.split_once(',') {
        Some((c, t)) => Ok(Timeouts {
            connect: secs(c)?,
            total: secs(t)?,
        }),
        None => {
            let d = secs(v)?;
            Ok(Timeouts {
                connect: d,
                total: d,
            })
        }
    }
}

fn parse_ttl(
    key: &'static str,
    v: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => parse_duration(&v).map_err(|e| ConfigError::Value {
            key,
            why: e.to_string(),
        }),
    }
}

/// Reads `--cache-bcrypt-rounds P[,M]`.
pub fn parse_rounds(v: &str) -> Result<(u32, u32), ConfigError> {
    let one = |s: &str| -> Result<u32, ConfigError> {
        match s.trim().parse::<u32>() {
            Ok(n) if (4..=31).contains(&n) => Ok(n),
            _ => Err(ConfigError::Value {
                key: "cache-bcrypt-rounds",
                why: format!("{v:?}: each value must be 4..31"),
            }),
        }
    };
    match v.split_once(',') {
        Some((p, m)) => Ok((one(p)?, one(m)?)),
        None => Ok((one(v)?, 4)),
    }
}

fn parse_cache(get: &dyn Fn(&'static str) -> Option<String>) -> Result<CacheSettings, ConfigError> {
    let storage = match get("cache-storage").as_deref().map(str::trim) {
        None | Some("none") => CacheStorage::None,
        Some("memory") => CacheStorage::Memory,
        Some("db") => CacheStorage::Db,
        Some(other) => {
            return Err(ConfigError::Value {
                key: "cache-storage",
                why: format!("{other:?}: expected none, memory or db"),
            })
        }
    };
    let d = CacheTtls::default();
    let ttls = CacheTtls {
        query: parse_ttl("cache-query-ttl", get("cache-query-ttl"), d.query)?,
        verification: parse_ttl(
            "cache-verification-ttl",
            get("cache-verification-ttl"),
            d.verification,
        )?,
        unreachable: parse_ttl(
            "cache-unreachable-ttl",
            get("cache-unreachable-ttl"),
            d.unreachable,
        )?,
    };
    let (rounds_persistent, rounds_memory) = match get("cache-bcrypt-rounds") {
        Some(v) => parse_rounds(&v)?,
        None => (12, 4),
    };
    Ok(CacheSettings {
        storage,
        ttls,
        rounds_persistent,
        rounds_memory,
    })
}

/// Reads a secret file; a warning when others can read it.
pub fn read_secret_file(path: &Path, warnings: &mut Vec<String>) -> Result<Secret, ConfigError> {
    let read = secret::read_file(path).map_err(ConfigError::SecretFile)?;
    if read.world_readable {
        warnings.push(format!(
            "secret file {} is readable by other users; chmod 600 it",
            path.display()
        ));
    }
    Ok(read.secret)
}

fn load_file(cli: &Cli) -> Result<(Option<PathBuf>, FileSettings), ConfigError> {
    let path = match &cli.config_file {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok((None, FileSettings::new())),
    };
    let text = fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
        path: path.clone(),
        source,
    })?;
    let settings = config_file::parse(&text).map_err(|source| ConfigError::Syntax {
        path: path.clone(),
        source,
    })?;
    Ok((Some(path), settings))
}

fn file_bool(file: &FileSettings, key: &'static str) -> Result<bool, ConfigError> {
    match file.get(key) {
        None => Ok(false),
        Some((v, _)) => config_file::truthy(v).ok_or_else(|| ConfigError::Value {
            key,
            why: format!("{v:?} is not a boolean"),
        }),
    }
}

impl Config {
    /// Merges the command line, the config file and the defaults.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let (path, file) = load_file(cli)?;
        let mut warnings = Vec::new();
        let get = |key: &str| file.get(key).map(|(v, _)| v.clone());

        if let Some(p) = &path {
            for key in file.keys() {
                if OBSOLETE_KEYS.contains(&key.as_str()) {
                    warnings.push(format!(
                        "{}: setting {key:?} names an obsolete xcauth dbm file; ignored (its data lives in the db database)",
                        p.display()
                    ));
                } else if !KNOWN_KEYS.contains(&key.as_str()) {
                    warnings.push(format!("{}: unknown setting {key:?} ignored", p.display()));
                }
            }
            if file.contains_key("secret") && secret::world_readable(p) {
                warnings.push(format!(
                    "config file {} holds the API secret and is readable by other users; chmod 600 it",
                    p.display()
                ));
            }
        }
        for flag in cli.obsolete_flags() {
            warnings.push(format!(
                "--{flag} names an obsolete xcauth dbm file; ignored (its data lives in --db)"
            ));
        }

        let secret = match (&cli.secret, &cli.secret_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoSecrets("command line")),
            (Some(s), None) => {
                warnings.push(
                    "the API secret is on the command line, where ps shows it (and ejabberd's \
                     log quotes extauth_program on errors); use --secret-file"
                        .into(),
                );
                Some(Secret::new(s.as_bytes()))
            }
            (None, Some(f)) => Some(read_secret_file(f, &mut warnings)?),
            (None, None) => match (get("secret"), get("secret-file")) {
                (Some(_), Some(_)) => return Err(ConfigError::TwoSecrets("config file")),
                (Some(s), None) => Some(Secret::new(s.as_bytes())),
                (None, Some(f)) => Some(read_secret_file(Path::new(&f), &mut warnings)?),
                (None, None) => None,
            },
        };
        if secret.as_ref().is_some_and(Secret::is_empty) {
            return Err(ConfigError::Value {
                key: "secret",
                why: "is empty".into(),
            });
        }

        let protocol = cli
            .protocol
            .clone()
            .or_else(|| get("type"))
            .map(|v| Protocol::parse(&v))
            .transpose()?;
        let timeouts = match cli.timeout.clone().or_else(|| get("timeout")) {
            Some(v) => parse_timeout(&v)?,
            None => Timeouts::default(),
        };
        let debug = cli.debug || file_bool(&file, "debug")?;
        let one_shot =
            cli.auth_test.is_some() || cli.isuser_test.is_some() || cli.roster_test.is_some();
        let interactive = cli.interactive || one_shot || file_bool(&file, "interactive")?;
        let log = if interactive {
            LogTarget::Stderr
        } else {
            LogTarget::Dir(
                cli.log
                    .clone()
                    .or_else(|| get("log").map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_DIR)),
            )
        };
        let url = cli.url.clone().or_else(|| get("url"));
        let cli_value = |key: &'static str| -> Option<String> {
            let v = match key {
                "cache-storage" => cli.cache_storage.clone(),
                "cache-query-ttl" => cli.cache_query_ttl.clone(),
                "cache-verification-ttl" => cli.cache_verification_ttl.clone(),
                "cache-unreachable-ttl" => cli.cache_unreachable_ttl.clone(),
                "cache-bcrypt-rounds" => cli.cache_bcrypt_rounds.clone(),
                "on-backend-trouble" => cli.on_backend_trouble.clone(),
                "idle-timeout" => cli.idle_timeout.clone(),
                "roster-groups-allow" => cli.roster_groups_allow.clone(),
                "roster-groups-deny" => cli.roster_groups_deny.clone(),
                "roster-max-members" => cli.roster_max_members.clone(),
                _ => None,
            };
            v.or_else(|| get(key))
        };
        let cache = parse_cache(&cli_value)?;
        let idle_timeout = parse_ttl(
            "idle-timeout",
            cli_value("idle-timeout"),
            DEFAULT_IDLE_TIMEOUT,
        )?;
        if idle_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: "idle-timeout",
                why: "must be at least 1s".into(),
            });
        }
        let on_trouble = match cli_value("on-backend-trouble").as_deref().map(str::trim) {
            None | Some("tempfail") => TroublePolicy::TempFail,
            Some("fail") => TroublePolicy::Fail,
            Some(other) => {
                return Err(ConfigError::Value {
                    key: "on-backend-trouble",
                    why: format!("{other:?}: expected fail or tempfail"),
                })
            }
        };
        let db = match cli.db.clone().or_else(|| get("db").map(PathBuf::from)) {
            Some(p) => (p, true),
            None => (PathBuf::from(DEFAULT_DB), false),
        };
        let listen_texts: Vec<String> = if cli.listen.is_empty() {
            let split = |v: String| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            get("listen").map(split).unwrap_or_default()
        } else {
            cli.listen.clone()
        };
        let listen = listen_texts
            .iter()
            .map(|t| {
                parse_spec(t).map_err(|e| ConfigError::Value {
                    key: "listen",
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let patterns = |key: &'static str| -> Vec<Glob> {
            cli_value(key)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(Glob::new)
                        .collect()
                })
                .unwrap_or_default()
        };
        let max_members = match cli_value("roster-max-members") {
            None => None,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ConfigError::Value {
                        key: "roster-max-members",
                        why: format!("{v:?} is not a number"),
                    })
                }
            },
        };
        let roster_policy = GroupPolicy {
            allow: patterns("roster-groups-allow"),
            deny: patterns("roster-groups-deny"),
            max_members,
        };
        let ejabberdctl = cli
            .ejabberdctl
            .clone()
            .or_else(|| get("ejabberdctl").map(PathBuf::from));
        let per_domain_file = cli
            .per_domain_config
            .clone()
            .or_else(|| get("per-domain-config").map(PathBuf::from));
        Ok(Config {
            url,
            secret,
            protocol,
            listen,
            idle_timeout,
            ejabberdctl,
            roster_policy,
            log,
            debug: debug || one_shot,
            timeouts,
            db,
            per_domain_file,
            cache,
            on_trouble,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("cloudauth").chain(args.iter().copied())).unwrap()
    }

    fn temp_file(name: &str, content: &str, mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cloudauth-cfg-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn command_line_beats_file_beats_defaults() {
        let f = temp_file(
            "a.conf",
            "url=https://file/\nsecret=filesecret\ntype=generic\ntimeout=7\nlog=/tmp/filelog\n",
            0o600,
        );
        let c = Config::load(&cli(&[
            "-c",
            f.to_str().unwrap(),
            "-u",
            "https://cli/",
            "-t",
            "ejabberd",
        ]))
        .unwrap();
        assert_eq!(c.url.as_deref(), Some("https://cli/"));
        assert_eq!(c.protocol, Some(Protocol::Ejabberd));
        assert_eq!(c.secret, Some(Secret::new("filesecret")));
        assert_eq!(c.timeouts.total, Duration::from_secs(7));
        assert_eq!(c.log, LogTarget::Dir(PathBuf::from("/tmp/filelog")));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let d = Config::load(&cli(&["-c", "/dev/null"])).unwrap();
        assert_eq!(d.timeouts, Timeouts::default());
        assert_eq!(d.log, LogTarget::Dir(PathBuf::from(DEFAULT_LOG_DIR)));
        assert_eq!(d.protocol, None);
    }

    #[test]
    fn secret_file_and_permission_warnings() {
        let s = temp_file("secret", "from-file\n", 0o644);
        let c = Config::load(&cli(&[
            "-c",
            "/dev/null",
            "--secret-file",
            s.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(c.secret, Some(Secret::new("from-file")));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("readable by other users")));
        let f = temp_file("b.conf", "secret=x\n", 0o644);
        let c = Config::load(&cli(&["-c", f.to_str().unwrap()])).unwrap();
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("holds the API secret")));
        assert!(c.warnings.iter().all(|w| !w.contains("=x")));
        assert!(matches!(
            Config::load(&cli(&[
                "-c",
                "/dev/null",
                "-s",
                "a",
                "--secret-file",
                s.to_str().unwrap()
            ])),
            Err(ConfigError::TwoSecrets(_))
        ));
    }

    #[test]
    fn obsolete_and_unknown_keys_warn() {
        let text = "cache-db=/x\nejabberdctl=/usr/sbin/ejabberdctl\nfrobnicate=1\ndb=/y\nroster-groups-deny = everyone, *-hidden\nroster-max-members=50\n";
        let f = temp_file("c.conf", text, 0o600);
        let c = Config::load(&cli(&[
            "-c",
            f.to_str().unwrap(),
            "--shared-roster-db",
            "/z",
        ]))
        .unwrap();
        let all = c.warnings.join("\n");
        assert!(all.contains("\"cache-db\" names an obsolete xcauth dbm file"));
        assert!(!all.contains("\"ejabberdctl\""), "{all}");
        assert!(all.contains("unknown setting \"frobnicate\""));
        assert!(all.contains("--shared-roster-db names an obsolete"));
        assert!(!all.contains("\"db\""));
        assert_eq!(c.db, (PathBuf::from("/y"), true));
        assert_eq!(c.ejabberdctl, Some(PathBuf::from("/usr/sbin/ejabberdctl")));
        assert_eq!(
            c.roster_policy,
            GroupPolicy {
                allow: vec![],
                deny: vec![Glob::new("everyone"), Glob::new("*-hidden")],
                max_members: Some(50)
            }
        );
    }

    #[test]
    fn cache_settings() {
        let text = "cache-storage=db\ncache-query-ttl=30m\ncache_bcrypt_rounds = 10,5\n";
        let f = temp_file("d.conf", text, 0o600);
        let c = Config::load(&cli(&[
            "-c",
            f.to_str().unwrap(),
            "--cache-unreachable-ttl",
            "2d",
        ]))
        .unwrap();
        assert_eq!(c.cache.storage, CacheStorage::Db);
        assert_eq!(c.cache.ttls.query, Duration::from_secs(1800));
        assert_eq!(c.cache.ttls.verification, Duration::from_secs(86_400));
        assert_eq!(c.cache.ttls.unreachable, Duration::from_secs(172_800));
        assert_eq!(
            (
                c.cache.rounds_persistent,
                c.cache.rounds_memory,
                c.cache.rounds()
            ),
            (10, 5, 10)
        );
        assert_eq!(c.on_trouble, TroublePolicy::TempFail);
        let d = Config::load(&cli(&["-c", "/dev/null", "--on-backend-trouble", "fail"])).unwrap();
        assert_eq!(
            (d.cache.storage, d.on_trouble),
            (CacheStorage::None, TroublePolicy::Fail)
        );
        assert_eq!(d.db, (PathBuf::from(DEFAULT_DB), false));
        let bad = [
            ["--cache-storage", "disk"],
            ["--cache-query-ttl", "soon"],
            ["--cache-bcrypt-rounds", "99"],
            ["--on-backend-trouble", "maybe"],
        ];
        for [flag, value] in bad {
            assert!(
                Config::load(&cli(&["-c", "/dev/null", flag, value])).is_err(),
                "{flag}"
            );
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            parse_timeout("5").unwrap(),
            Timeouts {
                connect: Duration::from_secs(5),
                total: Duration::from_secs(5)
            }
        );
        assert_eq!(
            parse_timeout("2,10").unwrap(),
            Timeouts {
                connect: Duration::from_secs(2),
                total: Duration::from_secs(10)
            }
        );
        assert_eq!(
            parse_timeout("0.5").unwrap().total,
            Duration::from_millis(500)
        );
        for bad in ["", "x", "0", "-1", "5,", "1,2,3", "99999"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_shot_implies_stderr_and_debug() {
        let c = Config::load(&cli(&["-c", "/dev/null", "-I", "a", "b"])).unwrap();
        assert_eq!(c.log, LogTarget::Stderr);
        assert!(c.debug);
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::parse("prosody").unwrap(), Protocol::Generic);
        assert_eq!(Protocol::parse("Ejabberd").unwrap(), Protocol::Ejabberd);
        assert_eq!(Protocol::parse("saslauthd").unwrap(), Protocol::Saslauthd);
        assert_eq!(Protocol::parse("postfix").unwrap(), Protocol::Postfix);
        assert!(Protocol::parse("xmpp").is_err());
    }
}
