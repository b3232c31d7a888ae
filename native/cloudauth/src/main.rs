//! `cloudauth`: XMPP server authentication against Nextcloud/ownCloud (JSXC),
//! a drop-in replacement for xcauth.

mod cli;
mod codec;
mod config;
mod config_file;
mod handler;
mod listen;
mod logging;
mod oneshot;
mod protocols;
mod request;
mod roster_sync;
mod serve;
mod sockets;
mod stdio_serve;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cloudauth_core::cache::{PasswordCache, Storage};
use cloudauth_core::domains::{DomainTable, GlobalSettings};
use cloudauth_core::{token, Authenticator, BackendClient, SettingsResolver, SystemClock};
use tracing::{error, info, warn};

use crate::cli::{Cli, Command};
use crate::config::{CacheStorage, Config};
use crate::handler::Handler;
use crate::roster_sync::RosterSync;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cloudauth: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Token {
        user,
        domain,
        ttl,
        expiry,
    }) = &cli.command
    {
        return mint_token(&config, user, domain, ttl, *expiry);
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

fn mint_token(
    config: &Config,
    user: &str,
    domain: &str,
    ttl: &str,
    expiry: Option<u64>,
) -> ExitCode {
    // The domain's own secret when per-domain settings give one.
    let secret = domain_table(config)
        .ok()
        .and_then(|t| t.resolve(domain))
        .map(|s| s.secret.clone())
        .or_else(|| config.secret.clone());
    let Some(secret) = secret else {
        eprintln!("cloudauth: token needs the API secret (-s, --secret-file, the config file or per-domain settings)");
        return ExitCode::from(2);
    };
    let expiry = match expiry {
        Some(e) => e,
        None => match cloudauth_core::duration::parse_duration(ttl) {
            Ok(d) => cloudauth_core::Clock::now_unix(&SystemClock).saturating_add(d.as_secs()),
            Err(e) => {
                eprintln!("cloudauth: --ttl: {e}");
                return ExitCode::from(2);
            }
        },
    };
    println!("{}", token::mint(&secret, user, domain, expiry));
    ExitCode::SUCCESS
}

/// Settings per domain: the state database's `domains` table (when the file
/// exists or was configured), the per-domain file, the global URL/secret.
fn domain_table(config: &Config) -> Result<DomainTable, String> {
    let global = GlobalSettings {
        url: config.url.clone(),
        secret: config.secret.clone(),
    };
    let (db, explicit) = &config.db;
    let db = (*explicit || db.exists()).then_some(db.as_path());
    let table = DomainTable::new(global, config.per_domain_file.as_deref(), db)
        .map_err(|e| e.to_string())?;
    if !table.serves_anything() {
        return Err("no API URL and secret configured (-u and --secret-file, the config file, or per-domain settings)".into());
    }
    Ok(table)
}

fn authenticator(config: &Config) -> Result<Authenticator, String> {
    let storage = match config.cache.storage {
        CacheStorage::None => None,
        CacheStorage::Memory => Some(Storage::Memory),
        CacheStorage::Db => Some(Storage::Sqlite(&config.db.0)),
    };
    let cache = storage
        .map(|s| PasswordCache::open(s, config.cache.ttls, config.cache.rounds()))
        .transpose()
        .map_err(|e| e.to_string())?;
    let table = domain_table(config)?;
    let auth = Authenticator::new(
        BackendClient::new(config.timeouts),
        Arc::new(table),
        Arc::new(SystemClock),
    );
    Ok(match cache {
        Some(c) => auth.with_cache(c),
        None => auth,
    })
}

fn run(cli: &Cli, config: &Config) -> u8 {
    let auth = match authenticator(config) {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            eprintln!("cloudauth: {e}");
            return 2;
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
            return 2;
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
                return 2;
            }
        },
    };
    if let Some([user, domain]) = cli.roster_test.as_deref() {
        return exit(runtime.block_on(oneshot::roster(&auth, roster.as_deref(), user, domain)));
    }
    let handler = Arc::new(Handler::new(Arc::new(auth), config.on_trouble, roster));
    let drain = config.timeouts.total + std::time::Duration::from_secs(2);
    runtime.spawn(logging::flush_periodically());
    let result = runtime.block_on(async {
        let mut listeners = listen::from_systemd().map_err(|e| e.to_string())?;
        for spec in &config.listen {
            listeners.push((
                spec.protocol,
                listen::bind(spec).map_err(|e| e.to_string())?,
            ));
        }
        Ok::<_, String>(listeners)
    });
    let result = match result {
        Ok(listeners) if !listeners.is_empty() => {
            info!("socket mode, version {}", env!("CARGO_PKG_VERSION"));
            runtime
                .block_on(sockets::run(listeners, Arc::clone(&handler), drain, config.idle_timeout))
                .map(|()| serve::End::Shutdown)
                .map_err(|e| e.to_string())
        }
        Ok(_) => match config.protocol {
            None => Err("nothing to do: give -t TYPE, --listen PROTO=ADDR, -A, -I, -R or the token subcommand (see --help)".to_string()),
            Some(protocol) => {
                info!("serving {protocol:?} protocol on stdin/stdout (version {})", env!("CARGO_PKG_VERSION"));
                protocols::serve_stdio_protocol(protocol, Arc::clone(&handler), runtime.handle())
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
            2
        }
    }
}
