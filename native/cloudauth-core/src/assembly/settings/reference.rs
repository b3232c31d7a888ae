//! `docs/reference/options.md`, written from the schema: every setting's
//! command line, xcauth.conf key, ejabberd option, values, default and
//! meaning. The test below fails when the committed page and the schema
//! differ; `CLOUDAUTH_WRITE_REFERENCE=1 cargo test -p cloudauth-core
//! reference` writes the page anew.

use std::fmt::Write;

use super::schema::{Kind, Spec, CORE};
use crate::catalogue::{BACKENDS, TOKEN_FORMATS};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/reference/options.md"
);

/// The whole page.
fn page() -> String {
    let mut out = String::from(
        "# Options reference\n\n\
         <!-- Written from the settings schema (native/cloudauth-core/src/vocab/settings/schema.rs and the\n     \
         backends' and token formats' own settings) by a test: do not edit by hand; run\n     \
         CLOUDAUTH_WRITE_REFERENCE=1 cargo test -p cloudauth-core reference -->\n\n\
         Every setting has one name. It is given as `--NAME` on the command line, as `NAME = value`\n\
         (or `NAME: value`; `_` and `-` alike) in `/etc/xcauth.conf` (`-c FILE`), and, where the\n\
         table says so, per XMPP domain: `NAME=value` after the domain in the `-p` file, a row of\n\
         the state database's `domain_settings` table, or the ejabberd option under `host_config`.\n\
         Only settings with an ejabberd option can be set for the module in the VM\n\
         (`auth_method: cloud`); the others belong to the `cloudauth` process (logging, sockets,\n\
         the wire protocol). The command line wins over the file; a per-domain value over both.\n\
         A secret is better given as a file (`…-file`): command lines are visible in `ps`.\n\n\
         The one-shot checks and commands (`-A`, `-I`, `-R`, `cloudauth doctor`, `cloudauth token`)\n\
         are in `cloudauth(1)`.\n",
    );
    section(&mut out, "General settings", "", CORE);
    for b in BACKENDS {
        let title = format!("Backend `{}`", b.name);
        section(&mut out, &title, b.summary, b.settings);
    }
    for t in TOKEN_FORMATS {
        let title = format!("Token format `{}`", t.name);
        section(&mut out, &title, t.summary, t.settings);
    }
    out
}

fn section(out: &mut String, title: &str, summary: &str, specs: &[Spec]) {
    let _ = write!(out, "\n## {title}\n\n");
    if !summary.is_empty() {
        let _ = write!(out, "{summary}.\n\n");
    }
    if specs.is_empty() {
        out.push_str("No settings of its own.\n");
        return;
    }
    out.push_str(
        "| setting | command line | ejabberd option | per domain | values | default | meaning |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in specs {
        let command_line = match (s.short, s.is_flag()) {
            (Some(c), true) => format!("`-{c}`, `--{}`", s.key),
            (Some(c), false) => format!("`-{c} {v}`, `--{} {v}`", s.key, v = s.value_name),
            (None, true) => format!("`--{}`", s.key),
            (None, false) => format!("`--{} {}`", s.key, s.value_name),
        };
        let vm = s.vm_name().map_or("–".to_string(), |n| format!("`{n}`"));
        let per_domain = if s.per_domain { "yes" } else { "–" };
        let default = s.default.map_or("–".to_string(), |d| format!("`{d}`"));
        let mut meaning = s.help.to_string();
        if let Some(other) = s.same_as {
            let _ = write!(meaning, " (another way to give `{other}`)");
        }
        let row = [
            format!("`{}`", s.key),
            command_line,
            vm,
            per_domain.to_string(),
            values(s),
            default,
            meaning,
        ];
        // A `|` inside a cell (`T|C,T`) would end it.
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// The values a setting takes, in words.
fn values(s: &Spec) -> String {
    let names = |v: Vec<&str>| v.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
    match s.kind {
        Kind::Text => "text".into(),
        Kind::Protocol => "a wire protocol (`cloudauth --help` lists them)".into(),
        Kind::Url => {
            let schemes: Vec<String> = crate::catalogue::url_schemes()
                .iter()
                .map(|u| format!("`{}://`", u.name))
                .collect();
            format!("{} URL", schemes.join(" or "))
        }
        Kind::Path => "path".into(),
        Kind::SecretText => "secret (text)".into(),
        Kind::SecretFile => "file (its first line)".into(),
        Kind::Duration => "duration: seconds, or with `s`, `m`, `h`, `d`, `w`".into(),
        Kind::Timeouts => "`T` or `CONNECT,TOTAL` seconds".into(),
        Kind::Count { min, max } => format!("whole number, {min} to {max}"),
        Kind::Rounds => "bcrypt cost `P[,M]`, 4 to 31".into(),
        Kind::Choice(_) | Kind::Backend => {
            format!(
                "one of {}",
                names(s.choices().unwrap_or_default()).join(", ")
            )
        }
        Kind::Tokens => format!(
            "comma-separated, of {}",
            names(s.choices().unwrap_or_default()).join(", ")
        ),
        Kind::List => "comma-separated list (repeatable)".into(),
        Kind::Flag => "on/off (`true`, `yes`, `on`, `1` / `false`, `no`, `off`, `0`)".into(),
        Kind::Obsolete => "obsolete xcauth setting: accepted, warned about, ignored".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_reference_is_the_schema() {
        let fresh = page();
        if std::env::var_os("CLOUDAUTH_WRITE_REFERENCE").is_some() {
            std::fs::write(PATH, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(PATH).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/reference/options.md differs from the settings schema: run \
             CLOUDAUTH_WRITE_REFERENCE=1 cargo test -p cloudauth-core reference"
        );
    }

    #[test]
    fn every_setting_has_a_row() {
        let fresh = page();
        for s in crate::catalogue::all() {
            assert!(fresh.contains(&format!("| `{}` |", s.key)), "{}", s.key);
        }
    }
}
