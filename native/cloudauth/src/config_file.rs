//! Reader for xcauth.conf files (configargparse syntax): `key=value`,
//! `key: value`, `key = value`, bare flag lines (`debug`), `#`/`;` comments,
//! `[section]` headers ignored. Keys are long option names without dashes;
//! `_` and `-` are interchangeable.

use std::collections::BTreeMap;
use thiserror::Error;

/// A line that is not a setting.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: cannot read {text:?} as key=value, key: value or a flag name")]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// The offending line (shortened; a secret line is never shown).
    pub text: String,
}

/// Settings read from a file: normalised key → (value, line number).
pub type FileSettings = BTreeMap<String, (String, usize)>;

fn normalise_key(k: &str) -> String {
    k.trim()
        .trim_start_matches("--")
        .replace('_', "-")
        .to_ascii_lowercase()
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Parses the text of a config file. Later lines override earlier ones.
pub fn parse(text: &str) -> Result<FileSettings, SyntaxError> {
    let mut out = FileSettings::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with('[')
        {
            continue;
        }
        // The first '=' or ':' separates key and value (values may contain both).
        let sep = line.find(['=', ':']);
        let (key, value) = match sep {
            Some(i) => (&line[..i], unquote(&line[i + 1..]).to_string()),
            None => (line, "true".to_string()),
        };
        let key = normalise_key(key);
        let valid = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            let shown = if line.to_ascii_lowercase().contains("secret") {
                "<line with a secret>".to_string()
            } else {
                line.chars().take(60).collect()
            };
            return Err(SyntaxError {
                line: idx + 1,
                text: shown,
            });
        }
        out.insert(key, (value, idx + 1));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_syntaxes() {
        let text = "# comment\n; another\n[xcauth]\nurl=https://cloud/x?a=b\nsecret: s3:cr=t\n\
                    type = ejabberd\ndebug\ncache_query_ttl = 1h\ntimeout=\"5,10\"\n\n";
        let s = parse(text).unwrap();
        assert_eq!(s["url"].0, "https://cloud/x?a=b");
        assert_eq!(s["secret"].0, "s3:cr=t");
        assert_eq!(s["type"].0, "ejabberd");
        assert_eq!(s["debug"].0, "true");
        assert_eq!(s["cache-query-ttl"].0, "1h");
        assert_eq!(s["timeout"].0, "5,10");
        assert_eq!(s["type"].1, 6);
    }

    #[test]
    fn later_lines_win() {
        let s = parse("url=a\nurl=b\n").unwrap();
        assert_eq!(s["url"].0, "b");
    }

    #[test]
    fn garbage_line_is_an_error_without_leaking_secrets() {
        let e = parse("url=a\nthis is not valid\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("my secret value\n").unwrap_err();
        assert!(!e.text.contains("value"));
    }
}
