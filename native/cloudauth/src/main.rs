//! `cloudauth`: XMPP server authentication against Nextcloud/ownCloud (JSXC),
//! a drop-in replacement for xcauth.

mod cli;
mod codec;
mod config;
mod config_file;
mod handler;
mod logging;
mod oneshot;
mod request;
mod serve;
mod stdio;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cloudauth_core::{
    token, Authenticator, BackendClient, DomainSettings, Secret, SingleDomain, SystemClock,
};
use tracing::{error, info, warn};

use crate::cli::{Cli, Command};
use crate::codec::ejabberd::EjabberdCodec;
use crate::codec::generic::LineCodec;
use crate::config::{Config, Protocol};
use crate::handler::Handler;

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
    ExitCode::from(code)
}

fn mint_token(
    config: &Config,
    user: &str,
    domain: &str,
    ttl: &str,
    expiry: Option<u64>,
) -> ExitCode {
    let Some(secret) = &config.secret else {
        eprintln!("cloudauth: token needs the API secret (-s, --secret-file or the config file)");
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
    println!("{}", token::mint(secret, user, domain, expiry));
    ExitCode::SUCCESS
}

fn authenticator(config: &Config) -> Result<Authenticator, String> {
    let url = config
        .url
        .clone()
        .ok_or("no API URL configured (-u or url= in the config file)")?;
    let secret: Secret = config
        .secret
        .clone()
        .ok_or("no API secret configured (--secret-file, -s or secret= in the config file)")?;
    let settings = SingleDomain::new(DomainSettings {
        url,
        secret,
        auth_domain: None,
    });
    Ok(Authenticator::new(
        BackendClient::new(config.timeouts),
        Arc::new(settings),
        Arc::new(SystemClock),
    ))
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
    if let Some([user, domain]) = cli.roster_test.as_deref() {
        return exit(runtime.block_on(oneshot::roster(&auth, user, domain)));
    }
    let Some(protocol) = config.protocol else {
        eprintln!("cloudauth: nothing to do: give -t ejabberd|generic, -A, -I, -R or the token subcommand (see --help)");
        return 2;
    };
    let handler = Arc::new(Handler::new(auth));
    info!(
        "serving {protocol:?} protocol on stdin/stdout (version {})",
        env!("CARGO_PKG_VERSION")
    );
    let result = runtime.block_on(async move {
        let (input, output) = (stdio::stdin(), stdio::stdout());
        match protocol {
            Protocol::Ejabberd => serve::serve::<_, _, EjabberdCodec>(input, output, handler).await,
            Protocol::Generic => serve::serve::<_, _, LineCodec>(input, output, handler).await,
        }
    });
    match result {
        Ok(end) => {
            info!("session ended ({end:?})");
            0
        }
        Err(e) => {
            error!("session failed: {e}");
            1
        }
    }
}
