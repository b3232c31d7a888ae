//! The NIF behind ejabberd's `auth_method: cloud` (Erlang module
//! `ejabberd_auth_cloud_nif`): the cloudauth core inside the Erlang VM.
//!
//! A thin adapter. Token checks are answered directly (microseconds, no
//! I/O). Everything that may wait on the network returns `ok` at once and
//! sends `{Ref, Result}` to the caller later, from the NIF's own runtime, so
//! no call ever holds a scheduler. Only the one-off host set-up (which reads
//! a secret file and may open a database) runs on a dirty I/O scheduler.
//!
//! Results of decisions are `{Verdict, Path, Detail, Micros}`: `Verdict` is
//! `yes | no | trouble | own_trouble` (own: this server's, not the
//! backend's, `Trouble::named_own`; both answer "cannot tell"), `Path` is `token | backend | cache | fallback |
//! precheck | recent | throttled | withheld`, `Detail` a binary for the log (never a password).

mod cluster;
mod host;
mod log;
mod reply;
mod roster;
mod runtime;

use std::time::Instant;

use cloudauth_core::doctor::Status;
use cloudauth_core::log_text::escape;
use cloudauth_core::roster::{answer_hash, desired, plan, Jid};
use cloudauth_core::{Decision, Path, TokenAnswer, Verdict};
use rustler::{Atom, Binary, Encoder, Env, NifResult, ResourceArc, Term};

use crate::host::Host;
use crate::reply::spawn_reply;
use crate::roster::Fetched;

mod atoms {
    rustler::atoms! {
        ok, error, not_token, pass, warn, fail, claim,
        yes, no, trouble, own_trouble,
        token, backend, cache, fallback, precheck, recent, throttled, withheld,
        create_group, add_member, remove_member, set_name,
    }
}

/// A decision as sent to Erlang.
type DecisionTerm = (Atom, Atom, String, u64);

fn decision_term(d: &Decision, started: Instant) -> DecisionTerm {
    // The detail goes into ejabberd's log as it is: escaped here, as
    // cloudauth's own log escapes it (a backend's message may hold anything).
    let (verdict, detail) = match &d.verdict {
        Verdict::Yes => (atoms::yes(), escape(d.reason.unwrap_or(""))),
        Verdict::No => (atoms::no(), escape(d.reason.unwrap_or(""))),
        Verdict::Trouble(cause) if cause.named_own() => {
            (atoms::own_trouble(), escape(&cause.to_string()))
        }
        Verdict::Trouble(cause) => (atoms::trouble(), escape(&cause.to_string())),
    };
    let path = match d.path {
        Path::Token => atoms::token(),
        Path::Backend => atoms::backend(),
        Path::Cache => atoms::cache(),
        Path::Fallback => atoms::fallback(),
        Path::Refused => atoms::precheck(),
        Path::Recent => atoms::recent(),
        Path::Throttled => atoms::throttled(),
        Path::Withheld => atoms::withheld(),
    };
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    (verdict, path, detail, micros)
}

fn refused(why: &str) -> DecisionTerm {
    (atoms::no(), atoms::precheck(), why.to_string(), 0)
}

/// How long a new host's start-up checks wait for the log sink, in 50 ms
/// steps (2 s): then they begin anyway, within the VM's 5 s.
const LOG_SINK_WAIT_STEPS: u32 = 40;

/// Longest field accepted (user, domain, password or token): far above any
/// real one, and checked before anything is copied or decoded, so that a
/// huge binary costs a normal scheduler nothing.
const MAX_FIELD: usize = 4096;

/// The fields as text; `None` when one is too long or not UTF-8 (never accepted).
fn text_fields<const N: usize>(fields: [&[u8]; N]) -> Option<[String; N]> {
    if fields.iter().any(|f| f.len() > MAX_FIELD) {
        return None;
    }
    let texts: Option<Vec<String>> = fields
        .iter()
        .map(|f| std::str::from_utf8(f).ok().map(str::to_string))
        .collect();
    texts?.try_into().ok()
}

/// `new_host([{Option, Value}]) -> {ok, {Handle, BudgetMs, Warnings}} | {error, Why}`:
/// the vhost's `auth_cloud_*` options that are set, read through the core's
/// settings schema (which supplies the defaults).
#[rustler::nif(schedule = "DirtyIo")]
fn new_host(options: Vec<(Term, Term)>) -> Result<(ResourceArc<Host>, u64, Vec<String>), String> {
    let named = options
        .into_iter()
        .map(|(name, value)| {
            name.atom_to_string()
                .map(|n| (n, value))
                .map_err(|_| "option names must be atoms".to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (host, warnings) = Host::new(named)?;
    let budget_ms = u64::try_from(host.budget.as_millis()).unwrap_or(u64::MAX);
    let host = ResourceArc::new(host);
    // What the backends find out at start (Nextcloud's brute-force state),
    // on the NIF's runtime: the VM never waits. Once the log sink is there
    // (it starts just after the first host), so that what is found out
    // reaches ejabberd's log; within 5 s of the host either way.
    if let Ok(rt) = runtime::runtime() {
        let h = host.clone();
        rt.spawn(async move {
            for _ in 0..LOG_SINK_WAIT_STEPS {
                if log::ready() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            h.auth.start().await
        });
    }
    Ok((host, budget_ms, warnings))
}

/// `check_token(Handle, User, Server, Password) -> {ok, Decision} |
/// {error, not_token} | {claim, {Key, Until}, IfNew, IfUsed}`: the token
/// path only, answered at once. A claim comes only with cache storage
/// mnesia, for a one-time token new on this node: Erlang inserts `Key`
/// (hex) in the cluster's table unless it is there, in a transaction, and
/// answers `IfNew` if it inserted, `IfUsed` if not. Keys may be swept
/// after `Until` (Unix seconds).
#[rustler::nif]
fn check_token<'a>(
    env: Env<'a>,
    host: ResourceArc<Host>,
    user: Binary,
    server: Binary,
    password: Binary,
) -> Term<'a> {
    let started = Instant::now();
    let Some([user, server, password]) =
        text_fields([user.as_slice(), server.as_slice(), password.as_slice()])
    else {
        return (atoms::ok(), refused("not UTF-8, or longer than 4096 bytes")).encode(env);
    };
    match host.auth.check_token_claiming(&user, &server, &password) {
        Some(TokenAnswer::Decided(d)) => {
            host.requests.record("vm", "auth", &d);
            (atoms::ok(), decision_term(&d, started)).encode(env)
        }
        Some(TokenAnswer::Claim {
            claim,
            if_new,
            if_used,
        }) => {
            let key: String = claim.key.iter().map(|b| format!("{b:02x}")).collect();
            (
                atoms::claim(),
                (key, claim.until),
                decision_term(&if_new, started),
                decision_term(&if_used, started),
            )
                .encode(env)
        }
        None => (atoms::error(), atoms::not_token()).encode(env),
    }
}

/// `cache_lend(Handle, User, Server, Row) -> ok`: with cache storage
/// mnesia, the row Mnesia holds for the user (`{PwHash, FirstAuth,
/// RemoteAuth, AnyAuth}`, or `none`), read by Erlang right before `auth`.
#[rustler::nif]
fn cache_lend(host: ResourceArc<Host>, user: Binary, server: Binary, row: Term) -> Atom {
    let Some(lent) = &host.lent else {
        return atoms::ok();
    };
    let Some([user, server]) = text_fields([user.as_slice(), server.as_slice()]) else {
        return atoms::ok();
    };
    let Ok((user, server)) = cloudauth_core::jid::canonical(&user, &server) else {
        return atoms::ok();
    };
    let row = row.decode::<cluster::RowTerm>().ok();
    lent.lend(&format!("{user}@{server}"), cluster::entry(row));
    atoms::ok()
}

/// `known_lend(Handle, User, Server, Confirmed) -> ok`: with cache storage
/// mnesia, when the cluster last confirmed the user (Unix seconds, or
/// `none`), read by Erlang right before `is_user`.
#[rustler::nif]
fn known_lend(host: ResourceArc<Host>, user: Binary, server: Binary, confirmed: Term) -> Atom {
    let Some(lent) = &host.lent_known else {
        return atoms::ok();
    };
    let Some([user, server]) = text_fields([user.as_slice(), server.as_slice()]) else {
        return atoms::ok();
    };
    let Ok((user, server)) = cloudauth_core::jid::canonical(&user, &server) else {
        return atoms::ok();
    };
    lent.lend(&format!("{user}@{server}"), confirmed.decode::<u64>().ok());
    atoms::ok()
}

/// `set_cache_writer(Pid) -> ok`: rows the password cache writes (cache
/// storage mnesia) go to `Pid` as `{cloudauth_cache, Jid, Row | none}`,
/// known users as `{cloudauth_known, Jid, Confirmed | none}`.
#[rustler::nif]
fn set_cache_writer(pid: rustler::LocalPid) -> Atom {
    cluster::set_writer(pid);
    atoms::ok()
}

/// `auth(Handle, Ref, User, Server, Password) -> ok`, then `{Ref, Decision}`:
/// the password cache and the cloud, for a password `check_token` called
/// `not_token` (the token is not checked again).
#[rustler::nif]
fn auth<'a>(
    env: Env<'a>,
    host: ResourceArc<Host>,
    reply_ref: Term<'a>,
    user: Binary,
    server: Binary,
    password: Binary,
) -> NifResult<Atom> {
    let started = Instant::now();
    let fields = text_fields([user.as_slice(), server.as_slice(), password.as_slice()]);
    let budget = host.budget;
    spawn_reply(env, reply_ref, budget, async move {
        let Some([user, server, password]) = fields else {
            return refused("not UTF-8, or longer than 4096 bytes");
        };
        let d = host.auth.auth_backend(&user, &server, &password).await;
        host.requests.record("vm", "auth", &d);
        decision_term(&d, started)
    })
}

/// `is_user(Handle, Ref, User, Server) -> ok`, then `{Ref, Decision}`.
#[rustler::nif]
fn is_user<'a>(
    env: Env<'a>,
    host: ResourceArc<Host>,
    reply_ref: Term<'a>,
    user: Binary,
    server: Binary,
) -> NifResult<Atom> {
    let started = Instant::now();
    let fields = text_fields([user.as_slice(), server.as_slice()]);
    let budget = host.budget;
    spawn_reply(env, reply_ref, budget, async move {
        let Some([user, server]) = fields else {
            return refused("not UTF-8, or longer than 4096 bytes");
        };
        let d = host.auth.is_user(&user, &server).await;
        host.requests.record("vm", "isuser", &d);
        decision_term(&d, started)
    })
}

/// `roster_fetch(Handle, Ref, User, Server) -> ok`, then
/// `{Ref, {ok, Hash, Groups, Names, Skipped}}` or `{Ref, {trouble, Why}}`:
/// the user's shared roster from the cloud, as the groups and names to
/// provision (after the host's group policy), and the digest that tells
/// whether anything changed since the last sync.
#[rustler::nif]
fn roster_fetch<'a>(
    env: Env<'a>,
    host: ResourceArc<Host>,
    reply_ref: Term<'a>,
    user: String,
    server: String,
) -> NifResult<Atom> {
    let budget = host.budget;
    spawn_reply(env, reply_ref, budget, async move {
        let answer = match host.auth.shared_roster(&user, &server).await {
            Ok(a) => a,
            Err(e) => return Fetched::Trouble(escape(&e.to_string())),
        };
        let login = Jid::new(user, server.clone());
        Fetched::Ok {
            hash: answer_hash(&answer, &login, &host.policy),
            desired: desired(&answer, &server, &host.policy),
        }
    })
}

/// `roster_plan(Login, Groups, Names, Members, LoginGroups, KnownNames) ->
/// [Action]`: the core's plan (pure, microseconds per member). On a dirty
/// CPU scheduler: a group of 200,000 members takes ~0.2 s, far beyond the
/// 1 ms a normal scheduler may be held.
#[rustler::nif(schedule = "DirtyCpu")]
fn roster_plan<'a>(
    env: Env<'a>,
    login: roster::JidTerm,
    groups: Vec<roster::GroupTerm>,
    names: Vec<roster::NameTerm>,
    members: Vec<(String, Vec<roster::JidTerm>)>,
    login_groups: Vec<String>,
    known_names: Vec<roster::NameTerm>,
) -> Vec<Term<'a>> {
    let desired = roster::desired_from(groups, names);
    let current = roster::current_from(members, login_groups, known_names);
    plan(&desired, &Jid::new(login.0, login.1), &current)
        .iter()
        .map(|a| roster::action_term(env, a))
        .collect()
}

/// `doctor(Handle, Ref, Server) -> {ok, BudgetMs}`, then `{Ref, [{Status,
/// Line}]}` within `BudgetMs`: the core's checks of this host's set-up
/// (`ejabberdctl cloud_auth_doctor HOST`), `Status` `pass | warn | fail`,
/// `Line` as `cloudauth doctor` prints it (never a secret).
#[rustler::nif]
fn doctor<'a>(
    env: Env<'a>,
    host: ResourceArc<Host>,
    reply_ref: Term<'a>,
    server: String,
) -> NifResult<(Atom, u64)> {
    let budget = host.doctor_budget;
    spawn_reply(env, reply_ref, budget, async move {
        host.doctor(&server)
            .await
            .into_iter()
            .map(|c| {
                let status = match c.status {
                    Status::Pass => atoms::pass(),
                    Status::Warn => atoms::warn(),
                    Status::Fail => atoms::fail(),
                };
                (status, c.to_string())
            })
            .collect::<Vec<(Atom, String)>>()
    })?;
    Ok((
        atoms::ok(),
        u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
    ))
}

/// `schema() -> [{Option, Default | nil}]`: every ejabberd option the core's
/// settings schema has, with its default as it would be written, so that
/// the Erlang module's option list can be checked against it.
#[rustler::nif]
fn schema() -> Vec<(String, Option<String>)> {
    cloudauth_core::catalogue::all()
        .into_iter()
        .filter(|s| host::in_vm(s))
        .filter_map(|s| s.vm_name().map(|n| (n, s.default.map(str::to_string))))
        .collect()
}

/// `stats(Handle) -> Text`: the host's counters as OpenMetrics text
/// (decisions, backend latency and failures, requests in flight and
/// waiting per backend host, coalesced checks, throttling noticed).
#[rustler::nif]
fn stats(host: ResourceArc<Host>) -> String {
    host.render_stats()
}

/// `forget(Handle, User, Server) -> {ok, Jid} | {error, Why}`: drops the
/// user's password cache row (in a cluster: through the row writer) and
/// known-user entry. Erlang then clears the roster digest and kicks the
/// sessions (`ejabberdctl cloud_auth_forget`).
#[rustler::nif(schedule = "DirtyIo")]
fn forget(host: ResourceArc<Host>, user: Binary, server: Binary) -> Result<String, String> {
    let (Ok(user), Ok(server)) = (
        std::str::from_utf8(user.as_slice()),
        std::str::from_utf8(server.as_slice()),
    ) else {
        return Err("user and host must be UTF-8".into());
    };
    host.auth.forget(user, server).map_err(str::to_string)
}

/// `sweep_every(Handle) -> Millis`: the account sweep's interval (0: off,
/// also without known users), for `ejabberd_auth_cloud_sweep`'s timer.
#[rustler::nif]
fn sweep_every(host: ResourceArc<Host>) -> u64 {
    host.auth
        .sweep_every()
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `sweep(Handle, Ref, Rows) -> ok`, then `{Ref, {Departed, Present}}`
/// (lists of `<<"user@host">>`): one account sweep by the core, which
/// dropped what it held for the departed already; Erlang closes their
/// sessions and takes them out of the shared roster, and re-reads the
/// present users' groups. `Rows` (`[{Jid, Confirmed}]`) are the cluster's
/// known users (cache storage mnesia), lent first so that the sweep sees
/// them all; `[]` for the other storages.
#[rustler::nif]
fn sweep<'a>(
    env: Env<'a>,
    host: ResourceArc<Host>,
    reply_ref: Term<'a>,
    rows: Vec<(String, u64)>,
) -> NifResult<Atom> {
    if let Some(lent) = &host.lent_known {
        for (jid, confirmed) in &rows {
            lent.lend(jid, Some(*confirmed));
        }
    }
    // A sweep of many users in batches takes a while; never longer than
    // its interval is useful, and never less than 5 minutes is allowed.
    let every = host.auth.sweep_every().unwrap_or_default();
    let budget = every.max(std::time::Duration::from_secs(300));
    spawn_reply(env, reply_ref, budget, async move {
        let report = host.auth.sweep().await;
        (report.departed, report.present)
    })
}

/// `noop() -> ok`: the floor of a NIF call, for benchmarks.
#[rustler::nif]
fn noop() -> Atom {
    atoms::ok()
}

/// `noop_async(Ref) -> ok`, then `{Ref, ok}`: the floor of an asynchronous
/// round trip through the runtime, for benchmarks.
#[rustler::nif]
fn noop_async<'a>(env: Env<'a>, reply_ref: Term<'a>) -> NifResult<Atom> {
    spawn_reply(env, reply_ref, std::time::Duration::from_secs(5), async {
        atoms::ok()
    })
}

/// `selftest_panic() -> no_return()`: panics inside a NIF call; the VM
/// raises `error:nif_panicked` in the caller and goes on.
#[rustler::nif]
fn selftest_panic() -> Atom {
    panic!("selftest: panic in a NIF call")
}

/// `selftest_panic_async(Ref) -> ok`, then `{Ref, {error, Why}}`: a panic
/// inside a runtime task still produces a reply.
#[rustler::nif]
fn selftest_panic_async<'a>(env: Env<'a>, reply_ref: Term<'a>) -> NifResult<Atom> {
    spawn_reply(env, reply_ref, std::time::Duration::from_secs(5), async {
        if reply_ref_never_matches() {
            return atoms::ok();
        }
        panic!("selftest: panic in a runtime task")
    })
}

/// Keeps the compiler from seeing the selftest panic as unconditional.
fn reply_ref_never_matches() -> bool {
    std::hint::black_box(false)
}

/// `set_log_sink(Pid) -> {ok, ok} | {error, Why}`: the core's log events go to
/// `Pid` as `{cloudauth_log, Level, Text}` from now on.
#[rustler::nif]
fn set_log_sink(pid: rustler::LocalPid) -> Result<Atom, String> {
    log::set_sink(pid).map(|()| atoms::ok())
}

fn load(_env: Env, _info: Term) -> bool {
    // No panic hook: panics already become Erlang errors (rustler catches
    // them) or `{error, ...}` replies; a hook would be the whole library's.
    true
}

rustler::init!("ejabberd_auth_cloud_nif", load = load);
