//! Reader for xcauth.conf files, as configargparse (which xcauth uses)
//! reads them: `key=value`, `key: value`, `key value`, bare flag lines
//! (`debug`), `#`/`;` comment lines, inline comments after whitespace
//! (`timeout = 5,10   # connect, total`), values in matching quotes (which
//! keep a ` #` inside), `[a, b]` lists, `[section]` and `---` lines ignored.
//! Keys are long option names without dashes; `_` and `-` are
//! interchangeable.

use std::collections::BTreeMap;
use thiserror::Error;

/// A line that is not a setting. The line itself is never shown: it may
/// hold a secret.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: cannot read it as key=value, key: value, key value or a flag name")]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
}

/// Settings read from a file: normalised key → (value, line number).
pub type FileSettings = BTreeMap<String, (String, usize)>;

/// Where an inline comment starts: the first `#` or `;` after whitespace.
fn comment_start(v: &str) -> Option<usize> {
    let b = v.as_bytes();
    (1..b.len()).find(|&i| (b[i] == b'#' || b[i] == b';') && b[i - 1].is_ascii_whitespace())
}

/// The value part of a line (after the separator): unquoted, inline comment dropped.
fn value_of(rest: &str) -> String {
    let rest = rest.trim();
    for q in ['"', '\''] {
        if let Some(inner) = rest.strip_prefix(q) {
            // The closing quote is the last one followed only by a comment or nothing.
            let mut cut = None;
            for (i, c) in inner.char_indices() {
                if c != q {
                    continue;
                }
                let after = inner[i + 1..].trim_start();
                if after.is_empty()
                    || after.starts_with(['#', ';'])
                        && inner[i + 1..].starts_with(char::is_whitespace)
                {
                    cut = Some(i);
                }
            }
            if let Some(i) = cut {
                return inner[..i].to_string();
            }
        }
    }
    let v = match comment_start(rest) {
        Some(i) => rest[..i].trim_end(),
        None => rest,
    };
    // configargparse's list syntax, as our lists are written: comma-separated.
    if let Some(inner) = v.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return inner
            .split(',')
            .map(|e| e.trim().trim_matches(['"', '\'']))
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join(",");
    }
    v.to_string()
}

/// Parses the text of a config file. Later lines override earlier ones.
pub fn parse(text: &str) -> Result<FileSettings, SyntaxError> {
    let mut out = FileSettings::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';', '[']) || line.starts_with("---") {
            continue;
        }
        let key_end = line
            .find(|c: char| matches!(c, ':' | '=' | ';' | '#') || c.is_whitespace())
            .unwrap_or(line.len());
        let (key, rest) = line.split_at(key_end);
        let key = cloudauth_core::settings::schema::normalise_key(key);
        let valid = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(SyntaxError { line: idx + 1 });
        }
        let after_ws = rest.trim_start();
        let value = if let Some(v) = after_ws.strip_prefix([':', '=']) {
            value_of(v)
        } else if after_ws.is_empty()
            || after_ws.starts_with(['#', ';']) && rest.starts_with(char::is_whitespace)
        {
            // A bare flag, perhaps with a comment.
            "true".to_string()
        } else if rest.starts_with(char::is_whitespace) {
            value_of(after_ws)
        } else {
            return Err(SyntaxError { line: idx + 1 });
        };
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
    fn garbage_line_is_an_error_without_echoing_it() {
        let e = parse("url=a\n%%% not valid\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("s3cr3t!value\n").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn inline_comments_quotes_lists_and_space_separators() {
        let text = "timeout = 5,10   # connect, total\n\
                    secret-file = /etc/cloudauth/secret     # or: secret = ...\n\
                    secret = \"pa #ss\"   # quoted keeps the ' #'\n\
                    url=https://x/a#frag\n\
                    log /var/log/xcauth ; space-separated\n\
                    debug   # a flag with a comment\n\
                    roster-groups-deny = [everyone, \"*-hidden\"]\n\
                    ---\n\
                    empty =\n";
        let s = parse(text).unwrap();
        assert_eq!(s["timeout"].0, "5,10");
        assert_eq!(s["secret-file"].0, "/etc/cloudauth/secret");
        assert_eq!(s["secret"].0, "pa #ss");
        assert_eq!(s["url"].0, "https://x/a#frag");
        assert_eq!(s["log"].0, "/var/log/xcauth");
        assert_eq!(s["debug"].0, "true");
        assert_eq!(s["roster-groups-deny"].0, "everyone,*-hidden");
        assert_eq!(s["empty"].0, "");
    }
}
