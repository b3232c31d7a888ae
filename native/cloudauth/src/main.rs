//! `cloudauth`: XMPP and mail server authentication against Nextcloud (the
//! JSXC app, Nextcloud's own API, or a JSON login API), a drop-in
//! replacement for xcauth.

mod cli;
mod config;
mod doctor;
mod handler;
mod listen;
mod logging;
mod monitor;
mod oneshot;
mod roster_sync;
mod serve;
mod sockets;
mod stdio_serve;
mod sweeper;
mod vocab;

use std::process::ExitCode;

// Framing, requests and the config file syntax live in the library (for the fuzz targets).
use cloudauth::{config_file, request, wire};
use std::sync::Arc;

use clap::Parser;
use cloudauth_core::domains::{Builder, DomainTable};
use cloudauth_core::settings::keys;
use cloudauth_core::token::{MemoryReplayGuard, ReplayGuard, SqliteReplayGuard, TokenContext};
use cloudauth_core::{Authenticator, Clock, HttpClient, SettingsResolver, SystemClock};
use tracing::{error, info, warn};

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::handler::Handler;
use crate::roster_sync::RosterSync;

/// Exit status for a configuration that cannot be used (sysexits'
/// EX_CONFIG): apart from 2, which the one-shot checks use for backend trouble.
pub const EXIT_CONFIG: u8 = 78;

/// Exit status for a failure while serving (sysexits' EX_SOFTWARE).
pub const EXIT_FAILURE: u8 = 70;

fn main() -> ExitCode {
    // A usage error is a configuration error too (clap would exit 2, which
    // means backend trouble here); --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    // Before the settings load: reporting why they do not is part of its job.
    if let Some(Command::Doctor { domain }) = &cli.command {
        return ExitCode::from(doctor::run(&cli, domain.as_deref()));
    }
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cloudauth: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(Command::Forget { user, domain }) = &cli.command {
        return forget(&config, user, domain);
    }
    if let Some(Command::Token {
        user,
        domain,
        format,
        ttl,
        expiry,
    }) = &cli.command
    {
        return mint_token(&config, user, domain, format.as_deref(), ttl, *expiry);
    }
    if let Some(w) = logging::init(&config.log, config.debug) {
        eprintln!("cloudauth: {w}");
    }
    for w in &config.warnings {
        warn!("{w}");
    }
    let code = run(&cli, &config);
    logging::flush();
    ExitCode::from(code)
}

/// Prints a token for `user@domain` in `format` (default: the domain's first).
fn mint_token(
    config: &Config,
    user: &str,
    domain: &str,
    format: Option<&str>,
    ttl: &str,
    expiry: Option<u64>,
) -> ExitCode {
    let fail = |why: String| {
        eprintln!("cloudauth: token: {why}");
        ExitCode::from(EXIT_CONFIG)
    };
    let now = SystemClock.now_unix();
    let ttl = match expiry {
        Some(e) => std::time::Duration::from_secs(e.saturating_sub(now)),
        None => match cloudauth_core::duration::parse_duration(ttl) {
            Ok(d) => d,
            Err(e) => return fail(format!("--ttl: {e}")),
        },
    };
    // The domain's own settings when per-domain settings give them; minting
    // needs no backend, so the token formats are built on their own.
    let values = domain_table(config, &http_client(config))
        .ok()
        .and_then(|t| t.resolve(domain))
        .map(|s| s.values.clone())
        .unwrap_or_else(|| config.values.clone());
    let names = values.list(keys::TOKENS);
    let Some(name) = format.or(names.first().map(String::as_str)) else {
        return fail("no token format configured (--tokens)".into());
    };
    let Some(entry) = cloudauth_core::catalogue::token_entry(name) else {
        return fail(format!("unknown token format {name:?}"));
    };
    match (entry.build)(&values, &token_context(config)) {
        Ok(t) => {
            // A jsxc token for an exact expiry: the second it names.
            let minted = match expiry {
                Some(e) => t.mint(user, domain, e, std::time::Duration::ZERO),
                None => t.mint(user, domain, now, ttl),
            };
            println!("{minted}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

/// What token formats need: a replay guard, in the state database when
/// there is one (so that every process of an extauth pool refuses a token
/// another one accepted), else in this process.
fn token_context(config: &Config) -> TokenContext {
    let (db, explicit) = &config.db;
    let shared = (*explicit || db.exists()).then(|| SqliteReplayGuard::open(db));
    let replay: Arc<dyn ReplayGuard> = match shared {
        Some(Ok(g)) => Arc::new(g),
        Some(Err(e)) => {
            warn!("one-time tokens are remembered by this process only: {e}");
            Arc::new(MemoryReplayGuard::default())
        }
        None => {
            if config.values.list(keys::TOKENS).iter().any(|t| t == "totp") {
                warn!(
                    "one-time (totp) tokens are remembered by this process only: give --db \
                     so that every process of an extauth pool refuses a used token"
                );
            }
            Arc::new(MemoryReplayGuard::default())
        }
    };
    TokenContext { replay }
}

/// The process's one HTTP client, with its limits on requests in flight.
fn http_client(config: &Config) -> Arc<HttpClient> {
    Arc::new(HttpClient::with_limits(
        config.timeouts,
        Arc::new(cloudauth_core::settings::limits(&config.values)),
    ))
}

/// Settings per domain: the state database's `domains` table (when the file
/// exists or was configured), the per-domain file, the global settings.
fn domain_table(config: &Config, http: &Arc<HttpClient>) -> Result<DomainTable, String> {
    let builder = Builder {
        http: Arc::clone(http),
        tokens: token_context(config),
    };
    let (db, explicit) = &config.db;
    let db = (*explicit || db.exists()).then_some(db.as_path());
    let table = DomainTable::new(
        config.values.clone(),
        builder,
        config.per_domain_file.as_deref(),
        db,
    )
    .map_err(|e| e.to_string())?;
    if let (false, Some(why)) = (table.serves_anything(), table.global_problem()) {
        return Err(format!(
            "no domain can be served: {why} (command line, config file or per-domain settings)"
        ));
    }
    Ok(table)
}

/// `cloudauth forget USER DOMAIN`: one line saying what was dropped.
fn forget(config: &Config, user: &str, domain: &str) -> ExitCode {
    let (user, domain) = match cloudauth_core::jid::canonical(user, domain) {
        Ok(pair) => pair,
        Err(why) => {
            eprintln!("cloudauth forget: {why}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let jid = format!("{user}@{domain}");
    match cloudauth_core::forget::forget_in_db(&config.db.0, &jid) {
        Ok(gone) => {
            let said = |held: bool, what: &'static str| if held { what } else { "" };
            let parts: Vec<&str> = [
                said(gone.cache_row, "cached password"),
                said(gone.known_user, "known-user entry"),
                said(gone.roster_digest, "roster digest"),
            ]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
            let what = if parts.is_empty() {
                "nothing was held".to_string()
            } else {
                format!("dropped {}", parts.join(", "))
            };
            println!(
                "{jid}: {what} in {}; close the sessions with `ejabberdctl kick_user {user} {domain}`",
                config.db.0.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cloudauth forget: {}: {e}", config.db.0.display());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn authenticator(config: &Config, http: &Arc<HttpClient>) -> Result<Authenticator, String> {
    let cache = config.cache.open(&config.db.0).map_err(|e| e.to_string())?;
    let known = config
        .cache
        .open_known(&config.db.0)
        .map_err(|e| e.to_string())?;
    let table = domain_table(config, http)?;
    Ok(Authenticator::from_settings(
        Arc::new(table),
        &config.values,
        cache,
        known,
    ))
}

fn run(cli: &Cli, config: &Config) -> u8 {
    let http = http_client(config);
    let auth = match authenticator(config, &http) {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            eprintln!("cloudauth: {e}");
            return EXIT_CONFIG;
        }
    };
    // One worker thread: cloud requests, timers and socket connections run
    // there while the main thread serves stdin with blocking reads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let exit = |c: i32| u8::try_from(c).unwrap_or(2);
    if let Some([user, domain, password]) = cli.auth_test.as_deref() {
        return exit(runtime.block_on(oneshot::auth(&auth, user, domain, password)));
    }
    if let Some([user, domain]) = cli.isuser_test.as_deref() {
        return exit(runtime.block_on(oneshot::is_user(&auth, user, domain)));
    }
    let roster = match &config.ejabberdctl {
        None => None,
        Some(ctl) => match RosterSync::new(ctl, &config.db.0, config.roster_policy.clone()) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                error!("shared roster sync off: {e}");
                eprintln!("cloudauth: shared roster sync off: {e}");
                return EXIT_CONFIG;
            }
        },
    };
    if let Some([user, domain]) = cli.roster_test.as_deref() {
        return exit(runtime.block_on(oneshot::roster(&auth, roster.as_deref(), user, domain)));
    }
    let auth = Arc::new(auth);
    // What the backends find out at start (Nextcloud's brute-force state),
    // in a task of its own: serving starts at once.
    {
        let auth = Arc::clone(&auth);
        runtime.spawn(async move { auth.start().await });
    }
    if let Some(every) = auth.sweep_every() {
        runtime.spawn(sweeper::run(Arc::clone(&auth), every, roster.clone()));
    }
    let monitor = Arc::new(monitor::Monitor::new(Arc::clone(&auth), http));
    let handler = Arc::new(Handler::new(
        auth,
        config.on_trouble,
        roster,
        config.roster_policy.clone(),
        monitor,
    ));
    let drain = config.timeouts.total + std::time::Duration::from_secs(2);
    runtime.spawn(logging::flush_periodically());
    runtime.spawn(logging::reopen_on_hangup());
    let listeners = runtime.block_on(async {
        let mut listeners = listen::from_systemd().map_err(|e| e.to_string())?;
        for spec in &config.listen {
            listeners.push((spec.kind, listen::bind(spec).map_err(|e| e.to_string())?));
        }
        Ok::<_, String>(listeners)
    });
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            eprintln!("cloudauth: {e}");
            return EXIT_CONFIG;
        }
    };
    if listeners.is_empty() && config.protocol.is_none() {
        let e = "nothing to do: give -t TYPE, --listen PROTO=ADDR, -A, -I, -R or the token subcommand (see --help)";
        error!("{e}");
        eprintln!("cloudauth: {e}");
        return EXIT_CONFIG;
    }
    let result = Ok(listeners);
    let result = match result {
        Ok(listeners) if !listeners.is_empty() => {
            info!("socket mode, version {}", env!("CARGO_PKG_VERSION"));
            runtime
                .block_on(sockets::run(
                    listeners,
                    Arc::clone(&handler),
                    drain,
                    config.socket_limits,
                ))
                .map(|()| serve::End::Shutdown)
                .map_err(|e| e.to_string())
        }
        Ok(_) => match config.protocol {
            None => Err("nothing to serve".to_string()),
            Some(protocol) => {
                info!(
                    "serving {protocol:?} protocol on stdin/stdout (version {})",
                    env!("CARGO_PKG_VERSION")
                );
                stdio_serve::serve_stdio(protocol, Arc::clone(&handler), runtime.handle())
                    .map_err(|e| e.to_string())
            }
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(end) => {
            info!("session ended ({end:?})");
            0
        }
        Err(e) => {
            error!("{e}");
            eprintln!("cloudauth: {e}");
            EXIT_FAILURE
        }
    }
}
