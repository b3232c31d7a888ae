//! Effective settings: the command line over the config file over the
//! schema's defaults, read through the core's settings schema; then the
//! few things only this program needs, typed.

use std::fs;
use std::path::{Path, PathBuf};

use cloudauth_core::roster::GroupPolicy;
use cloudauth_core::secret;
use cloudauth_core::settings::keys::*;
use cloudauth_core::settings::values::{Layer, Origin, SettingsError, Values};
use cloudauth_core::settings::{
    cache_settings, choice_setting, count_setting, roster_policy, setting, timeouts, CacheSettings,
};
use cloudauth_core::Timeouts;
use thiserror::Error;

use crate::cli::Cli;
use crate::config_file;
use crate::listen::{parse_spec, ListenSpec};
use crate::logging;

use crate::vocab::{LogTarget, Protocol, TroublePolicy};

/// Config file read when `-c` is not given (and it exists).
pub const DEFAULT_CONFIG: &str = "/etc/xcauth.conf";

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
    /// A setting the schema refuses.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A value only this program interprets.
    #[error("invalid {key}: {why}")]
    Value {
        /// The setting.
        key: &'static str,
        /// What is wrong (never the value of a secret).
        why: String,
    },
}

/// The wire protocol called `v` (`prosody` is `generic`).
fn protocol_named(v: &str) -> Result<Protocol, ConfigError> {
    Protocol::named(v).ok_or_else(|| ConfigError::Value {
        key: TYPE,
        why: format!("{v:?}: expected {}", Protocol::names()),
    })
}

/// Everything the program needs to run, after merging all sources.
#[derive(Debug)]
pub struct Config {
    /// All settings, for the global domain settings and the per-domain rows over them.
    pub values: Values,
    /// Protocol for serving stdin/stdout.
    pub protocol: Option<Protocol>,
    /// Sockets to serve.
    pub listen: Vec<ListenSpec>,
    /// Socket mode's limits: connections per listener and peer, idle and write timeouts.
    pub socket_limits: crate::vocab::SocketLimits,
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

/// The config file's settings as a layer, and its path when one was read.
pub fn load_file(cli: &Cli) -> Result<Option<(PathBuf, Layer)>, ConfigError> {
    let Some(path) = config_path(cli) else {
        return Ok(None);
    };
    let text = fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
        path: path.clone(),
        source,
    })?;
    let settings = config_file::parse(&text).map_err(|source| ConfigError::Syntax {
        path: path.clone(),
        source,
    })?;
    let mut layer = Layer::new(Origin::ConfigFile(path.clone()));
    for (key, (value, _line)) in settings {
        layer.set(key, value);
    }
    Ok(Some((path, layer)))
}

/// The settings given on the command line, as a layer.
pub fn command_line_layer(cli: &Cli) -> Layer {
    let mut layer = Layer::new(Origin::CommandLine);
    for (k, v) in &cli.settings.given {
        layer.set(k.as_str(), v.as_str());
    }
    layer
}

/// The config file `cli` names, or the default one when it exists.
pub fn config_path(cli: &Cli) -> Option<PathBuf> {
    match &cli.config_file {
        Some(p) => Some(p.clone()),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
        None => None,
    }
}

impl Config {
    /// Merges the command line, the config file and the defaults.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = load_file(cli)?;
        let command_line = command_line_layer(cli);
        let mut layers = Vec::new();
        if let Some((_, l)) = &file {
            layers.push(l.clone());
        }
        layers.push(command_line);
        let resolved = Values::resolve(&layers, |_| true)?;
        let v = resolved.values;
        let mut warnings = resolved.warnings;
        if let Some((path, layer)) = &file {
            let has_secret = layer.entries.iter().any(|(k, _)| k == SECRET);
            if has_secret && secret::world_readable(path) {
                warnings.push(format!(
                    "config file {} holds the API secret and is readable by other users; chmod 600 it",
                    path.display()
                ));
            }
        }

        let protocol = v.text(TYPE).map(protocol_named).transpose()?;
        let one_shot = cli.one_shot();
        let interactive = v.flag(INTERACTIVE) || one_shot;
        // Under systemd the journal is the place, unless a log directory
        // was configured (xcauth's setups have one in xcauth.conf).
        let log = match (interactive, v.path(LOG)) {
            (false, _) if v.is_default(LOG) && logging::stderr_is_journal() => LogTarget::Journal,
            (false, Some(dir)) => LogTarget::Dir(dir.to_path_buf()),
            _ => LogTarget::Stderr,
        };
        let idle_timeout = setting(&v, IDLE_TIMEOUT, Values::duration);
        if idle_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: IDLE_TIMEOUT,
                why: "must be at least 1s".into(),
            });
        }
        let on_trouble: TroublePolicy = choice_setting(&v, ON_BACKEND_TROUBLE);
        let db = (
            setting(&v, DB, |v, k| v.path(k).map(Path::to_path_buf)),
            !v.is_default(DB),
        );
        let listen = v
            .list(LISTEN)
            .iter()
            .map(|t| {
                parse_spec(t).map_err(|e| ConfigError::Value {
                    key: LISTEN,
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let write_timeout = setting(&v, WRITE_TIMEOUT, Values::duration);
        if write_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: WRITE_TIMEOUT,
                why: "must be at least 1s".into(),
            });
        }
        let socket_limits = crate::vocab::SocketLimits {
            per_listener: count_setting(&v, MAX_CONNECTIONS),
            per_peer: count_setting(&v, MAX_CONNECTIONS_PER_PEER),
            idle: idle_timeout,
            write: write_timeout,
        };
        Ok(Config {
            protocol,
            listen,
            socket_limits,
            ejabberdctl: v.path(EJABBERDCTL).map(Path::to_path_buf),
            roster_policy: roster_policy(&v),
            log,
            // One-shot checks too: their answer is on stdout, and DEBUG
            // would add the HTTP client's lines on stderr (issue 19).
            debug: v.flag(DEBUG),
            timeouts: timeouts(&v),
            db,
            per_domain_file: v.path(PER_DOMAIN_CONFIG).map(Path::to_path_buf),
            cache: cache_settings(&v),
            on_trouble,
            warnings,
            values: v,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use cloudauth_core::roster::Glob;
    use cloudauth_core::settings::CacheStorage;
    use cloudauth_core::Secret;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

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
        assert_eq!(c.values.url(URL).map(|u| u.as_str()), Some("https://cli/"));
        assert_eq!(c.protocol, Protocol::named("ejabberd"));
        assert_eq!(c.values.secret(SECRET), Some(&Secret::new("filesecret")));
        assert_eq!(c.timeouts.total, Duration::from_secs(7));
        assert_eq!(c.log, LogTarget::Dir(PathBuf::from("/tmp/filelog")));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let d = Config::load(&cli(&["-c", "/dev/null"])).unwrap();
        assert_eq!(
            d.timeouts,
            Timeouts {
                connect: Duration::from_secs(5),
                total: Duration::from_secs(10)
            }
        );
        assert_eq!(d.log, LogTarget::Dir(PathBuf::from("/var/log/xcauth")));
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
        assert_eq!(c.values.secret(SECRET), Some(&Secret::new("from-file")));
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
            Err(ConfigError::Settings(SettingsError::Both { .. }))
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
        assert!(
            all.contains("\"shared-roster-db\" names an obsolete"),
            "{all}"
        );
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
    fn cache_settings_from_file_and_command_line() {
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
        assert_eq!(
            d.db,
            (PathBuf::from("/var/lib/xcauth/xcauth.sqlite3"), false)
        );
        let bad = temp_file("e.conf", "cache-storage=disk\n", 0o600);
        assert!(Config::load(&cli(&["-c", bad.to_str().unwrap()])).is_err());
    }

    #[test]
    fn connect_timeout_overrides_the_first_part() {
        let c = Config::load(&cli(&[
            "-c",
            "/dev/null",
            "--timeout",
            "2,10",
            "--connect-timeout",
            "1",
        ]))
        .unwrap();
        assert_eq!(
            c.timeouts,
            Timeouts {
                connect: Duration::from_secs(1),
                total: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn one_shot_implies_stderr_but_debug_only_with_d() {
        let c = Config::load(&cli(&["-c", "/dev/null", "-I", "a", "b"])).unwrap();
        assert_eq!(c.log, LogTarget::Stderr);
        assert!(!c.debug, "quiet unless -d");
        let c = Config::load(&cli(&["-c", "/dev/null", "-d", "-I", "a", "b"])).unwrap();
        assert!(c.debug);
    }

    /// The sample /etc/xcauth.conf of docs/admin/ejabberd-extauth.md (its first ```ini block), as printed.
    fn documented_sample() -> String {
        let page = include_str!("../../../docs/admin/ejabberd-extauth.md");
        let start = page
            .find("```ini\n")
            .expect("the extauth page has an ini block")
            + 7;
        let len = page[start..].find("```").expect("closed");
        page[start..start + len].to_string()
    }

    #[test]
    fn the_documented_sample_config_loads_as_printed() {
        let text = documented_sample();
        let parsed = config_file::parse(&text).expect("the sample parses");
        assert_eq!(parsed["timeout"].0, "5,10");
        assert_eq!(parsed["secret-file"].0, "/etc/cloudauth/secret");
        assert_eq!(parsed["log"].0, "/var/log/xcauth");
        // The secret file it names does not exist here: the same text with
        // only that path pointing at a real file loads without a warning.
        let secret = temp_file("readme-secret", "s3cret\n", 0o600);
        let conf = temp_file(
            "readme.conf",
            &text.replace("/etc/cloudauth/secret", secret.to_str().unwrap()),
            0o600,
        );
        let c = Config::load(&cli(&["-c", conf.to_str().unwrap()])).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            c.timeouts,
            Timeouts {
                connect: Duration::from_secs(5),
                total: Duration::from_secs(10)
            }
        );
        assert_eq!(c.values.secret(SECRET), Some(&Secret::new("s3cret")));
        assert_eq!(c.log, LogTarget::Dir(PathBuf::from("/var/log/xcauth")));
        assert!(c.values.url(URL).is_some());
    }

    #[test]
    fn protocol_names() {
        let named = |n| protocol_named(n).unwrap().label();
        assert_eq!(named("prosody"), "generic");
        assert_eq!(named("Ejabberd"), "ejabberd");
        assert_eq!(named("saslauthd"), "saslauthd");
        assert_eq!(named("postfix"), "postfix");
        assert!(matches!(
            protocol_named("xmpp"),
            Err(ConfigError::Value { key: TYPE, why }) if why == "\"xmpp\": expected ejabberd, generic, prosody, saslauthd or postfix"
        ));
    }
}
