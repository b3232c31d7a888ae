//! Settings as read: layers of `key = text` (defaults, config file, command
//! line; or the ejabberd options; or a per-domain row over the global
//! settings) parsed and checked by the schema into typed [`Values`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::schema::{self, Kind, Spec};
use crate::backend::http::parse_url;
use crate::backend::Timeouts;
use crate::duration::parse_duration;
use crate::secret::{self, Secret};

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
    /// A secret (from the text or from its file).
    Secret(Secret),
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

fn parse_rounds(v: &str) -> Result<(u32, u32), String> {
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

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one value of `spec`. Secret files are read here; a secret file
/// readable by others adds a warning. Errors never contain a secret.
pub fn parse_value(spec: &Spec, text: &str, warnings: &mut Vec<String>) -> Result<Value, String> {
    let t = text.trim();
    match spec.kind {
        Kind::Text => Ok(Value::Text(t.to_string())),
        Kind::Url => {
            let url = parse_url(t)?;
            if url.scheme() == "http" && !crate::backend::http::is_loopback(&url) {
                warnings.push(format!(
                    "{} is plain http to another machine: anyone on the way can read the \
                     passwords and answer \"yes\" for any user; use https",
                    spec.key
                ));
            }
            Ok(Value::Url(url))
        }
        Kind::Path => {
            if t.is_empty() {
                Err("is empty".into())
            } else {
                Ok(Value::Path(PathBuf::from(t)))
            }
        }
        Kind::SecretText => {
            // Taken as given: a secret may begin or end with spaces.
            if text.is_empty() {
                Err("is empty".into())
            } else {
                Ok(Value::Secret(Secret::new(text.as_bytes())))
            }
        }
        Kind::SecretFile => {
            let read = secret::read_file(Path::new(t)).map_err(|e| e.to_string())?;
            if read.world_readable {
                warnings.push(format!(
                    "secret file {t} is readable by other users; chmod 600 it"
                ));
            }
            Ok(Value::Secret(read.secret))
        }
        Kind::Duration => parse_duration(t)
            .map(Value::Duration)
            .map_err(|e| e.to_string()),
        Kind::Timeouts => parse_timeouts(t).map(Value::Timeouts),
        Kind::Count { min, max } => match t.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Value::Count(n)),
            _ => Err(format!("{t:?} is not a whole number from {min} to {max}")),
        },
        Kind::Rounds => parse_rounds(t).map(|(p, m)| Value::Rounds(p, m)),
        Kind::Choice(_) | Kind::Backend => {
            let name = t.to_ascii_lowercase();
            let choices = spec.choices().unwrap_or_default();
            if choices.contains(&name.as_str()) {
                Ok(Value::Text(name))
            } else {
                Err(format!("{t:?}: expected {}", choices.join(", ")))
            }
        }
        Kind::Tokens => {
            let choices = spec.choices().unwrap_or_default();
            let names: Vec<String> = split_list(&t.to_ascii_lowercase());
            match names.iter().find(|n| !choices.contains(&n.as_str())) {
                Some(bad) => Err(format!(
                    "{bad:?} is not a token format (known: {})",
                    choices.join(", ")
                )),
                None => Ok(Value::List(names)),
            }
        }
        Kind::List => Ok(Value::List(split_list(t))),
        Kind::Flag => truthy(t)
            .map(Value::Flag)
            .ok_or_else(|| format!("{t:?} is not a boolean")),
        Kind::Obsolete => Ok(Value::Text(t.to_string())),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    origin: Origin,
}

/// Settings after parsing: a value (or its default) per key, with where it came from.
#[derive(Debug, Clone, Default)]
pub struct Values {
    map: BTreeMap<&'static str, Entry>,
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
    /// Parses `layers` (lowest precedence first) over the schema's defaults.
    ///
    /// `allowed` picks the settings this place takes (the port program
    /// takes all, ejabberd only those with an option, a per-domain row only
    /// per-domain ones). Unknown keys are warned about and ignored;
    /// obsolete ones likewise; a key not allowed here is an error. Of two
    /// spellings of a setting (`secret`, `secret-file`) the higher layer
    /// wins; both in one layer is an error.
    pub fn resolve(
        layers: &[Layer],
        allowed: impl Fn(&Spec) -> bool,
    ) -> Result<Resolved, SettingsError> {
        let mut out = Resolved::default();
        for spec in schema::all() {
            if let (Some(d), true) = (spec.default, allowed(spec)) {
                let value = parse_value(spec, d, &mut out.warnings).map_err(|why| {
                    SettingsError::Invalid {
                        key: spec.key.into(),
                        origin: Origin::Default,
                        why,
                    }
                })?;
                out.values.map.insert(
                    spec.target(),
                    Entry {
                        value,
                        origin: Origin::Default,
                    },
                );
            }
        }
        for layer in layers {
            out.values.apply(layer, &allowed, &mut out.warnings)?;
        }
        Ok(out)
    }

    /// The schema's defaults alone (every default parses: a unit test of the
    /// schema checks it).
    pub fn defaults() -> Values {
        Values::resolve(&[], |_| true)
            .map(|r| r.values)
            .unwrap_or_default()
    }

    /// Values from `(key, text)` pairs set by the program itself (tests,
    /// benchmarks, tools), over the defaults.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Values, SettingsError> {
        let mut layer = Layer::new(Origin::Program);
        for (k, v) in pairs {
            layer.set(*k, *v);
        }
        Values::resolve(&[layer], |_| true).map(|r| r.values)
    }

    /// These values with a per-domain `layer` on top (only per-domain settings).
    pub fn overlay(&self, layer: &Layer) -> Result<Resolved, SettingsError> {
        let mut out = Resolved {
            values: self.clone(),
            warnings: Vec::new(),
        };
        out.values
            .apply(layer, &|s: &Spec| s.per_domain, &mut out.warnings)?;
        Ok(out)
    }

    fn apply(
        &mut self,
        layer: &Layer,
        allowed: &dyn Fn(&Spec) -> bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), SettingsError> {
        let mut set_here: BTreeMap<&'static str, &'static str> = BTreeMap::new();
        let mut lists: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (key, text) in &layer.entries {
            let key = schema::normalise_key(key);
            let Some(spec) = schema::find(&key) else {
                warnings.push(format!("{}: unknown setting {key:?} ignored", layer.origin));
                continue;
            };
            if spec.kind == Kind::Obsolete {
                warnings.push(format!(
                    "{}: {key:?} names an obsolete xcauth dbm file; ignored (its data lives in the db database)",
                    layer.origin
                ));
                continue;
            }
            if !allowed(spec) {
                return Err(SettingsError::NotHere {
                    key,
                    origin: layer.origin.clone(),
                });
            }
            let target = spec.target();
            if let Some(other) = set_here.insert(target, spec.key) {
                if other != spec.key {
                    return Err(SettingsError::Both {
                        origin: layer.origin.clone(),
                        a: other,
                        b: spec.key,
                    });
                }
            }
            if spec.kind == Kind::SecretText && layer.origin == Origin::CommandLine {
                warnings.push(format!(
                    "--{key} puts a secret on the command line, where ps shows it (and ejabberd's log quotes extauth_program on errors); use --{key}-file"
                ));
            }
            let value =
                parse_value(spec, text, warnings).map_err(|why| SettingsError::Invalid {
                    key: key.clone(),
                    origin: layer.origin.clone(),
                    why,
                })?;
            // A list given several times in one layer (`--listen a --listen b`) adds up.
            let value = match value {
                Value::List(items) if spec.kind == Kind::List => {
                    let all = lists.entry(target).or_default();
                    all.extend(items);
                    Value::List(all.clone())
                }
                v => v,
            };
            self.map.insert(
                target,
                Entry {
                    value,
                    origin: layer.origin.clone(),
                },
            );
        }
        Ok(())
    }

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
            Some(Value::Secret(s)) => Some(s),
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
    pub fn require_url(
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
    pub fn require_secret(&self, key: &'static str, what: &str) -> Result<Secret, SettingsError> {
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
