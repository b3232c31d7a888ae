//! `cloudauth doctor [DOMAIN]`: the core's checks ([`cloudauth_core::doctor`])
//! over this program's settings: the config file, the secret files it and
//! the command line name, the log directory, the state database, the
//! per-domain sources, then the global settings and each domain's. One
//! line per check; exit 0 when nothing is broken, 1 otherwise.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use cloudauth_core::catalogue;
use cloudauth_core::doctor::{self, Check};
use cloudauth_core::domains::{parse_domain_file, read_domain_db, DomainRow};
use cloudauth_core::settings::keys;
use cloudauth_core::settings::schema::Kind;
use cloudauth_core::settings::values::{Layer, SettingsError, Values};
use cloudauth_core::HttpClient;

use crate::cli::Cli;
use crate::config::{self, Config, ConfigError};

/// Domain the global settings are tried with (any name does: the backend
/// is asked about a user nobody has, tokens are minted for it).
const SAMPLE_DOMAIN: &str = "example.org";

/// Prints checks as they come and remembers whether one failed.
struct Out {
    checks: usize,
    failed: usize,
    indent: &'static str,
}

impl Out {
    fn new() -> Self {
        Out {
            checks: 0,
            failed: 0,
            indent: "",
        }
    }

    fn check(&mut self, c: Check) {
        self.checks += 1;
        if !c.ok() {
            self.failed += 1;
        }
        println!("{}{c}", self.indent);
    }

    fn all(&mut self, cs: impl IntoIterator<Item = Check>) {
        for c in cs {
            self.check(c);
        }
    }

    fn section(&mut self, title: &str) {
        println!("{title}:");
        self.indent = "  ";
    }

    fn note(&self, text: &str) {
        println!("{}{text}", self.indent);
    }

    fn finish(&self) -> u8 {
        if self.failed == 0 {
            println!("all {} checks passed", self.checks);
            0
        } else {
            println!("{} of {} checks failed", self.failed, self.checks);
            1
        }
    }
}

/// Whether a settings error is about a secret file (already told by its own line).
fn about_secret_file(e: &ConfigError) -> bool {
    match e {
        ConfigError::Settings(SettingsError::Invalid { key, .. }) => {
            catalogue::find(key).is_some_and(|s| s.kind == Kind::SecretFile)
        }
        _ => false,
    }
}

/// Runs every check; the exit code.
pub fn run(cli: &Cli, only: Option<&str>) -> u8 {
    let mut out = Out::new();
    // Which user matters: permissions are checked for this one.
    let uid = doctor::my_uid().map_or_else(|| "an unknown user".into(), |u| format!("uid {u}"));
    println!(
        "cloudauth {} doctor, running as {uid} (run it as the user the server runs as)",
        env!("CARGO_PKG_VERSION")
    );

    // Files first: they decide whether the settings load at all.
    let mut layers: Vec<Layer> = Vec::new();
    match (config::config_path(cli), config::load_file(cli)) {
        (_, Ok(Some((path, layer)))) => {
            out.check(doctor::settings_file(
                "config file",
                &path,
                doctor::holds_secret(&layer),
            ));
            layers.push(layer);
        }
        (_, Ok(None)) => out.check(Check::pass(
            "config file",
            format!(
                "none ({} does not exist): settings from the command line only",
                config::DEFAULT_CONFIG
            ),
        )),
        (Some(path), Err(ConfigError::ReadFile { .. })) => {
            out.check(doctor::settings_file("config file", &path, false));
        }
        (_, Err(e)) => out.check(Check::fail(
            "config file",
            e.to_string(),
            "fix the line named",
        )),
    }
    layers.push(config::command_line_layer(cli));
    let secret_files = doctor::secret_files(&layers);
    let secret_file_failed = !doctor::all_ok(&secret_files);
    out.all(secret_files);

    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) if secret_file_failed && about_secret_file(&e) => {
            out.note("(the settings cannot load until the secret files above are fixed; the other checks need them)");
            return out.finish();
        }
        Err(e) => {
            out.check(Check::fail(
                "settings",
                e.to_string(),
                "fix the setting named (command line or config file)",
            ));
            return out.finish();
        }
    };
    let v = &config.values;

    if v.flag(keys::INTERACTIVE) {
        out.check(Check::pass("log directory", "not used: -i logs to stderr"));
    } else if let Some(dir) = v.path(keys::LOG) {
        out.check(doctor::writable_dir("log directory", dir));
    }

    let (db, explicit) = &config.db;
    let db_used = *explicit || db.exists();
    if db_used {
        out.check(doctor::state_db(db));
    } else {
        out.check(Check::pass(
            "state database",
            format!(
                "none ({} does not exist and --db is not given): one-time tokens are remembered per process",
                db.display()
            ),
        ));
    }

    if let Some(ctl) = &config.ejabberdctl {
        out.check(executable("ejabberdctl", ctl));
    }

    // Per-domain rows: the file's, then the database's over them, as served.
    let mut rows: BTreeMap<String, (DomainRow, String)> = BTreeMap::new();
    if let Some(path) = &config.per_domain_file {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_domain_file(path, &text).map_err(|e| e.to_string()))
        {
            Ok(found) => {
                out.check(doctor::settings_file(
                    "per-domain file",
                    path,
                    found.iter().any(|r| doctor::holds_secret(&r.layer)),
                ));
                out.all(doctor::secret_files(found.iter().map(|r| &r.layer)));
                let from = format!("per-domain file {}", path.display());
                for r in found {
                    rows.insert(r.domain.clone(), (r, from.clone()));
                }
            }
            Err(e) => {
                let c = doctor::settings_file("per-domain file", path, false);
                out.check(if c.ok() {
                    Check::fail("per-domain file", e, "fix the line named")
                } else {
                    c
                });
            }
        }
    }
    if db_used && db.exists() {
        match read_domain_db(db) {
            Ok(found) => {
                out.all(doctor::secret_files(found.iter().map(|r| &r.layer)));
                for r in found {
                    rows.insert(
                        r.domain.clone(),
                        (r, format!("state database {}", db.display())),
                    );
                }
            }
            Err(e) => out.check(Check::fail(
                "domains table",
                e.to_string(),
                "the state database's domains/domain_settings tables cannot be read",
            )),
        }
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            out.check(Check::fail(
                "runtime",
                format!("cannot start the async runtime: {e}"),
                "",
            ));
            return out.finish();
        }
    };
    let http = Arc::new(HttpClient::new(config.timeouts));
    let domain = |out: &mut Out, title: String, values: &Values, name: &str| {
        out.section(&title);
        out.all(runtime.block_on(doctor::check_domain(values, name, &http)));
    };
    let merged = |row: &DomainRow| v.overlay(&row.layer).map(|r| r.values);

    match only {
        Some(name) => {
            let name = name.to_lowercase();
            match rows.get(&name) {
                Some((row, from)) => match merged(row) {
                    Ok(values) => domain(&mut out, format!("{name} ({from})"), &values, &name),
                    Err(e) => {
                        out.section(&format!("{name} ({from})"));
                        out.check(Check::fail(
                            "settings",
                            e.to_string(),
                            "fix the setting named",
                        ));
                    }
                },
                None => domain(&mut out, format!("{name} (global settings)"), v, &name),
            }
        }
        None => {
            // Global settings that cannot serve are only a problem when no
            // domain has settings of its own.
            let global_problem = cloudauth_core::DomainSettings::build(
                v,
                &http,
                &cloudauth_core::token::TokenContext {
                    replay: Arc::new(cloudauth_core::token::MemoryReplayGuard::default()),
                },
            )
            .err();
            match global_problem {
                Some(e) if !rows.is_empty() => {
                    out.section("global settings");
                    out.check(Check::pass(
                        "settings",
                        format!("not complete ({e}): only the domains below are served"),
                    ));
                }
                _ => domain(&mut out, "global settings".into(), v, SAMPLE_DOMAIN),
            }
            for (name, (row, from)) in &rows {
                match merged(row) {
                    Ok(values) => domain(&mut out, format!("{name} ({from})"), &values, name),
                    Err(e) => {
                        out.section(&format!("{name} ({from})"));
                        out.check(Check::fail(
                            "settings",
                            e.to_string(),
                            "fix the setting named",
                        ));
                    }
                }
            }
        }
    }
    out.indent = "";
    out.finish()
}

/// A program this user must be able to run.
fn executable(name: &str, path: &Path) -> Check {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
            Check::pass(name, format!("{} is executable", path.display()))
        }
        Ok(_) => Check::fail(
            name,
            format!("{} is not an executable file", path.display()),
            "give the path of ejabberdctl (usually /usr/sbin/ejabberdctl)",
        ),
        Err(e) => Check::fail(
            name,
            format!("{}: {e}", path.display()),
            "give the path of ejabberdctl (usually /usr/sbin/ejabberdctl)",
        ),
    }
}
