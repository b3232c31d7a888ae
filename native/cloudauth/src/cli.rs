//! The command line: xcauth's flags, every one of them generated from the
//! core's settings schema (`--KEY` for each setting, its short flag, help
//! and accepted values), plus the actions (`-A`, `-I`, `-R`, `token`).

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use cloudauth_core::catalogue;
use cloudauth_core::settings::schema::{Kind, Spec};
use cloudauth_core::settings::values::{parse_timeouts, truthy};

/// XMPP and mail server authentication against Nextcloud (xcauth-compatible).
#[derive(Debug, Parser)]
#[command(name = "cloudauth", version, about, override_usage = USAGE, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file (xcauth.conf syntax); default /etc/xcauth.conf if it exists.
    #[arg(short = 'c', long = "config-file", global = true)]
    pub config_file: Option<PathBuf>,
    /// Every setting of the schema.
    #[command(flatten)]
    pub settings: SettingArgs,
    /// One-shot: check a password (exit 0 yes, 1 no, 2 backend trouble).
    #[arg(short = 'A', long = "auth-test", num_args = 3, value_names = ["USER", "DOMAIN", "PASSWORD"])]
    pub auth_test: Option<Vec<String>>,
    /// One-shot: does the user exist (exit 0 yes, 1 no, 2 backend trouble).
    #[arg(short = 'I', long = "isuser-test", num_args = 2, value_names = ["USER", "DOMAIN"])]
    pub isuser_test: Option<Vec<String>>,
    /// One-shot: print the user's shared roster as JSON (exit 0, or 2 on backend trouble).
    #[arg(short = 'R', long = "roster-test", num_args = 2, value_names = ["USER", "DOMAIN"])]
    pub roster_test: Option<Vec<String>>,
    /// Subcommands.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands beyond xcauth's flags.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a token for USER@DOMAIN in one of the domain's token formats.
    Token {
        /// Local part.
        user: String,
        /// XMPP domain.
        domain: String,
        /// Token format (default: the first of the domain's `tokens`).
        #[arg(long)]
        format: Option<String>,
        /// Lifetime: seconds or with suffix s/m/h/d/w (jsxc; totp tokens live 30-90 s).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Exact expiry as Unix time (jsxc; overrides --ttl).
        #[arg(long)]
        expiry: Option<u64>,
    },
    /// Check the set-up, one line per check (✓ fine, ! works but should
    /// change, ✗ broken, with what to do): files, directories, the way to
    /// the backend (URL, DNS, TCP, TLS), its API and credentials, the
    /// clock, token formats. Run it as the user the server runs as. Exit 0
    /// when nothing is broken, 1 otherwise.
    Doctor {
        /// Only this XMPP domain (default: the global settings and every
        /// domain of the per-domain file and database).
        domain: Option<String>,
    },
    /// Drop what the state database (--db) holds for a user: the cached
    /// password, the known-user entry, the roster digest. For an admin who
    /// just disabled the account; close the sessions with `ejabberdctl
    /// kick_user USER HOST`. Exit 0 when done, 70 when the database failed.
    Forget {
        /// User part of the JID.
        user: String,
        /// XMPP domain.
        domain: String,
    },
}

/// The settings given on the command line, as `(key, text)` in schema form.
#[derive(Debug, Default, Clone)]
pub struct SettingArgs {
    /// In the order clap reports them; repeated list flags appear once each.
    pub given: Vec<(String, String)>,
}

/// Checks a value as the schema will, so that clap reports a bad one with
/// its usage line. Secret files are read later, once.
fn check(spec: &'static Spec, text: &str) -> Result<String, String> {
    let ok = match spec.kind {
        Kind::Timeouts => parse_timeouts(text).map(|_| ()),
        Kind::Flag => truthy(text)
            .map(|_| ())
            .ok_or_else(|| "not a boolean".into()),
        Kind::SecretFile | Kind::SecretText | Kind::Obsolete | Kind::Text | Kind::List => Ok(()),
        // clap repeats a refused value in its error, and a URL that does not
        // parse may hold `user:password@`: the settings report it, unrepeated.
        Kind::Url => Ok(()),
        _ => {
            let mut ignored = Vec::new();
            cloudauth_core::catalogue::parse_value(spec, text, &mut ignored).map(|_| ())
        }
    };
    ok.map(|()| text.to_string())
}

/// Every name `-t` takes: each registered protocol's name and aliases.
fn protocol_names() -> Vec<&'static str> {
    cloudauth::wire::registry::WIRE_PROTOCOLS
        .iter()
        .flat_map(|e| std::iter::once(e.name).chain(e.aliases.iter().copied()))
        .collect()
}

fn arg_for(spec: &'static Spec) -> Arg {
    let mut help = spec.help.to_string();
    if let Some(d) = spec.default {
        if spec.kind != Kind::Flag {
            help.push_str(&format!(" [default: {d}]"));
        }
    }
    let mut arg = Arg::new(spec.key).long(spec.key).help(help).global(true);
    if let Some(c) = spec.short {
        arg = arg.short(c);
    }
    match spec.kind {
        Kind::Flag => arg.action(ArgAction::SetTrue),
        Kind::Obsolete => arg.hide(true).action(ArgAction::Set),
        // The program's own registry names the protocols.
        Kind::Protocol => arg
            .value_name(spec.value_name)
            .value_parser(PossibleValuesParser::new(protocol_names())),
        Kind::Choice(_) | Kind::Backend => {
            arg.value_name(spec.value_name)
                .value_parser(PossibleValuesParser::new(
                    spec.choices().unwrap_or_default(),
                ))
        }
        Kind::List => arg
            .value_name(spec.value_name)
            .action(ArgAction::Append)
            .value_parser(move |t: &str| check(spec, t)),
        _ => arg
            .value_name(spec.value_name)
            .value_parser(move |t: &str| check(spec, t)),
    }
}

impl Args for SettingArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(catalogue::all().into_iter().map(arg_for))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for spec in catalogue::all() {
            if m.value_source(spec.key) != Some(ValueSource::CommandLine) {
                continue;
            }
            if spec.kind == Kind::Flag {
                if m.get_flag(spec.key) {
                    given.push((spec.key.to_string(), "true".to_string()));
                }
                continue;
            }
            for v in m.get_many::<String>(spec.key).into_iter().flatten() {
                given.push((spec.key.to_string(), v.clone()));
            }
        }
        Ok(SettingArgs { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Cli {
    /// Whether a one-shot action was asked for (they log to stderr).
    pub fn one_shot(&self) -> bool {
        self.auth_test.is_some() || self.isuser_test.is_some() || self.roster_test.is_some()
    }
}

/// The ways to run cloudauth (clap's own usage line would list every setting).
const USAGE: &str = "\
cloudauth -t <PROTO> [OPTIONS]
       cloudauth --listen <PROTO=ADDR>... [OPTIONS]
       cloudauth -A <USER> <DOMAIN> <PASSWORD> [OPTIONS]
       cloudauth -I <USER> <DOMAIN> [OPTIONS]
       cloudauth -R <USER> <DOMAIN> [OPTIONS]
       cloudauth token [OPTIONS] <USER> <DOMAIN>";

/// Exit codes, for `--help` and the man page (a macro: `concat!` takes
/// only literals).
macro_rules! exit_status {
    () => {
        "\
0  yes (-A, -I), or done: end of input, shut down, roster or token printed;
   doctor: every check passed
1  no (-A: refused: wrong password, unknown user; -I: no such user);
   doctor: a check failed
2  backend trouble (the backend could not tell; -R: a failed roster sync)
70 serving failed (e.g. a listener stopped)
78 a bad command line or configuration (the message names the setting)"
    };
}

/// Exit codes, one per line: the code, two spaces, its meaning.
#[allow(dead_code)] // read by examples/man.rs (the man page's EXIT STATUS)
pub const EXIT_STATUS: &str = exit_status!();

const AFTER_HELP: &str = concat!(
    "\
-A takes precedence over -I over -R over -t. -A, -I and -R log to stderr.
`cloudauth doctor` checks the set-up (exit 0: all fine, 1: something broken).
Command line beats the config file, which beats the defaults; config keys are
the long option names (without dashes; _ and - alike).
ejabberd: extauth_program: \"/usr/bin/cloudauth -t ejabberd -c /etc/xcauth.conf\"

Exit status:
",
    exit_status!()
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cloudauth").chain(args.iter().copied()))
    }

    #[test]
    fn every_setting_is_a_flag_with_its_short_name() {
        let c = parse(&[
            "-u",
            "https://x/",
            "-t",
            "ejabberd",
            "-d",
            "--cache-storage",
            "db",
            "--listen",
            "a=1",
            "--listen",
            "b=2",
            "--backend",
            "json",
        ])
        .unwrap();
        let g = &c.settings.given;
        assert!(g.contains(&("url".into(), "https://x/".into())));
        assert!(g.contains(&("type".into(), "ejabberd".into())));
        assert!(g.contains(&("debug".into(), "true".into())));
        assert!(g.contains(&("backend".into(), "json".into())));
        assert_eq!(g.iter().filter(|(k, _)| k == "listen").count(), 2);
        assert!(!g.iter().any(|(k, _)| k == "interactive"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            ["--cache-storage", "disk"],
            ["--backend", "ldap"],
            ["--timeout", "0"],
            ["--cache-query-ttl", "soon"],
            ["--tokens", "jsxc,nope"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        // A bad URL is left to the settings, which report it without
        // repeating it (tests/port.rs, missing_settings_fail_loudly).
        assert!(parse(&["--url", "http://a:pw@exa mple.org"]).is_ok());
    }

    #[test]
    fn settings_work_after_the_subcommand_too() {
        let c = parse(&["token", "alice", "example.org", "-s", "k"]).unwrap();
        assert!(c.settings.given.contains(&("secret".into(), "k".into())));
    }
}
