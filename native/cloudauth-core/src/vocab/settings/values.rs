//! Settings as read: layers of `key = text` (defaults, config file, command
//! line; or the ejabberd options; or a per-domain row over the global
//! settings) parsed and checked by the schema into typed [`Values`]. The
//! parsing needs every setting of every backend and token format, so it is
//! the assembly's (`crate::catalogue`: `Values::resolve`, `parse_value`);
//! the values and how they are read are here, for every layer.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::secret::Secret;
use crate::vocab::timeouts::Timeouts;

/// Where a layer of settings comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The schema's default.
    Default,
    /// A config file.
    ConfigFile(PathBuf),
    /// The command line.
    CommandLine,
    /// ejabberd's options for a vhost.
    Ejabberd,
    /// A per-domain row (file line or database row) for this domain.
    Domain(String),
    /// The program itself (tests, benchmarks).
    Program,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the defaults"),
            Origin::ConfigFile(p) => write!(f, "config file {}", p.display()),
            Origin::CommandLine => f.write_str("the command line"),
            Origin::Ejabberd => f.write_str("ejabberd's options"),
            Origin::Domain(d) => write!(f, "the per-domain settings of {d}"),
            Origin::Program => f.write_str("the program"),
        }
    }
}

/// A settings problem an admin has to fix.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    /// A value the setting does not take (never shows a secret's value).
    #[error("invalid {key} in {origin}: {why}")]
    Invalid {
        /// The setting.
        key: String,
        /// Where it was given.
        origin: Origin,
        /// What is wrong.
        why: String,
    },
    /// Two spellings of one setting at the same level.
    #[error("{origin} gives both {a} and {b}: keep one")]
    Both {
        /// Where.
        origin: Origin,
        /// One spelling.
        a: &'static str,
        /// The other.
        b: &'static str,
    },
    /// A setting that cannot be given at that place.
    #[error("{key} cannot be set in {origin}")]
    NotHere {
        /// The setting.
        key: String,
        /// Where it was given.
        origin: Origin,
    },
    /// Something needs a setting that is not there.
    #[error("{what} needs {key}{hint}")]
    Missing {
        /// What needs it (a backend, a token format).
        what: String,
        /// The missing setting.
        key: &'static str,
        /// How to give it.
        hint: &'static str,
    },
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text, a choice, a backend name.
    Text(String),
    /// A URL.
    Url(reqwest::Url),
    /// A path.
    Path(PathBuf),
    /// A secret given as text.
    Secret(Secret),
    /// A secret read from a file, and the file (re-read by a backend whose
    /// cloud refused it, once the admin has changed it).
    SecretFile(Secret, PathBuf),
    /// A duration.
    Duration(Duration),
    /// Connect and total deadlines.
    Timeouts(Timeouts),
    /// A number.
    Count(u64),
    /// bcrypt costs (persistent, memory).
    Rounds(u32, u32),
    /// Names or patterns.
    List(Vec<String>),
    /// On or off.
    Flag(bool),
}

/// One layer: settings from one place, as `(key, text)` in schema form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Where they come from.
    pub origin: Origin,
    /// The settings; a key may repeat for list settings given several times.
    pub entries: Vec<(String, String)>,
}

impl Layer {
    /// A layer from `origin`.
    pub fn new(origin: Origin) -> Self {
        Layer {
            origin,
            entries: Vec::new(),
        }
    }

    /// Adds `key = text`.
    pub fn set(&mut self, key: impl Into<String>, text: impl Into<String>) {
        self.entries.push((key.into(), text.into()));
    }
}

/// Reads a boolean as configargparse does.
pub fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Reads `T` (both deadlines) or `C,T` (seconds, decimals allowed).
pub fn parse_timeouts(v: &str) -> Result<Timeouts, String> {
    let secs = |s: &str| -> Result<Duration, String> {
        let f: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{v:?} is not a number of seconds"))?;
        if !(f > 0.0 && f <= 3600.0) {
            return Err(format!("{v:?} must be between 0 and 3600 seconds"));
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

pub(crate) fn parse_rounds(v: &str) -> Result<(u32, u32), String> {
    let one = |s: &str| -> Result<u32, String> {
        match s.trim().parse::<u32>() {
            Ok(n) if (4..=31).contains(&n) => Ok(n),
            _ => Err(format!("{v:?}: each value must be 4..31")),
        }
    };
    match v.split_once(',') {
        Some((p, m)) => Ok((one(p)?, one(m)?)),
        None => {
            let n = one(v)?;
            Ok((n, n))
        }
    }
}

pub(crate) fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

/// Settings after parsing: a value (or its default) per key, with where it came from.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub(crate) map: BTreeMap<&'static str, Entry>,
}

/// What [`Values::resolve`] produced besides the values.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The values.
    pub values: Values,
    /// Things to log once logging is set up (never a secret).
    pub warnings: Vec<String>,
}

impl Values {
    /// The value of `key`, if set or defaulted.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).map(|e| &e.value)
    }

    /// Where the value of `key` came from.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.map.get(key).map(|e| &e.origin)
    }

    /// True when `key` has its default (or no value at all).
    pub fn is_default(&self, key: &str) -> bool {
        self.origin(key).is_none_or(|o| *o == Origin::Default)
    }

    /// Text, choice or backend name.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// A choice, as its type (see [`super::choice`]).
    pub fn choice<C: super::choice::Choice>(&self, key: &str) -> Option<C> {
        self.text(key).and_then(C::from_word)
    }

    /// A URL.
    pub fn url(&self, key: &str) -> Option<&reqwest::Url> {
        match self.get(key) {
            Some(Value::Url(u)) => Some(u),
            _ => None,
        }
    }

    /// A path.
    pub fn path(&self, key: &str) -> Option<&Path> {
        match self.get(key) {
            Some(Value::Path(p)) => Some(p),
            _ => None,
        }
    }

    /// A secret.
    pub fn secret(&self, key: &str) -> Option<&Secret> {
        match self.get(key) {
            Some(Value::Secret(s) | Value::SecretFile(s, _)) => Some(s),
            _ => None,
        }
    }

    /// The file a secret was read from (`None` for a secret given as text).
    pub fn secret_file(&self, key: &str) -> Option<&Path> {
        match self.get(key) {
            Some(Value::SecretFile(_, p)) => Some(p),
            _ => None,
        }
    }

    /// A duration.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        match self.get(key) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    /// Connect and total deadlines.
    pub fn timeouts(&self, key: &str) -> Option<Timeouts> {
        match self.get(key) {
            Some(Value::Timeouts(t)) => Some(*t),
            _ => None,
        }
    }

    /// A number.
    pub fn count(&self, key: &str) -> Option<u64> {
        match self.get(key) {
            Some(Value::Count(n)) => Some(*n),
            _ => None,
        }
    }

    /// bcrypt costs.
    pub fn rounds(&self, key: &str) -> Option<(u32, u32)> {
        match self.get(key) {
            Some(Value::Rounds(p, m)) => Some((*p, *m)),
            _ => None,
        }
    }

    /// A list (empty when unset).
    pub fn list(&self, key: &str) -> &[String] {
        match self.get(key) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    /// A flag (off when unset).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Value::Flag(true)))
    }

    /// The URL `what` needs.
    pub(crate) fn require_url(
        &self,
        key: &'static str,
        what: &str,
    ) -> Result<reqwest::Url, SettingsError> {
        self.url(key)
            .cloned()
            .ok_or_else(|| SettingsError::Missing {
                what: what.to_string(),
                key,
                hint: "",
            })
    }

    /// The secret `what` needs.
    pub(crate) fn require_secret(
        &self,
        key: &'static str,
        what: &str,
    ) -> Result<Secret, SettingsError> {
        self.secret(key)
            .cloned()
            .ok_or_else(|| SettingsError::Missing {
                what: what.to_string(),
                key,
                hint: " (a file readable by this user only)",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::keys::*;
    use crate::settings::schema::Spec;

    fn layer(origin: Origin, kv: &[(&str, &str)]) -> Layer {
        Layer {
            origin,
            entries: kv
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    fn all(_: &Spec) -> bool {
        true
    }

    #[test]
    fn defaults_then_file_then_command_line() {
        let r = Values::resolve(
            &[
                layer(
                    Origin::ConfigFile("f".into()),
                    &[
                        ("url", "https://file/"),
                        ("timeout", "7"),
                        ("cache_query_ttl", "30m"),
                    ],
                ),
                layer(Origin::CommandLine, &[("url", "https://cli/")]),
            ],
            all,
        )
        .unwrap();
        let v = r.values;
        assert_eq!(v.url(URL).map(|u| u.as_str()), Some("https://cli/"));
        assert_eq!(
            v.timeouts(TIMEOUT).map(|t| t.total),
            Some(Duration::from_secs(7))
        );
        assert_eq!(v.duration(CACHE_QUERY_TTL), Some(Duration::from_secs(1800)));
        assert_eq!(
            v.duration(CACHE_VERIFICATION_TTL),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(v.text(BACKEND), Some("jsxc"));
        assert!(v.is_default(BACKEND) && !v.is_default(URL));
        assert_eq!(v.list(TOKENS), ["jsxc"]);
        assert_eq!(v.rounds(CACHE_BCRYPT_ROUNDS), Some((12, 4)));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn secret_spellings() {
        let dir = std::env::temp_dir().join(format!("cloudauth-values-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        std::fs::write(&f, "from-file\n").unwrap();
        let f = f.to_str().unwrap();
        let both = Values::resolve(
            &[layer(
                Origin::CommandLine,
                &[("secret", "x"), ("secret-file", f)],
            )],
            all,
        );
        assert!(matches!(both, Err(SettingsError::Both { .. })));
        let r = Values::resolve(
            &[
                layer(Origin::ConfigFile("c".into()), &[("secret", "in-file")]),
                layer(Origin::CommandLine, &[("secret-file", f)]),
            ],
            all,
        )
        .unwrap();
        assert_eq!(r.values.secret(SECRET), Some(&Secret::new("from-file")));
        let r = Values::resolve(&[layer(Origin::CommandLine, &[("secret", "cli")])], all).unwrap();
        assert!(r.warnings.iter().any(|w| w.contains("ps shows it")));
        assert!(r.warnings.iter().all(|w| !w.contains("cli\"")));
    }

    #[test]
    fn bad_values_name_the_key_and_never_the_secret() {
        let e = Values::resolve(
            &[layer(Origin::CommandLine, &[("cache-storage", "disk")])],
            all,
        )
        .unwrap_err();
        assert!(e.to_string().contains("cache-storage"), "{e}");
        for (k, v) in [
            ("url", "cloud.example.org/x"),
            ("url", "ftp://x/"),
            ("backend", "ldap"),
            ("tokens", "jsxc,nope"),
            ("timeout", "0"),
            ("cache-bcrypt-rounds", "99"),
            ("roster-max-members", "-1"),
            ("debug", "maybe"),
        ] {
            assert!(
                Values::resolve(&[layer(Origin::CommandLine, &[(k, v)])], all).is_err(),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn plain_http_to_another_machine_is_warned_about() {
        for (url, warned) in [
            ("http://cloud.example.org/x", true),
            ("http://10.1.2.3/x", true),
            ("https://cloud.example.org/x", false),
            ("http://127.0.0.1:8080/x", false),
            ("http://localhost/x", false),
            ("http://[::1]/x", false),
        ] {
            let r = Values::resolve(&[layer(Origin::CommandLine, &[("url", url)])], all).unwrap();
            assert_eq!(
                r.warnings.iter().any(|w| w.contains("plain http")),
                warned,
                "{url}"
            );
        }
    }

    #[test]
    fn unknown_obsolete_and_misplaced_keys() {
        let r = Values::resolve(
            &[layer(
                Origin::ConfigFile("c".into()),
                &[("frobnicate", "1"), ("cache-db", "/x")],
            )],
            all,
        )
        .unwrap();
        let w = r.warnings.join("\n");
        assert!(w.contains("unknown setting \"frobnicate\""), "{w}");
        assert!(w.contains("\"cache-db\" names an obsolete"), "{w}");
        let row = layer(Origin::Domain("a.example".into()), &[("log", "/x")]);
        assert!(matches!(
            r.values.overlay(&row),
            Err(SettingsError::NotHere { .. })
        ));
    }

    #[test]
    fn overlay_keeps_global_and_replaces_per_domain() {
        let g = Values::resolve(
            &[layer(
                Origin::CommandLine,
                &[("url", "https://g/"), ("secret", "gs"), ("timeout", "3")],
            )],
            all,
        )
        .unwrap()
        .values;
        let d = g
            .overlay(&layer(
                Origin::Domain("a".into()),
                &[("secret", "as"), ("backend", "json")],
            ))
            .unwrap()
            .values;
        assert_eq!(d.secret(SECRET), Some(&Secret::new("as")));
        assert_eq!(d.url(URL).map(|u| u.as_str()), Some("https://g/"));
        assert_eq!(d.text(BACKEND), Some("json"));
        assert_eq!(g.text(BACKEND), Some("jsxc"));
    }

    #[test]
    fn lists_add_up_within_a_layer() {
        let v = Values::resolve(
            &[layer(
                Origin::CommandLine,
                &[("listen", "a=1"), ("listen", "b=2,c=3")],
            )],
            all,
        )
        .unwrap()
        .values;
        assert_eq!(v.list(LISTEN), ["a=1", "b=2", "c=3"]);
    }
}
