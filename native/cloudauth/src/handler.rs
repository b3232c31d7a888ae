//! Decisions on requests: what to answer, and one log line per decision.
//!
//! Never logs a password, a token or a secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudauth_core::departures::Departed;
use cloudauth_core::roster::{
    apply_changes, bucket_of, changes_since, desired, personal_roster, GroupPolicy, Jid,
    RosterVersion, BUCKETS,
};
use cloudauth_core::{Authenticator, Decision, Path, Verdict};
use tracing::{debug, info, warn};

use crate::monitor::Monitor;
use crate::request::Request;
use crate::roster_sync::RosterSync;
use crate::vocab::{Protocol, TroublePolicy};
use crate::wire::{BadInput, Reply, RosterReply};

/// Bad-input warnings per second, at most; the rest are counted and the
/// count is logged with the next warning, so that a flood of garbage cannot
/// flood the log (or slow the process down writing it).
const BAD_INPUT_WARNINGS_PER_SECOND: u64 = 10;

/// Most JIDs in one `departed` answer; the client asks again from the
/// version answered for the rest.
const MAX_DEPARTED_PER_REPLY: usize = 100;

/// Rate limit of bad-input warnings.
#[derive(Default)]
struct BadInputLog {
    /// (second of the current window, warnings in it, suppressed since the last one written)
    state: std::sync::Mutex<(u64, u64, u64)>,
}

impl BadInputLog {
    /// Logs `what` unless this second had its share; says how many were left out.
    fn warn(&self, what: std::fmt::Arguments<'_>) {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let suppressed = {
            let mut s = match self.state.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if s.0 != second {
                s.0 = second;
                s.1 = 0;
            }
            if s.1 >= BAD_INPUT_WARNINGS_PER_SECOND {
                s.2 += 1;
                return;
            }
            s.1 += 1;
            std::mem::take(&mut s.2)
        };
        if suppressed > 0 {
            warn!("{what} ({suppressed} more bad inputs not logged)");
        } else {
            warn!("{what}");
        }
    }
}

/// What one connection negotiated (generic protocol: `hello`).
#[derive(Debug, Default)]
pub struct Session {
    /// `client-address` granted: `authfrom` requests are taken.
    client_address: bool,
}

/// What to do with one incoming unit.
#[derive(Debug)]
pub enum Step {
    /// Answer now (no I/O needed); emit the note once the answer is written.
    Answer(Reply, Option<Note>),
    /// End the session.
    Quit,
    /// Needs the cloud: run [`Handler::ask`].
    Ask(Request),
}

/// Turns requests into replies using the core's decisions.
pub struct Handler {
    auth: Arc<Authenticator>,
    on_trouble: TroublePolicy,
    roster: Option<Arc<RosterSync>>,
    roster_policy: GroupPolicy,
    monitor: Arc<Monitor>,
    bad_input: BadInputLog,
}

/// The protocol answer for a verdict under a trouble policy.
pub fn reply_for(verdict: &Verdict, on_trouble: TroublePolicy) -> Reply {
    match (verdict, on_trouble) {
        (Verdict::Yes, _) => Reply::Yes,
        (Verdict::No, _) | (Verdict::Trouble(_), TroublePolicy::Fail) => Reply::No,
        (Verdict::Trouble(_), TroublePolicy::TempFail) => Reply::TempFail,
    }
}

/// The log line for one decision. Emitted after its reply is written:
/// formatting a log line costs more than checking a token.
#[derive(Debug)]
pub struct Note {
    op: &'static str,
    user: String,
    domain: String,
    decision: Decision,
    elapsed: Duration,
}

impl Note {
    fn new(
        op: &'static str,
        user: String,
        domain: String,
        decision: Decision,
        started: Instant,
    ) -> Self {
        Note {
            op,
            user,
            domain,
            decision,
            elapsed: started.elapsed(),
        }
    }

    /// Writes the line: JID, operation, outcome, path and latency; never a password.
    pub fn emit(self) {
        let Note {
            op,
            user,
            domain,
            decision: d,
            elapsed,
        } = self;
        let us = elapsed.as_micros();
        let path = d.path.word();
        match (&d.verdict, d.reason) {
            // Not asked on purpose: no trouble with the backend.
            (Verdict::Trouble(cause), _) if d.path == Path::Throttled || cause.not_asked() => {
                info!("{op} {user}@{domain}: cannot tell via {path} in {us} us: {cause}")
            }
            (Verdict::Trouble(cause), _) if cause.named_own() => {
                warn!("{op} {user}@{domain}: cannot tell via {path} in {us} us: this server's own trouble: {cause}")
            }
            (Verdict::Trouble(cause), _) => {
                warn!("{op} {user}@{domain}: backend trouble via {path} in {us} us: {cause}")
            }
            (v, Some(reason)) => info!(
                "{op} {user}@{domain}: {} via {path} ({reason}) in {us} us",
                v.word()
            ),
            (v, None) => info!("{op} {user}@{domain}: {} via {path} in {us} us", v.word()),
        }
    }
}

impl Handler {
    /// A handler deciding with `auth`, answering trouble per `on_trouble`,
    /// syncing shared rosters after logins when `roster` is given, and
    /// answering `roster` requests with the groups `roster_policy` keeps.
    pub fn new(
        auth: Arc<Authenticator>,
        on_trouble: TroublePolicy,
        roster: Option<Arc<RosterSync>>,
        roster_policy: GroupPolicy,
        monitor: Arc<Monitor>,
    ) -> Self {
        Handler {
            auth,
            on_trouble,
            roster,
            roster_policy,
            monitor,
            bad_input: BadInputLog::default(),
        }
    }

    /// What is counted for monitoring.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// After a login confirmed by a token, the cloud or a fresh cache entry
    /// (not the cache standing in for an unreachable cloud), the user's
    /// shared roster is synced in a task of its own: the reply never waits.
    fn after_login(&self, user: &str, domain: &str, d: &Decision) {
        let Some(roster) = &self.roster else { return };
        if !d.verdict.is_yes() || d.path == Path::Fallback {
            return;
        }
        let (roster, auth) = (Arc::clone(roster), Arc::clone(&self.auth));
        let (user, domain) = (user.to_string(), domain.to_string());
        tokio::spawn(async move {
            if let Err(e) = roster.sync(&auth, &user, &domain).await {
                warn!("shared roster of {user}@{domain} not synced: {e}");
            }
        });
    }

    /// Decides whatever needs no cloud: bad input, unsupported commands,
    /// `quit`, token logins and password-cache hits (a lookup, no bcrypt).
    pub fn triage(
        &self,
        parsed: Result<Request, BadInput>,
        protocol: Protocol,
        session: &mut Session,
    ) -> Step {
        match parsed {
            Err(bad) => {
                self.bad_input.warn(format_args!("{bad}; answered no"));
                Step::Answer(Reply::No, None)
            }
            Ok(Request::Quit) => Step::Quit,
            // Only a protocol with a third answer to negotiate answers it;
            // the others have theirs (or none) by their own rules.
            Ok(Request::Hello {
                tristate,
                client_address,
                departed,
            }) if protocol.answers().hello => {
                // `departed` is spoken only where it is answered and there
                // is something to poll for.
                let departed =
                    departed && protocol.answers().departed && self.auth.sweep_every().is_some();
                debug!("hello: the client asks for tristate: {tristate}, client-address: {client_address}; departed granted: {departed}");
                session.client_address = client_address;
                Step::Answer(
                    Reply::Hello {
                        tristate,
                        client_address,
                        departed,
                    },
                    None,
                )
            }
            Ok(Request::Hello { .. }) => {
                info!(
                    "hello: not answered in the {} protocol; answered no",
                    protocol.label()
                );
                Step::Answer(Reply::No, None)
            }
            Ok(Request::Unsupported { command }) => {
                info!("{command}: not supported (accounts live in the cloud); answered no");
                Step::Answer(Reply::No, None)
            }
            Ok(Request::Auth {
                client: Some(_), ..
            }) if !session.client_address => {
                self.bad_input.warn(format_args!(
                    "bad request: authfrom without hello:client-address first; answered no"
                ));
                Step::Answer(Reply::No, None)
            }
            Ok(Request::Auth {
                user,
                domain,
                password,
                client,
            }) => {
                let started = Instant::now();
                let quick = self
                    .auth
                    .check_token(&user, &domain, &password)
                    .or_else(|| self.auth.check_cache(&user, &domain, &password));
                match quick {
                    Some(d) => {
                        self.after_login(&user, &domain, &d);
                        self.monitor.requests.record(protocol.label(), "auth", &d);
                        Step::Answer(
                            reply_for(&d.verdict, self.on_trouble),
                            Some(Note::new("auth", user, domain, d, started)),
                        )
                    }
                    None => Step::Ask(Request::Auth {
                        user,
                        domain,
                        password,
                        client,
                    }),
                }
            }
            Ok(Request::Departed { .. }) if !protocol.answers().departed => {
                info!(
                    "departed: not answered in the {} protocol; answered no",
                    protocol.label()
                );
                Step::Answer(Reply::No, None)
            }
            Ok(Request::Departed { domain, since }) => {
                Step::Answer(Reply::Departed(self.departed(&domain, since)), None)
            }
            // Only a protocol with a roster answer (the generic one:
            // mod_auth_cloudauth's) answers it.
            Ok(Request::Roster { .. }) if !protocol.answers().roster => {
                info!(
                    "roster: not answered in the {} protocol; answered no",
                    protocol.label()
                );
                Step::Answer(Reply::No, None)
            }
            Ok(req @ (Request::IsUser { .. } | Request::Roster { .. })) => Step::Ask(req),
        }
    }

    /// The accounts of `domain` the sweep found gone since version `since`
    /// (none: only the version now, for a client starting to poll); `None`
    /// when the sweep is off.
    fn departed(&self, domain: &str, since: Option<u64>) -> Option<Departed> {
        self.auth.sweep_every()?;
        let log = self.auth.departures();
        let Some(since) = since else {
            return Some(Departed {
                jids: Vec::new(),
                version: log.version(),
                complete: true,
            });
        };
        let domain = cloudauth_core::jid::canonical("x", domain)
            .map_or_else(|_| domain.to_ascii_lowercase(), |(_, d)| d.into_owned());
        let d = log.since(since, Some(&domain), MAX_DEPARTED_PER_REPLY);
        if !d.jids.is_empty() {
            info!("departed {domain}: {} accounts since {since}", d.jids.len());
        }
        Some(d)
    }

    /// The roster answer for `user@domain` when the client holds version
    /// `known`: the buckets that changed since, or "unchanged"; a cloud that
    /// cannot be asked is "unknown" (keep yours), never an empty roster.
    async fn roster(&self, user: &str, domain: &str, known: Option<&RosterVersion>) -> RosterReply {
        let started = Instant::now();
        let answer = match self.auth.shared_roster(user, domain).await {
            Ok(a) => a,
            Err(e) => {
                warn!("roster {user}@{domain}: cannot tell ({e}); answered unknown");
                return RosterReply::Unknown;
            }
        };
        let login = Jid::new(user, domain);
        let want = desired(&answer, domain, &self.roster_policy);
        for (group, why) in &want.skipped {
            info!("roster {login}: group {group:?} left out ({why})");
        }
        let (items, own_name) = personal_roster(&want, &login);
        let contacts = items.len();
        let buckets = changes_since(items, &own_name, known);
        let ms = started.elapsed().as_millis();
        if buckets.is_empty() {
            info!("roster {login}: unchanged ({contacts} contacts) in {ms} ms");
            return RosterReply::Unchanged;
        }
        let sent: usize = buckets.iter().map(|b| b.items.len()).sum();
        info!(
            "roster {login}: {} of {BUCKETS} buckets changed, {sent} of {contacts} contacts sent, in {ms} ms",
            buckets.len()
        );
        RosterReply::Changes {
            own_bucket: bucket_of(&login),
            own_name,
            version: apply_changes(known, &buckets),
            buckets,
        }
    }

    /// Decides a request that needs the cloud; emit the note once the reply is written.
    pub async fn ask(&self, req: Request, protocol: Protocol) -> (Reply, Option<Note>) {
        let started = Instant::now();
        let (op, user, domain, d) = match req {
            Request::Auth {
                user,
                domain,
                password,
                client,
            } => {
                let d = self
                    .auth
                    .auth_backend_from(&user, &domain, &password, client)
                    .await;
                self.after_login(&user, &domain, &d);
                ("auth", user, domain, d)
            }
            Request::IsUser { user, domain } => {
                let d = self.auth.is_user(&user, &domain).await;
                ("isuser", user, domain, d)
            }
            Request::Roster {
                user,
                domain,
                known,
            } => {
                let r = self.roster(&user, &domain, known.as_ref()).await;
                return (Reply::Roster(r), None);
            }
            Request::Quit
            | Request::Hello { .. }
            | Request::Departed { .. }
            | Request::Unsupported { .. } => return (Reply::No, None),
        };
        self.monitor.requests.record(protocol.label(), op, &d);
        let reply = reply_for(&d.verdict, self.on_trouble);
        (reply, Some(Note::new(op, user, domain, d, started)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudauth_core::BackendError;

    #[test]
    fn trouble_policy() {
        let t = Verdict::Trouble(BackendError::Timeout(std::time::Duration::from_secs(1)).into());
        assert_eq!(reply_for(&t, TroublePolicy::TempFail), Reply::TempFail);
        assert_eq!(reply_for(&t, TroublePolicy::Fail), Reply::No);
        assert_eq!(reply_for(&Verdict::No, TroublePolicy::TempFail), Reply::No);
        assert_eq!(reply_for(&Verdict::Yes, TroublePolicy::Fail), Reply::Yes);
    }
}
