//! `jsxc-test-backend`: the project's own implementation of the JSXC
//! external API of the Nextcloud ojsxc app (signature check included), of
//! a generic JSON login API and of the part of Nextcloud's OCS API a login
//! server uses (with Nextcloud's brute-force throttle), all on one
//! listener, with fault injection switchable at run time, for end-to-end
//! tests, the demo and benchmarks. Loopback use only.
//!
//! It prints `READY api=<JSXC URL> control=<control URL>` once listening;
//! the JSON API's base URL is `http://ADDR/json` and the OCS API's
//! `http://ADDR`, ADDR being the host and port of the JSXC URL.

mod api;
mod clock;
mod control;
mod faults;
mod json_api;
mod ocs;
mod state;
mod stats;
mod throttle;
mod users;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::{middleware, Router};
use clap::Parser;
use cloudauth_core::Secret;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::ClockOffset;
use crate::faults::Fault;
use crate::state::App;
use crate::stats::Stats;
use crate::throttle::{Model, Throttle};
use crate::users::Directory;
use crate::workers::Workers;

/// Largest request body accepted (larger: HTTP 413).
const MAX_BODY: usize = 64 * 1024;

/// Test server for the JSXC external API, a JSON login API (base URL
/// http://ADDR/json) and Nextcloud's OCS API (base URL http://ADDR), ADDR
/// being the host and port of the api URL printed on the READY line.
#[derive(Debug, Parser)]
#[command(name = "jsxc-test-backend", version)]
struct Cli {
    /// API address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Control address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// API secret.
    #[arg(long, conflicts_with = "secret_file")]
    secret: Option<String>,
    /// File holding the API secret (first line).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Users file (JSON).
    #[arg(long)]
    users: PathBuf,
    /// API path.
    #[arg(long, default_value = "/index.php/apps/ojsxc/ajax/externalApi.php")]
    path: String,
    /// File holding a bearer token the JSON API then requires (first line).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// No per-request log lines.
    #[arg(long)]
    quiet: bool,
    /// API requests processed at once, like PHP-FPM's `pm.max_children`;
    /// the others wait in arrival order (0: no limit).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Time each API request takes before its answer, like argon2id in a
    /// real Nextcloud (0: none).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Seconds the `Date` header of API answers is off the real time
    /// (negative: behind), like a cloud whose clock is wrong.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    clock_offset_s: i64,
    /// Nextcloud version the OCS API answers as: 24 (a delay per recorded
    /// failure, switched on at run time) or 32/34 (a block after the 11th
    /// failure, always on; JSON 401 bodies; `cloud/capabilities`).
    #[arg(long, default_value_t = 24, value_parser = nextcloud_version)]
    nextcloud_version: u32,
    /// An address on Nextcloud's brute-force allow-list (no failures are
    /// recorded for it); repeatable.
    #[arg(long)]
    allow_listed: Vec<std::net::IpAddr>,
    /// An address in Nextcloud's `trusted_proxies`: the OCS API takes the
    /// `X-Forwarded-For` of requests from it as the client address (for
    /// the throttle and capabilities); repeatable. Without it the header
    /// is ignored.
    #[arg(long)]
    trusted_proxy: Vec<std::net::IpAddr>,
}

/// `--nextcloud-version`: one of the versions recorded.
fn nextcloud_version(v: &str) -> Result<u32, String> {
    match v {
        "24" | "32" | "34" => v.parse().map_err(|e| format!("{e}")),
        _ => Err("24, 32 or 34".into()),
    }
}

fn api_router(app: Arc<App>, path: &str) -> Router {
    Router::new()
        .route(path, post(api::handle))
        .route("/", post(api::handle))
        .merge(json_api::routes())
        .merge(ocs::routes())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            workers::admit,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            clock::stamp,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Serves the API on `addr`, closing the listener (and idle connections)
/// while the fault mode is `Down` and re-binding the same address after.
/// `listening` tells the control server when a switch has taken effect.
async fn api_supervisor(
    addr: SocketAddr,
    first: TcpListener,
    router: Router,
    mut fault: watch::Receiver<Fault>,
    listening: watch::Sender<bool>,
) {
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match bind_retrying(addr).await {
                Some(l) => l,
                None => {
                    eprintln!("jsxc-test-backend: cannot re-bind {addr}");
                    return;
                }
            },
        };
        listening.send_replace(true);
        let mut down = fault.clone();
        // With the client's address: the OCS throttle records failures by it.
        let service = router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        let serving = axum::serve(l, service).with_graceful_shutdown(async move {
            let _ = down.wait_for(|f| *f == Fault::Down).await;
        });
        let served = serving.await;
        listening.send_replace(false);
        if let Err(e) = served {
            eprintln!("jsxc-test-backend: API server failed: {e}");
            return;
        }
        if fault.wait_for(|f| *f != Fault::Down).await.is_err() {
            return;
        }
    }
}

async fn bind_retrying(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The first line of a file.
fn first_line(f: &std::path::Path) -> Result<String, String> {
    Ok(std::fs::read_to_string(f)
        .map_err(|e| format!("{}: {e}", f.display()))?
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    // The other APIs' routes are fixed; a JSXC path among them would make
    // the router panic on the overlap.
    let p = cli.path.as_str();
    if p == "/ocs" || p.starts_with("/ocs/") || p.starts_with("/json/") {
        return Err(format!(
            "--path {} collides with the JSON or OCS API",
            cli.path
        ));
    }
    let secret = match (&cli.secret, &cli.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(f)) => first_line(f)?,
        (None, None) => return Err("give --secret or --secret-file".into()),
    };
    let api_token = match &cli.api_token_file {
        Some(f) => {
            let t = first_line(f)?;
            // An empty token would make `Authorization: Bearer ` pass.
            if t.trim().is_empty() {
                return Err(format!("{}: empty token", f.display()));
            }
            Some(Secret::new(t.trim().as_bytes()))
        }
        None => None,
    };
    let users = Directory::load(&cli.users).map_err(|e| e.to_string())?;
    let (fault_tx, fault_rx) = watch::channel(Fault::Ok);
    let (listening_tx, _) = watch::channel(false);
    let app = Arc::new(App {
        secret: Secret::new(secret.into_bytes()),
        users: RwLock::new(Arc::new(users)),
        users_path: cli.users.clone(),
        stats: Stats::default(),
        fault: fault_tx,
        listening: listening_tx.clone(),
        quiet: cli.quiet,
        api_token,
        throttle: Throttle::new(
            if cli.nextcloud_version >= 32 {
                Model::Block
            } else {
                Model::Delay
            },
            cli.allow_listed.clone(),
        ),
        nextcloud_version: cli.nextcloud_version,
        trusted_proxies: cli.trusted_proxy.clone(),
        workers: Workers::new(cli.workers, Duration::from_millis(cli.delay_ms)),
        clock: ClockOffset::new(cli.clock_offset_s),
    });
    let api_listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("{}: {e}", cli.listen))?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let control_listener = TcpListener::bind(cli.control)
        .await
        .map_err(|e| format!("{}: {e}", cli.control))?;
    let control_addr = control_listener.local_addr().map_err(|e| e.to_string())?;

    let api = tokio::spawn(api_supervisor(
        api_addr,
        api_listener,
        api_router(Arc::clone(&app), &cli.path),
        fault_rx,
        listening_tx,
    ));
    let control =
        tokio::spawn(async move { axum::serve(control_listener, control::router(app)).await });

    let ready = format!(
        "READY api=http://{api_addr}{} control=http://{control_addr}\n",
        cli.path
    );
    let mut out = tokio::io::stdout();
    out.write_all(ready.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    out.flush().await.map_err(|e| e.to_string())?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = api => eprintln!("jsxc-test-backend: API server stopped"),
        _ = control => eprintln!("jsxc-test-backend: control server stopped"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jsxc-test-backend: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jsxc-test-backend: {e}");
            ExitCode::FAILURE
        }
    }
}
