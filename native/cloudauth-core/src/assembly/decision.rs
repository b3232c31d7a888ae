//! The authentication decision: tokens first, then the backend.
//!
//! `auth` tries the domain's token formats in order; a valid token admits
//! the user without asking the backend, a token a format must refuse is a
//! "no", and a password no format claims goes to the backend.
//! `isuser` always asks the backend. With a password cache, a fresh cache
//! entry answers before the cloud, and when the cloud is in trouble an entry
//! within the unreachable TTL still admits the user. Identical checks in
//! flight share one cloud request.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::backend::{Account, BackendError, GateError};
use crate::bruteforce::Prospect;
use crate::cache::{Lookup, PasswordCache, Rules};
use crate::clock::Clock;
use crate::coalesce::Coalescer;
use crate::departures::DepartureLog;
use crate::jid;
use crate::known_users::{Background, KnownUsers, Standing};
use crate::refusals::RecentRefusals;
use crate::roster::SharedRoster;
use crate::settings::{DomainSettings, SettingsResolver};
use crate::throttle::{FailureThrottle, ThrottleSettings};
use crate::token::replay::USED_ELSEWHERE;
use crate::token::{Claim, TokenCheck};

/// The answer to one question: yes, no, or the cloud could not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated / the user exists.
    Yes,
    /// Refused / no such user.
    No,
    /// Neither: the backend could not be asked or answered nonsense, or
    /// the decision itself could not be made; the cause is kept for the log.
    Trouble(Trouble),
}

/// Why a decision is neither yes nor no: trouble with the backend, or a
/// cause of the decision's own, which says nothing about the backend (the
/// outage rules never stand in for it: a busy or paused cloudauth is no
/// unreachable Nextcloud).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Trouble {
    /// The backend: transport, HTTP, its answers, its own pauses.
    #[error(transparent)]
    Backend(BackendError),
    /// The decision's own.
    #[error(transparent)]
    Own(OwnCause),
}

/// The decision's own reasons for "cannot tell".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnCause {
    /// Not asked: too many different wrong passwords for this user lately
    /// (the guessing throttle). Whether this password is right is not
    /// known, so it is "cannot tell", never "no".
    #[error(
        "not asked: too many different wrong passwords for this user lately; try again in {0} s"
    )]
    GuessingPaused(u64),
    /// This server's queue to the backend (the request gate) had no place.
    #[error(transparent)]
    Queue(GateError),
    /// No decision within the decision's deadline.
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    /// Local state needed for the answer could not be read or written.
    #[error("local state unavailable: {0}")]
    LocalState(&'static str),
}

impl From<BackendError> for Trouble {
    /// The gate's refusals travel with the backend's errors (they happen
    /// inside a backend call) but are this server's own.
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Gate(g) => Trouble::Own(OwnCause::Queue(g)),
            e => Trouble::Backend(e),
        }
    }
}

impl From<OwnCause> for Trouble {
    fn from(c: OwnCause) -> Self {
        Trouble::Own(c)
    }
}

impl Trouble {
    /// Whether the question was not asked on purpose (a pause that is
    /// already explained once in the log): the request's own log line is
    /// then no warning.
    pub fn not_asked(&self) -> bool {
        match self {
            Trouble::Backend(e) => e.not_asked(),
            Trouble::Own(c) => matches!(c, OwnCause::GuessingPaused(_)),
        }
    }

    /// Whether the log names it this server's own trouble (its queue to the
    /// backend full, local state), with no word on the backend, whose
    /// trouble it is not. A deadline is the decision's own too, but what ran
    /// out of time was mostly the backend's answer: it is said as backend
    /// trouble. cloudauth's log and the VM's (through the NIF) both ask here.
    pub fn named_own(&self) -> bool {
        matches!(
            self,
            Trouble::Own(OwnCause::Queue(_) | OwnCause::LocalState(_))
        )
    }
}

impl Verdict {
    /// True only for [`Verdict::Yes`].
    pub fn is_yes(&self) -> bool {
        matches!(self, Verdict::Yes)
    }

    /// A short word for logs: `yes`, `no`, `trouble`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Yes => "yes",
            Verdict::No => "no",
            Verdict::Trouble(_) => "trouble",
        }
    }
}

/// How a decision was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// From the JSXC token alone.
    Token,
    /// By asking the cloud.
    Backend,
    /// From a fresh password-cache entry.
    Cache,
    /// From the password cache because the cloud was in trouble.
    Fallback,
    /// Refused before any check (empty field, domain not served).
    Refused,
    /// The backend refused the same password a moment ago.
    Recent,
    /// Too many different wrong passwords for this user lately: paused.
    Throttled,
    /// Not asked: the backend's failure budget is spent, or its service
    /// blocks this server ([`crate::bruteforce`]).
    Withheld,
}

impl Path {
    /// One word, for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Path::Token => "token",
            Path::Backend => "backend",
            Path::Cache => "cache",
            Path::Fallback => "fallback",
            Path::Refused => "precheck",
            Path::Recent => "recent",
            Path::Throttled => "throttled",
            Path::Withheld => "withheld",
        }
    }

    /// A short word for logs.
    pub fn word(&self) -> &'static str {
        match self {
            Path::Token => "token",
            Path::Backend => "backend",
            Path::Cache => "cache",
            Path::Fallback => "cache (cloud unreachable)",
            Path::Refused => "precheck",
            Path::Recent => "recent refusal",
            Path::Throttled => "throttle",
            Path::Withheld => "failure budget",
        }
    }
}

/// A verdict with how it was reached and, where useful, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The answer.
    pub verdict: Verdict,
    /// Where it came from.
    pub path: Path,
    /// Extra detail for the log (never a password or token).
    pub reason: Option<&'static str>,
}

impl Decision {
    fn new(verdict: Verdict, path: Path, reason: Option<&'static str>) -> Self {
        Decision {
            verdict,
            path,
            reason,
        }
    }

    fn from_backend(r: Result<bool, BackendError>) -> Self {
        // A backend that did not ask on purpose (a refused service password
        // waiting for its file) withheld the question: logged as such, once.
        let path = match &r {
            Err(e) if e.not_asked() => Path::Withheld,
            _ => Path::Backend,
        };
        let verdict = match r {
            Ok(true) => Verdict::Yes,
            Ok(false) => Verdict::No,
            Err(e) => Verdict::Trouble(e.into()),
        };
        Decision::new(verdict, path, None)
    }
}

/// What the token formats made of a password, for callers that record
/// one-time tokens' use in a shared store themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    /// Decided.
    Decided(Decision),
    /// A one-time token new here: `if_new` when the shared store records
    /// the claim (none in force there), `if_used` when it holds one already.
    Claim {
        /// What to record.
        claim: Claim,
        /// The decision when the claim was recorded.
        if_new: Decision,
        /// The decision when a claim was in force already.
        if_used: Decision,
    },
}

/// Whom the guessing throttle and the refusal memory count a password
/// check against. Global settings serve every domain a client invents, and
/// for those the backend checks the bare user (Nextcloud ignores the
/// domain, JSXC tries `user` after `user@domain`): so for a domain without
/// settings of its own, guesses count against the user part, whatever the
/// domain (issue 24: 300 guesses at `alice@x<i>.invalid` all reached the
/// backend). Where the backend's answer may depend on the domain, each
/// (domain, password) is a guess of its own and a refusal is remembered for
/// its JID only; where it cannot, a refusal holds at every such domain.
/// Keys carry the settings' generation: after a domain is pointed at
/// another backend, its counts are not this one's.
struct Guess<'a> {
    throttle_key: String,
    refusal_key: String,
    /// What is digested with the key: the password, or the domain and it.
    secret: Cow<'a, str>,
}

impl<'a> Guess<'a> {
    fn new(
        settings: &DomainSettings,
        listed: bool,
        user: &str,
        domain: &str,
        password: &'a str,
    ) -> Self {
        let generation = settings.generation;
        let own = format!("{user}@{domain}\0{generation}");
        if listed {
            return Guess {
                throttle_key: own.clone(),
                refusal_key: own,
                secret: Cow::Borrowed(password),
            };
        }
        let any_domain = format!("{user}@*\0{generation}");
        if settings.backend.answer_depends_on_domain() {
            Guess {
                throttle_key: any_domain,
                refusal_key: own,
                secret: Cow::Owned(format!("{domain}\0{password}")),
            }
        } else {
            Guess {
                throttle_key: any_domain.clone(),
                refusal_key: any_domain,
                secret: Cow::Borrowed(password),
            }
        }
    }
}

/// Answers `auth` and `isuser` questions for any served domain.
pub struct Authenticator {
    pub(super) settings: Arc<dyn SettingsResolver>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cache: Option<Arc<PasswordCache>>,
    coalescer: Option<Coalescer>,
    pub(super) refusals: Option<RecentRefusals>,
    /// Pauses password checks for users with many wrong passwords lately.
    throttle: Option<FailureThrottle>,
    /// bcrypt runs at once, at most: each takes a core for ~0.25 s (cost 12).
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    /// Longest a decision may take, waits for bcrypt and the backend included.
    deadline: Option<Duration>,
    /// Users the backend confirmed, answering `isuser` without it.
    pub(super) known: Option<Arc<KnownUsers>>,
    /// Age of a cached password's last confirmation past which a hit is
    /// re-checked with the backend in the background.
    revalidate: Option<Duration>,
    /// Background checks in flight (coalesced, bounded).
    background: Arc<Background>,
    /// Accounts the sweep found gone, for servers that poll ([`crate::sweep`]).
    pub(super) departures: Arc<DepartureLog>,
    /// Known users the sweep asks about at once.
    pub(super) sweep_batch: usize,
    /// Interval of the account sweep, when on (it needs known users).
    sweep_every: Option<Duration>,
}

/// How long a wrong password is answered "no" from memory when the backend
/// asks for nothing longer: a client retrying a stale password then costs
/// neither a bcrypt run against the cache nor a backend request each time.
pub(crate) const REFUSAL_WINDOW: Duration = Duration::from_secs(10);

/// Cache entries per user part for domains without settings of their own
/// (global settings serve any domain name a client invents, and a backend
/// that ignores the domain accepts the password at each): past it the one
/// used longest ago goes, so invented domains cannot grow the cache.
pub const UNLISTED_DOMAINS_PER_USER: usize = 4;

/// Longest an answer waits for its password to be stored in the cache.
pub(crate) const STORE_WAIT: Duration = Duration::from_secs(1);

/// Longest wait for a bcrypt slot; past it the cache is not consulted (the
/// backend decides), so a flood of wrong passwords cannot delay others.
pub(crate) const BCRYPT_WAIT: Duration = Duration::from_millis(500);
/// How long [`Authenticator::start`] waits for the backends' start-up
/// checks (the ejabberd VM asks for at most 5 s at start).
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(5);

impl Authenticator {
    /// Builds the decision maker from its parts (no cache).
    pub fn new(settings: Arc<dyn SettingsResolver>, clock: Arc<dyn Clock>) -> Self {
        Authenticator {
            settings,
            clock: Arc::clone(&clock),
            cache: None,
            coalescer: Coalescer::new(),
            refusals: RecentRefusals::new(),
            throttle: FailureThrottle::new(ThrottleSettings::default()),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            deadline: None,
            known: None,
            revalidate: None,
            background: Arc::new(Background::default()),
            departures: Arc::new(DepartureLog::new(clock.now_unix().saturating_mul(1000))),
            sweep_batch: 4,
            sweep_every: None,
        }
    }

    /// Adds known users (kept in the password cache's storage).
    pub fn with_known_users(mut self, known: KnownUsers) -> Self {
        self.background = known.background();
        self.known = Some(Arc::new(known));
        self
    }

    /// Re-checks cache hits whose password the backend last confirmed
    /// longer than `after` ago, in the background (zero: never).
    pub fn with_revalidation(mut self, after: Duration) -> Self {
        self.revalidate = (!after.is_zero()).then_some(after);
        self
    }

    /// The known users, if any.
    pub fn known_users(&self) -> Option<&Arc<KnownUsers>> {
        self.known.as_ref()
    }

    /// Drops everything this process holds for `user@domain`: its password
    /// cache row, known-user entry (a remembered "no" included) and the
    /// refusals remembered for it. For an admin who just disabled the
    /// account (or enabled it again); closing its sessions is the server's part.
    pub fn forget(&self, user: &str, domain: &str) -> Result<String, &'static str> {
        let (user, domain) = jid::canonical(user, domain)?;
        let jid = format!("{user}@{domain}");
        if let Some(cache) = &self.cache {
            cache.remove(&jid);
        }
        if let Some(known) = &self.known {
            known.forget(&jid);
        }
        self.forget_refusals(&user, &domain);
        Ok(jid)
    }

    /// Drops the refusals remembered for `user@domain` (under either key a
    /// [`Guess`] files them: the JID's own, or the user's at every domain
    /// without settings of its own).
    pub(super) fn forget_refusals(&self, user: &str, domain: &str) {
        let Some(r) = &self.refusals else { return };
        let (own, any) = (format!("{user}@{domain}\0"), format!("{user}@*\0"));
        r.forget(|key| key.starts_with(&own) || key.starts_with(&any));
    }

    /// Sets how many known users the account sweep asks about at once (at least 1).
    pub fn with_sweep_batch(mut self, batch: usize) -> Self {
        self.sweep_batch = batch.max(1);
        self
    }

    /// Sweeps the known users every `every` (zero: never); the adapter
    /// runs the timer ([`Authenticator::sweep`]), this only says whether and when.
    pub fn with_sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = (!every.is_zero()).then_some(every);
        self
    }

    /// The account sweep's interval, when it is on (it needs known users).
    pub fn sweep_every(&self) -> Option<Duration> {
        self.sweep_every.filter(|_| self.known.is_some())
    }

    /// The accounts the sweep found gone, for servers that poll for them.
    pub fn departures(&self) -> &Arc<DepartureLog> {
        &self.departures
    }

    /// Bounds every decision by `deadline` (the request timeout and a
    /// margin): past it the answer is "cannot tell", whatever was waited for.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Replaces the default password-guessing throttle (`failures` 0: none).
    pub fn with_throttle(mut self, settings: ThrottleSettings) -> Self {
        self.throttle = FailureThrottle::new(settings);
        self
    }

    /// Adds a password cache.
    pub fn with_cache(mut self, cache: PasswordCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Checks that joined an identical one in flight instead of asking the backend again.
    pub fn coalesced(&self) -> u64 {
        self.coalescer.as_ref().map_or(0, Coalescer::joined)
    }

    /// The password cache, if any.
    pub fn cache(&self) -> Option<&Arc<PasswordCache>> {
        self.cache.as_ref()
    }

    /// Checks only the token formats; `None` when none of the domain's
    /// formats takes the password for a token (or the domain is not served).
    /// A one-time token whose use a shared store must confirm (a
    /// [`ClaimReplayGuard`](crate::token::ClaimReplayGuard)) cannot be
    /// confirmed here: that is "cannot tell"; such callers use
    /// [`Authenticator::check_token_claiming`].
    pub fn check_token(&self, user: &str, domain: &str, password: &str) -> Option<Decision> {
        self.check_token_claiming(user, domain, password)
            .map(|answer| match answer {
                TokenAnswer::Decided(d) => d,
                TokenAnswer::Claim { .. } => Decision::new(
                    Verdict::Trouble(
                        OwnCause::LocalState(
                            "one-time token: its use was not confirmed by the shared store",
                        )
                        .into(),
                    ),
                    Path::Token,
                    None,
                ),
            })
    }

    /// The token formats' answer, where a one-time token new on this node
    /// comes back as a [`Claim`] with the decision for either outcome of
    /// recording it in the shared store (insert if absent): the caller
    /// only records, the decisions are made here.
    pub fn check_token_claiming(
        &self,
        user: &str,
        domain: &str,
        password: &str,
    ) -> Option<TokenAnswer> {
        let (user, domain) = match jid::canonical(user, domain) {
            Ok(pair) => pair,
            Err(why) => {
                return Some(TokenAnswer::Decided(Decision::new(
                    Verdict::No,
                    Path::Refused,
                    Some(why),
                )))
            }
        };
        let (user, domain) = (user.as_ref(), domain.as_ref());
        let settings = self.settings.resolve(domain)?;
        let now = self.clock.now_unix();
        let token = |verdict, why| TokenAnswer::Decided(Decision::new(verdict, Path::Token, why));
        settings
            .tokens
            .iter()
            .find_map(|format| match format.check(user, domain, password, now) {
                TokenCheck::NotToken => None,
                TokenCheck::Valid => Some(token(Verdict::Yes, None)),
                TokenCheck::Refused(why) => Some(token(Verdict::No, Some(why))),
                TokenCheck::Unknown(why) => Some(token(
                    Verdict::Trouble(OwnCause::LocalState(why).into()),
                    None,
                )),
                TokenCheck::Claim(claim) => Some(TokenAnswer::Claim {
                    claim,
                    if_new: Decision::new(Verdict::Yes, Path::Token, None),
                    if_used: Decision::new(Verdict::No, Path::Token, Some(USED_ELSEWHERE)),
                }),
            })
    }

    /// Checks only the password cache's fast part (timestamps and the
    /// in-memory digest, never bcrypt, never the cloud): `Some(yes)` on a
    /// hit, `None` when only [`Authenticator::auth_backend`] can tell.
    pub fn check_cache(&self, user: &str, domain: &str, password: &str) -> Option<Decision> {
        let cache = self.cache.as_ref()?;
        if user.is_empty() || password.is_empty() {
            return None;
        }
        let (user, domain) = jid::canonical(user, domain).ok()?;
        self.settings.resolve(&domain)?;
        let jid = format!("{user}@{domain}");
        // A hit due for revalidation takes the full path, which answers it
        // from the cache too and starts the background check there.
        if self.revalidation_due(cache, &jid) {
            return None;
        }
        match cache.lookup(&jid, password, self.clock.now_unix(), Rules::Normal) {
            Lookup::Hit => Some(Decision::new(Verdict::Yes, Path::Cache, None)),
            Lookup::Miss | Lookup::Verify { .. } => None,
        }
    }

    /// What the backends find out at start ([`crate::backend::Backend::start`]),
    /// each backend once; the caller runs it in a task of its own (bounded
    /// by [`START_DEADLINE`]) so that serving never waits for it.
    pub async fn start(&self) {
        let served = self.settings.served();
        let mut backends: Vec<&Arc<dyn crate::backend::Backend>> = Vec::new();
        for s in &served {
            if !backends.iter().any(|b| Arc::ptr_eq(b, &s.backend)) {
                backends.push(&s.backend);
            }
        }
        let work: Vec<_> = backends.iter().filter_map(|b| b.start()).collect();
        if tokio::time::timeout(START_DEADLINE, futures_util::future::join_all(work))
            .await
            .is_err()
        {
            debug!("start: the backends' checks took longer than {START_DEADLINE:?}; they go on at the first request");
        }
    }

    /// Is `password` right for `user@domain`?
    ///
    /// A valid token answers at once; an expired token or one made for
    /// another JID is refused without asking the cloud (the cloud cannot
    /// accept it either); anything else is a password for the cloud.
    pub async fn auth(&self, user: &str, domain: &str, password: &str) -> Decision {
        if let Some(d) = self.check_token(user, domain, password) {
            return d;
        }
        self.auth_backend(user, domain, password).await
    }

    /// Everything after the token check in [`Authenticator::auth`]: the
    /// cache, then the cloud (coalesced), then the cache's outage rules.
    /// For callers that already ran [`Authenticator::check_token`] and got `None`.
    pub async fn auth_backend(&self, user: &str, domain: &str, password: &str) -> Decision {
        self.auth_backend_from(user, domain, password, None).await
    }

    /// [`Authenticator::auth_backend`] for a user whose client connects from
    /// `client` (when the XMPP server told it): the backend may pass it on
    /// (Nextcloud's `X-Forwarded-For`) and the failure budget may count
    /// the check's failure for that address instead of for this server.
    pub async fn auth_backend_from(
        &self,
        user: &str,
        domain: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Decision {
        self.within_deadline(self.auth_backend_unbounded(user, domain, password, client))
            .await
    }

    async fn within_deadline(&self, work: impl std::future::Future<Output = Decision>) -> Decision {
        match self.deadline {
            None => work.await,
            Some(d) => match tokio::time::timeout(d, work).await {
                Ok(decision) => decision,
                Err(_) => Decision::new(
                    Verdict::Trouble(OwnCause::Deadline(d).into()),
                    Path::Backend,
                    Some("no decision within the deadline"),
                ),
            },
        }
    }

    async fn auth_backend_unbounded(
        &self,
        user: &str,
        domain: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Decision {
        if user.is_empty() || domain.is_empty() || password.is_empty() {
            return Decision::new(Verdict::No, Path::Refused, Some("empty field"));
        }
        let (user, domain) = match jid::canonical(user, domain) {
            Ok(pair) => pair,
            Err(why) => return Decision::new(Verdict::No, Path::Refused, Some(why)),
        };
        let (user, domain) = (user.as_ref(), domain.as_ref());
        let Some(settings) = self.settings.resolve(domain) else {
            return Decision::new(Verdict::No, Path::Refused, Some("domain not served"));
        };
        let jid = format!("{user}@{domain}");
        // Before the cache: a refused password costs no bcrypt run either.
        let window = settings
            .backend
            .repeat_refusal_window()
            .unwrap_or(REFUSAL_WINDOW);
        let refusals = self.refusals.as_ref();
        // Windows, not dates: monotonic, so a stepped wall clock moves no pause.
        let now = self.clock.monotonic_secs();
        let guess = Guess::new(
            &settings,
            self.settings.listed(domain),
            user,
            domain,
            password,
        );
        if refusals.is_some_and(|r| r.remembers(&guess.refusal_key, &guess.secret, now)) {
            return Decision::new(
                Verdict::No,
                Path::Recent,
                Some("the same wrong password as a moment ago; not sent to the backend again"),
            );
        }
        // Before the throttle (it pauses guesses, and a cached right
        // password is none), after the recent refusals (a wrong password
        // refused a moment ago costs no bcrypt run). Tokens were decided before.
        if self.cache_admits(&jid, password, Rules::Normal).await {
            self.revalidate_in_background(&settings, user, domain, &jid, password, client);
            return Decision::new(Verdict::Yes, Path::Cache, None);
        }
        // After the recent refusals (a stale password is no new guess),
        // before the backend: a paused user costs it nothing. The attempt
        // is counted in flight until dropped.
        let _attempt = match self
            .throttle
            .as_ref()
            .map(|t| t.attempt(&guess.throttle_key, &guess.secret, now))
        {
            // Unknown whether this password is right: "cannot tell" (a
            // temporary failure to the client), never "no".
            Some(Err(until)) => {
                return Decision::new(
                    Verdict::Trouble(OwnCause::GuessingPaused(until.saturating_sub(now)).into()),
                    Path::Throttled,
                    None,
                )
            }
            Some(Ok(attempt)) => Some(attempt),
            None => None,
        };
        // After the throttle, before the backend: a check that may be
        // recorded as a failed login spends the backend's failure budget,
        // the likeliest successes first.
        let _spend = match settings.backend.failure_budget() {
            None => None,
            Some(budget) => match budget.admit(user, client, self.prospect(&guess, &jid, now)) {
                Ok(spend) => Some(spend),
                Err(spent) => {
                    return self
                        .outage_answer(&jid, password, spent.into(), Path::Withheld)
                        .await
                }
            },
        };
        match self
            .ask_auth(&settings, user, domain, &jid, password, client)
            .await
        {
            Ok(true) => {
                if let Some(t) = &self.throttle {
                    t.admitted(&guess.throttle_key, &guess.secret, now);
                }
                self.cache_store(user, domain, &jid, password).await;
                if let Some(known) = &self.known {
                    known.confirm(&jid, self.clock.now_unix());
                }
                Decision::new(Verdict::Yes, Path::Backend, None)
            }
            Ok(false) => {
                self.drop_refused_row(&jid, password).await;
                // Trouble is never counted: "cannot tell" must not turn into "no".
                if let Some(t) = &self.throttle {
                    t.refused(&guess.throttle_key, &guess.secret, now);
                }
                if let Some(r) = refusals {
                    r.remember(
                        &guess.refusal_key,
                        &guess.secret,
                        now.saturating_add(window.as_secs()),
                        now,
                    );
                }
                Decision::new(Verdict::No, Path::Backend, None)
            }
            Err(e) => self.outage_answer(&jid, password, e, Path::Backend).await,
        }
    }

    /// When the backend cannot be asked or could not answer: the password
    /// cache's outage rules, else "cannot tell" (never "no").
    async fn outage_answer(
        &self,
        jid: &str,
        password: &str,
        e: BackendError,
        path: Path,
    ) -> Decision {
        if e.backend_unreachable() && self.cache_admits(jid, password, Rules::Unreachable).await {
            warn!("{jid}: cloud trouble ({e}); admitted by the password cache");
            Decision::new(Verdict::Yes, Path::Fallback, None)
        } else {
            Decision::new(Verdict::Trouble(e.into()), path, None)
        }
    }

    /// After the backend refused `password`: a cached row it matches (the
    /// password changed in the cloud; the row was too old for a hit, or no
    /// bcrypt slot was free) is removed, or it would admit the old password
    /// again while the backend is unreachable. A row for another password
    /// (the user's right one, say) stays: a wrong guess must not take the
    /// outage fallback away from its owner. The check runs in its own task
    /// so that a decision's deadline cannot leave the row behind.
    async fn drop_refused_row(&self, jid: &str, password: &str) {
        let Some(cache) = &self.cache else { return };
        let Some(pwhash) = cache.stored_hash(jid) else {
            return;
        };
        let (c, j, p) = (Arc::clone(cache), jid.to_string(), password.to_string());
        let slots = Arc::clone(&self.bcrypt_slots);
        let check = tokio::spawn(async move {
            if c.matches_hot(&j, &p, &pwhash) {
                c.remove(&j);
                return;
            }
            let Ok(slot) = slots.acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                if c.hash_matches(&p, &pwhash) {
                    c.remove(&j);
                }
            })
            .await;
        });
        let _ = check.await;
    }

    /// How likely a password check is to succeed: a user who logged in
    /// before (a cache row, or a password the backend accepted) and was
    /// not refused lately.
    fn prospect(&self, guess: &Guess<'_>, jid: &str, now: u64) -> Prospect {
        let standing = self
            .throttle
            .as_ref()
            .map(|t| t.standing(&guess.throttle_key, now));
        let refused_lately = standing.is_some_and(|s| s.refused > 0);
        let known = standing.is_some_and(|s| s.accepted_before)
            || self.cache.as_ref().is_some_and(|c| c.knows(jid));
        if known && !refused_lately {
            Prospect::Likely
        } else {
            Prospect::Unlikely
        }
    }

    async fn ask_auth(
        &self,
        settings: &DomainSettings,
        user: &str,
        domain: &str,
        jid: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<bool, BackendError> {
        let who = Account::new(user, settings.auth_domain(domain)).from_client(client);
        let work = settings.backend.auth(who, password);
        match &self.coalescer {
            Some(c) => c.run("auth", jid, password, || work).await,
            None => work.await,
        }
    }

    /// Whether the cache admits the pair under `rules` (bcrypt off the async threads).
    async fn cache_admits(&self, jid: &str, password: &str, rules: Rules) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        let now = self.clock.now_unix();
        match cache.lookup(jid, password, now, rules) {
            Lookup::Hit => true,
            Lookup::Miss => false,
            Lookup::Verify { pwhash } => {
                // With the backend there to decide, a busy cache is skipped;
                // standing in for an unreachable backend, it is waited for
                // (within the decision's deadline).
                let wait = match rules {
                    Rules::Normal => BCRYPT_WAIT,
                    Rules::Unreachable => Duration::from_secs(86_400),
                };
                let slot =
                    tokio::time::timeout(wait, Arc::clone(&self.bcrypt_slots).acquire_owned())
                        .await;
                let Ok(Ok(slot)) = slot else {
                    debug!("{jid}: no bcrypt slot within {wait:?}; the cache is skipped");
                    return false;
                };
                let (c, j, p) = (Arc::clone(cache), jid.to_string(), password.to_string());
                tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    c.verify_slow(&j, &p, &pwhash, now)
                })
                .await
                .unwrap_or(false)
            }
        }
    }

    /// Stores a password the cloud accepted (bcrypt only when it changed).
    /// The answer waits for the hash while that is quick (so the entry is
    /// there for the next login): only when a bcrypt slot is free now, and
    /// at most [`STORE_WAIT`]. Behind a flood of bcrypt work (a login storm
    /// with the db cache) the hash is finished in the background: a client
    /// driving one request at a time (ejabberd's extauth) would otherwise
    /// wait for bcrypt on every answer and slow the storm below what the
    /// backend allows.
    async fn cache_store(&self, user: &str, domain: &str, jid: &str, password: &str) {
        let Some(cache) = &self.cache else { return };
        let now = self.clock.now_unix();
        if !self.settings.listed(domain) {
            let settings = &self.settings;
            cache.make_room(jid, user, UNLISTED_DOMAINS_PER_USER, |d| {
                !settings.listed(d)
            });
        }
        if let Some(h) = cache.reusable_hash(jid, password) {
            cache.record_verified(jid, password, &h, now);
            return;
        }
        let quick = self.bcrypt_slots.available_permits() > 0;
        let (c, j, p) = (Arc::clone(cache), jid.to_string(), password.to_string());
        let slots = Arc::clone(&self.bcrypt_slots);
        let store = tokio::spawn(async move {
            let Ok(slot) = slots.acquire_owned().await else {
                return;
            };
            let jid = j.clone();
            let stored = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                match c.hash(&p) {
                    Some(h) => {
                        c.record_verified(&j, &p, &h, now);
                        true
                    }
                    None => false,
                }
            })
            .await;
            if !matches!(stored, Ok(true)) {
                warn!("{jid}: password not cached (hashing failed or password longer than bcrypt takes)");
            }
        });
        if quick {
            let _ = tokio::time::timeout(STORE_WAIT, store).await;
        }
    }

    /// Does `user@domain` exist?
    pub async fn is_user(&self, user: &str, domain: &str) -> Decision {
        self.within_deadline(self.is_user_unbounded(user, domain))
            .await
    }

    async fn is_user_unbounded(&self, user: &str, domain: &str) -> Decision {
        if user.is_empty() || domain.is_empty() {
            return Decision::new(Verdict::No, Path::Refused, Some("empty field"));
        }
        let (user, domain) = match jid::canonical(user, domain) {
            Ok(pair) => pair,
            Err(why) => return Decision::new(Verdict::No, Path::Refused, Some(why)),
        };
        let (user, domain) = (user.as_ref(), domain.as_ref());
        let Some(settings) = self.settings.resolve(domain) else {
            return Decision::new(Verdict::No, Path::Refused, Some("domain not served"));
        };
        let jid = format!("{user}@{domain}");
        if let Some(known) = &self.known {
            let (now, mono) = (self.clock.now_unix(), self.clock.monotonic_secs());
            match known.standing(&jid, now, mono) {
                Standing::Known { due } => {
                    if due {
                        self.refresh_in_background(&settings, user, domain, &jid);
                    }
                    return Decision::new(Verdict::Yes, Path::Cache, Some("known user"));
                }
                Standing::Absent => {
                    return Decision::new(
                        Verdict::No,
                        Path::Recent,
                        Some("no such user a moment ago; not asked again"),
                    )
                }
                Standing::Unknown => {}
            }
        }
        let who = Account::new(user, settings.auth_domain(domain));
        let work = settings.backend.is_user(who);
        let r = match &self.coalescer {
            Some(c) => c.run("isuser", &jid, "", || work).await,
            None => work.await,
        };
        if let Ok(exists) = r {
            learn_existence(
                self.known.as_deref(),
                self.cache.as_deref(),
                self.clock.as_ref(),
                &jid,
                exists,
            );
        }
        Decision::from_backend(r)
    }

    /// A known user's entry is older than the refresh interval: asks the
    /// backend in the background (one per user, a few at once, through the
    /// backend's own gate); the answer to this question was given already.
    fn refresh_in_background(
        &self,
        settings: &Arc<DomainSettings>,
        user: &str,
        domain: &str,
        jid: &str,
    ) {
        let Some(known) = &self.known else { return };
        let Some(running) = self.background.start(format!("isuser\0{jid}")) else {
            return;
        };
        let (known, cache, clock) = (
            Arc::clone(known),
            self.cache.clone(),
            Arc::clone(&self.clock),
        );
        let settings = Arc::clone(settings);
        let (user, domain, jid) = (user.to_string(), domain.to_string(), jid.to_string());
        tokio::spawn(async move {
            let _running = running;
            let who = Account::new(&user, settings.auth_domain(&domain));
            match settings.backend.is_user(who).await {
                Ok(exists) => {
                    learn_existence(Some(&known), cache.as_deref(), clock.as_ref(), &jid, exists)
                }
                Err(e) => {
                    debug!("{jid}: known user not refreshed, the backend could not tell ({e})")
                }
            }
        });
    }

    /// Whether `jid`'s cached password was last confirmed by the backend
    /// longer than the revalidation interval ago.
    fn revalidation_due(&self, cache: &PasswordCache, jid: &str) -> bool {
        let Some(after) = self.revalidate else {
            return false;
        };
        cache
            .confirmed_at(jid)
            .is_some_and(|at| at.saturating_add(after.as_secs()) <= self.clock.now_unix())
    }

    /// A cache hit whose password the backend last confirmed longer than
    /// the revalidation interval ago: asks the backend again in the
    /// background (one per user, a few at once). That check may fail at
    /// Nextcloud, so it spends the failure budget like any check and is
    /// skipped, never counted as "no", when the budget withholds it. A "no"
    /// drops the row: the old password stops working.
    fn revalidate_in_background(
        &self,
        settings: &Arc<DomainSettings>,
        user: &str,
        domain: &str,
        jid: &str,
        password: &str,
        client: Option<IpAddr>,
    ) {
        let Some(cache) = &self.cache else { return };
        if !self.revalidation_due(cache, jid) {
            return;
        }
        let Some(running) = self.background.start(format!("auth\0{jid}")) else {
            return;
        };
        let (cache, clock) = (Arc::clone(cache), Arc::clone(&self.clock));
        let settings = Arc::clone(settings);
        let (user, domain) = (user.to_string(), domain.to_string());
        let (jid, password) = (jid.to_string(), password.to_string());
        tokio::spawn(async move {
            let _running = running;
            let _spend = match settings.backend.failure_budget() {
                None => None,
                Some(budget) => match budget.admit(&user, client, Prospect::Likely) {
                    Ok(spend) => Some(spend),
                    Err(_) => {
                        debug!("{jid}: cached password not revalidated: the failure budget withholds the check");
                        return;
                    }
                },
            };
            let who = Account::new(&user, settings.auth_domain(&domain)).from_client(client);
            match settings.backend.auth(who, &password).await {
                Ok(true) => {
                    if let Some(h) = cache.reusable_hash(&jid, &password) {
                        cache.record_verified(&jid, &password, &h, clock.now_unix());
                    }
                }
                Ok(false) => {
                    info!("{jid}: the backend no longer accepts the cached password; its cache row is dropped");
                    cache.remove(&jid);
                }
                Err(e) => debug!(
                    "{jid}: cached password not revalidated, the backend could not tell ({e})"
                ),
            }
        });
    }

    /// The users sharing a group with `user@domain`, from the domain's
    /// backend; trouble when the backend cannot give shared rosters.
    pub async fn shared_roster(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<SharedRoster, BackendError> {
        let (user, domain) = jid::canonical(user, domain).map_err(BackendError::Unsupported)?;
        let (user, domain) = (user.as_ref(), domain.as_ref());
        let settings = self
            .settings
            .resolve(domain)
            .ok_or(BackendError::Unsupported("domain not served"))?;
        let who = Account::new(user, settings.auth_domain(domain));
        let answer = match settings.backend.shared_roster(who) {
            Some(work) => work.await,
            None => Err(BackendError::Unsupported(
                "this backend gives no shared roster",
            )),
        };
        if let (Some(known), Ok(roster)) = (&self.known, &answer) {
            let now = self.clock.now_unix();
            for member in std::iter::once(user).chain(roster.keys().map(String::as_str)) {
                if let Ok((u, d)) = jid::canonical(member, domain) {
                    known.confirm(&format!("{u}@{d}"), now);
                }
            }
        }
        answer
    }
}

/// What the backend's answer to `isuser` teaches: a "yes" makes the user
/// known; a "no" (gone, or disabled) drops his known-user entry and his
/// cached password, and is remembered briefly.
pub(super) fn learn_existence(
    known: Option<&KnownUsers>,
    cache: Option<&PasswordCache>,
    clock: &dyn Clock,
    jid: &str,
    exists: bool,
) {
    if exists {
        if let Some(k) = known {
            k.confirm(jid, clock.now_unix());
        }
        return;
    }
    if let Some(k) = known {
        if k.standing(jid, clock.now_unix(), clock.monotonic_secs()) != Standing::Unknown {
            info!("{jid}: the backend no longer knows this user; dropped from the known users and the password cache");
        }
        k.absent(jid, clock.monotonic_secs());
    }
    if let Some(c) = cache {
        c.remove(jid);
    }
}
