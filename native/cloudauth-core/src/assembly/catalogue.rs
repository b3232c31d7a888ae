//! The catalogue: every backend, token format and setting this build
//! knows, and reading settings through it. The one place that names the
//! plug-ins (the registries) sits above them, so that a backend or a token
//! format depends only on the vocabulary and the mechanisms it uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backend::{self, BackendEntry};
use crate::duration::parse_duration;
use crate::secret::{self, Secret};
use crate::settings::schema::{self, Kind, Spec, CORE};
use crate::settings::values::{
    parse_rounds, parse_timeouts, split_list, truthy, Entry, Layer, Origin, Resolved,
    SettingsError, Value, Values,
};
use crate::token::{self, TokenEntry};
use crate::vocab::url::{is_loopback, parse_url_of, UrlScheme};

/// Every backend. Adding one: its file in `backend/`, and one line here.
pub(crate) static BACKENDS: &[&BackendEntry] = &[
    &backend::jsxc::ENTRY,
    &backend::json::ENTRY,
    &backend::nextcloud::ENTRY,
];

/// The backend named `name` (the `backend` setting).
pub(crate) fn backend_entry(name: &str) -> Option<&'static BackendEntry> {
    BACKENDS.iter().copied().find(|b| b.name == name)
}

/// Every URL scheme some backend takes, once each: what a `url` setting
/// may have before the backend is known (`DomainSettings::build` then
/// checks it against the backend's own `schemes`).
pub fn url_schemes() -> Vec<UrlScheme> {
    let mut out: Vec<UrlScheme> = Vec::new();
    for s in BACKENDS.iter().flat_map(|b| b.schemes.iter()) {
        if !out.iter().any(|o| o.name == s.name) {
            out.push(*s);
        }
    }
    out
}

/// The scheme of `url`, if some backend takes it.
pub fn url_scheme(url: &reqwest::Url) -> Option<UrlScheme> {
    url_schemes().into_iter().find(|s| s.name == url.scheme())
}

/// Every token format. Adding one: its file in `token/`, and one line here.
pub(crate) static TOKEN_FORMATS: &[&TokenEntry] = &[&token::jsxc::ENTRY, &token::totp::ENTRY];

/// The token format named `name` (in the `tokens` setting).
pub fn token_entry(name: &str) -> Option<&'static TokenEntry> {
    TOKEN_FORMATS.iter().copied().find(|t| t.name == name)
}

/// Every setting: the core's, then each backend's and each token format's.
pub fn all() -> Vec<&'static Spec> {
    CORE.iter()
        .chain(BACKENDS.iter().flat_map(|b| b.settings.iter()))
        .chain(TOKEN_FORMATS.iter().flat_map(|t| t.settings.iter()))
        .collect()
}

/// The setting named `key` (dashes; see [`schema::normalise_key`]).
pub fn find(key: &str) -> Option<&'static Spec> {
    all().into_iter().find(|s| s.key == key)
}

/// The setting behind an ejabberd option name.
pub fn find_vm(option: &str) -> Option<&'static Spec> {
    all()
        .into_iter()
        .find(|s| s.vm_name().as_deref() == Some(option))
}

impl Spec {
    /// The names it accepts, for choice-like kinds.
    pub fn choices(&self) -> Option<Vec<&'static str>> {
        match self.kind {
            Kind::Choice(c) => Some(c.to_vec()),
            Kind::Backend => Some(BACKENDS.iter().map(|b| b.name).collect()),
            Kind::Tokens => Some(TOKEN_FORMATS.iter().map(|t| t.name).collect()),
            _ => None,
        }
    }
}

/// The TLS scheme to suggest instead of plain `scheme` (`https` for
/// `http`, `ldaps` for `ldap`): its name with an `s`, if some backend
/// takes that, else any TLS scheme.
fn tls_counterpart(schemes: &[UrlScheme], scheme: &str) -> String {
    let with_s = format!("{scheme}s");
    schemes
        .iter()
        .find(|s| s.tls && s.name == with_s)
        .or_else(|| schemes.iter().find(|s| s.tls))
        .map_or(with_s, |s| s.name.to_string())
}

/// Parses one value of `spec`. Secret files are read here; a secret file
/// readable by others adds a warning. Errors never contain a secret.
pub fn parse_value(spec: &Spec, text: &str, warnings: &mut Vec<String>) -> Result<Value, String> {
    let t = text.trim();
    match spec.kind {
        Kind::Text => Ok(Value::Text(t.to_string())),
        Kind::Protocol => Ok(Value::Text(t.to_ascii_lowercase())),
        Kind::Url => {
            let schemes = url_schemes();
            let url = parse_url_of(t, &schemes)?;
            let plain = schemes.iter().any(|s| s.name == url.scheme() && !s.tls);
            if plain && !is_loopback(&url) {
                warnings.push(format!(
                    "{} is plain {} to another machine: anyone on the way can read the \
                     passwords and answer \"yes\" for any user; use {}",
                    spec.key,
                    url.scheme(),
                    tls_counterpart(&schemes, url.scheme())
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
            Ok(Value::SecretFile(read.secret, PathBuf::from(t)))
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
        for spec in all() {
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
            let Some(spec) = find(&key) else {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique() {
        let mut names: Vec<_> = BACKENDS.iter().map(|b| b.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BACKENDS.len());
        assert!(backend_entry("jsxc").is_some() && backend_entry("nope").is_none());
    }

    #[test]
    fn token_format_names_are_unique() {
        let mut names: Vec<_> = TOKEN_FORMATS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOKEN_FORMATS.len());
        assert!(token_entry("jsxc").is_some() && token_entry("nope").is_none());
    }
}
