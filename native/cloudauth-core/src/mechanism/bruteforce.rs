//! Nextcloud's brute-force protection as seen from this server, so that
//! cloudauth never gets the XMPP server's address blocked.
//!
//! Nextcloud 32/34 count failed logins per client address, and every XMPP
//! user comes from the XMPP server's address. After more than
//! `auth.bruteforce.max-attempts` (10) failures within 30 minutes, every
//! request with credentials from that address gets HTTP 429 — right
//! passwords, app passwords, the service account — until the failures of
//! the last 30 minutes fall back to the limit. A success deletes only that
//! login name's failures. (Nextcloud 24 delayed instead; the same budget
//! keeps that delay short.) See `NEXTCLOUD-API.md` in the shared notes.
//!
//! [`FailureBudget`] keeps, per Nextcloud, the failures this server caused
//! there within Nextcloud's window and lets a password check that may fail
//! through only while they stay below the limit less [`HEADROOM`]:
//!
//! * checks most likely to succeed (a user who logged in before and was not
//!   refused lately: [`Prospect::Likely`]) may spend the whole budget, the
//!   others (unknown names, a user who keeps failing) all but
//!   [`KEPT_FOR_LIKELY`] of it — except a login retrying after a failure of
//!   its own (a typo, then the right password: its success deletes its
//!   failures at Nextcloud) — and at most [`PER_LOGIN`] failures per login
//!   name: one guesser cannot spend the budget of the users who type right;
//! * a spent budget answers "cannot tell", never "no" (the caller then
//!   applies the password cache's outage rules); tokens, cache hits and the
//!   service account are not checks of this kind and go on working;
//! * Nextcloud's own figures correct the count: its public capabilities
//!   (`bruteforce.allow-listed`, `bruteforce.delay` for the caller's
//!   address) are read at the first request and every
//!   [`CAPABILITIES_INTERVAL`]; an allow-listed address has no budget, and
//!   a count above what Nextcloud reports (an admin's reset) is lowered;
//! * a block already on (a 429) lets at most one request through per
//!   [`BLOCK_PROBE_INTERVAL`] until an answer other than 429 comes back.
//!
//! Every change of state is logged once, with what to do. The budget is
//! shared by every backend instance for the same Nextcloud in this process
//! ([`FailureBudget::for_nextcloud`]): socket mode and the ejabberd VM have
//! one per Nextcloud. With a state database (`--db`) the failures are kept
//! there too ([`SharedLedger`]), so the processes of an extauth pool that
//! share it spend one budget (each keeps its own checks in flight and its
//! own view of a block; [`HEADROOM`] covers what several processes have in
//! flight at once). In memory, login names are kept only as keyed digests;
//! in the database as SHA-256 digests (the same in every process).
//!
//! **Per client address.** With `forward-client-address` on, the
//! `nextcloud` backend sends the client's address (when the XMPP server
//! told it) as `X-Forwarded-For`; a Nextcloud that lists this server in
//! `trusted_proxies` then counts that login's failure for the client, not
//! for this server. Whether it does is found out from the capabilities
//! ([`Forwarding`], [`forwarding_evidence`]); while it does, a check from
//! a known client address spends that address's own budget (the same
//! limits, kept in memory for at most [`MAX_CLIENTS`] addresses, IPv6 per
//! /56 as Nextcloud counts them), so that one guessing client spends only
//! its own and everyone else keeps logging in. Until that is known, and
//! when Nextcloud ignores the header, every failure counts for this server.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tracing::{info, warn};

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};
use crate::digest::{Digester, PairDigest};
use crate::vocab::state_db::{open_shared, StoreError};

/// Nextcloud's window for counting failures (`Throttler`: 30 minutes for the block).
pub const WINDOW: Duration = Duration::from_secs(30 * 60);
/// Failures left unspent below Nextcloud's limit: other clients at the
/// same address (a webmail, a sync client on the XMPP host), and a check
/// whose failure Nextcloud counted though the answer never arrived.
pub const HEADROOM: u32 = 2;
/// Failures of the budget only checks likely to succeed may spend.
pub const KEPT_FOR_LIKELY: u32 = 3;
/// Failures one login name may hold in the window before its checks that
/// are not likely to succeed are withheld (until one succeeds, or they age
/// out); with a larger budget, half of what unlikely checks may spend.
pub const PER_LOGIN: usize = 3;
/// How often Nextcloud's capabilities are read again.
pub const CAPABILITIES_INTERVAL: Duration = Duration::from_secs(300);
/// During a block, at most one request per this interval reaches Nextcloud.
pub const BLOCK_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// During a block, at most one warning per this interval.
pub const BLOCK_WARN_INTERVAL: Duration = Duration::from_secs(60);
/// Client addresses whose failures are kept (forwarding honoured); past
/// it, the address used longest ago is forgotten (its failures then count
/// from zero again: only that client's own address is at stake).
pub(crate) const MAX_CLIENTS: usize = 4096;
/// The address asked about to find out whether Nextcloud honours
/// `X-Forwarded-For` (TEST-NET-1, RFC 5737: never a real client).
pub(crate) const PROBE_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

/// Whether Nextcloud counts failures for the forwarded client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forwarding {
    /// `forward-client-address` is off: no header is sent.
    #[default]
    Off,
    /// On, and not found out yet (the answers with and without the header
    /// looked the same): failures count for this server meanwhile.
    Unknown,
    /// On, and Nextcloud counts for the forwarded address (this server is
    /// in its `trusted_proxies`).
    Honoured,
    /// On, and Nextcloud ignores the header: failures count for this server.
    Ignored,
}

/// What Nextcloud's capabilities for this server (`own`) and for a
/// forwarded address (`forwarded`) tell about forwarding, each
/// (allow-listed, delay): different answers mean the header is honoured;
/// the same answer while this server's is not that of an address with no
/// failures (a delay, or allow-listed) means it is ignored; the same
/// fresh answer tells nothing.
pub(crate) fn forwarding_evidence(own: (bool, u64), forwarded: (bool, u64)) -> Option<Forwarding> {
    if own != forwarded {
        Some(Forwarding::Honoured)
    } else if own != (false, 0) {
        Some(Forwarding::Ignored)
    } else {
        None
    }
}

/// The key Nextcloud counts `ip` under: IPv4 as is (also IPv4-mapped
/// IPv6), IPv6 by its /56.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[7..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(o))
            }
        },
    }
}

/// How likely a password check is to succeed, which decides how much of
/// the budget it may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prospect {
    /// The user logged in before and was not refused lately.
    Likely,
    /// An unknown name, or a user refused lately.
    Unlikely,
}

/// Why a check that may fail was not sent ([`FailureBudget::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Failures counted at Nextcloud within its window (and in flight),
    /// or the login name's own.
    pub failures: u32,
    /// What this kind of check may spend.
    pub limit: u32,
}

/// Why a request was not sent during a block ([`FailureBudget::may_send`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOn {
    /// Seconds since the block was seen.
    pub for_secs: u64,
    /// Seconds until the next probe.
    pub retry_in: u64,
}

/// What Nextcloud made of a request with credentials, for the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Logged in: Nextcloud deletes this login name's failures.
    Accepted,
    /// A failure Nextcloud records (401 "Unauthorised").
    Failed,
    /// Refused without a record ("Current user is not logged in": a
    /// two-factor account), or any other answer that is not a block.
    NotCounted,
    /// HTTP 429 (or OCS 429): the address is blocked.
    Blocked,
}

/// What [`FailureBudget::report`] tells `doctor` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetReport {
    /// `None` until the capabilities were read.
    pub allow_listed: Option<bool>,
    /// Failures Nextcloud reported for this address (from `delay`), at the last read.
    pub reported_failures: Option<u32>,
    /// Failures counted in the window now.
    pub failures: u32,
    /// The most this server spends (max-attempts less [`HEADROOM`]).
    pub limit: u32,
    /// Seconds since a block was seen, while it lasts.
    pub blocked_for: Option<u64>,
    /// Whether the client's address is forwarded and honoured.
    pub forwarding: Forwarding,
    /// Client addresses holding failures in the window (forwarding honoured).
    pub clients_with_failures: usize,
}

/// The state a change of which is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Only likely checks go through.
    Reserved,
    Spent,
    AllowListed,
}

struct Failure {
    at: u64,
    login: PairDigest,
}

struct Block {
    since: u64,
    next_probe: u64,
    last_warning: u64,
}

/// One forwarded client address's failures and block.
#[derive(Default)]
struct ClientState {
    failures: VecDeque<Failure>,
    in_flight: u32,
    block: Option<Block>,
    /// When last used (monotonic seconds), for forgetting the oldest.
    last: u64,
}

#[derive(Default)]
struct State {
    failures: VecDeque<Failure>,
    /// Checks let through and not finished: each may become a failure.
    in_flight: u32,
    /// Failures Nextcloud reported at the first read, before any of ours,
    /// counted until `seed_until`.
    seed: u32,
    seed_until: u64,
    allow_listed: Option<bool>,
    reported: Option<u32>,
    capabilities_due: u64,
    capabilities_read: bool,
    block: Option<Block>,
    phase: Option<Phase>,
    forwarding: Forwarding,
    /// Per client address (by [`client_key`]), while forwarding is honoured.
    clients: HashMap<IpAddr, ClientState>,
    /// A client address a failure was counted for while forwarding was not
    /// known to be honoured: asked about at the next forwarding probe.
    probe_client: Option<IpAddr>,
}

/// Counters for the metrics page.
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// Checks withheld because the budget was spent.
    pub withheld: AtomicU64,
    /// Requests withheld during a block.
    pub blocked: AtomicU64,
    /// 429 answers seen.
    pub blocks_seen: AtomicU64,
    /// Failed logins Nextcloud recorded for this server.
    pub failures_caused: AtomicU64,
    /// Failed logins Nextcloud recorded for forwarded client addresses.
    pub client_failures: AtomicU64,
}

/// The failures of every process sharing a state database, for one
/// Nextcloud: rows (Nextcloud, login digest, Unix time) in the table
/// `nextcloud_failures`. Times are wall-clock seconds (shared between
/// processes); a clock stepped back makes failures count longer, never
/// shorter.
pub struct SharedLedger {
    conn: Mutex<Connection>,
    nextcloud: String,
}

fn login_hash(login: &str) -> String {
    let d = Sha256::digest(format!("cloudauth-login\0{}", login.to_lowercase()).as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    i64::try_from(SystemClock.now_unix()).unwrap_or(i64::MAX)
}

impl SharedLedger {
    /// The ledger for the Nextcloud called `nextcloud` in the state database at `path`.
    pub fn open(path: &std::path::Path, nextcloud: &str) -> Result<Self, StoreError> {
        let conn = open_shared(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS nextcloud_failures (
                 nextcloud TEXT NOT NULL, login TEXT NOT NULL, at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS nextcloud_failures_at ON nextcloud_failures (nextcloud, at);",
        )
        .map_err(|e| StoreError(e.to_string()))?;
        Ok(SharedLedger {
            conn: Mutex::new(conn),
            nextcloud: nextcloud.to_string(),
        })
    }

    fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let conn = self.conn.lock().ok()?;
        match f(&conn) {
            Ok(v) => Some(v),
            Err(e) => {
                warn!("failure budget: the state database failed ({e}); checks that may fail wait");
                None
            }
        }
    }

    /// Failures within the window (all logins, or `login`'s); `None` when
    /// the database cannot tell (the caller then withholds).
    fn count(&self, login: Option<&str>) -> Option<u32> {
        let since = unix_now().saturating_sub(i64::try_from(WINDOW.as_secs()).unwrap_or(0));
        self.run(|c| {
            c.execute(
                "DELETE FROM nextcloud_failures WHERE nextcloud = ?1 AND at <= ?2",
                params![self.nextcloud, since],
            )?;
            let n: i64 = match login {
                None => c.query_row(
                    "SELECT COUNT(*) FROM nextcloud_failures WHERE nextcloud = ?1",
                    params![self.nextcloud],
                    |r| r.get(0),
                )?,
                Some(l) => c.query_row(
                    "SELECT COUNT(*) FROM nextcloud_failures WHERE nextcloud = ?1 AND login = ?2",
                    params![self.nextcloud, login_hash(l)],
                    |r| r.get(0),
                )?,
            };
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn failed(&self, login: &str) {
        self.run(|c| {
            c.execute(
                "INSERT INTO nextcloud_failures (nextcloud, login, at) VALUES (?1, ?2, ?3)",
                params![self.nextcloud, login_hash(login), unix_now()],
            )
        });
    }

    fn accepted(&self, login: &str) {
        self.run(|c| {
            c.execute(
                "DELETE FROM nextcloud_failures WHERE nextcloud = ?1 AND login = ?2",
                params![self.nextcloud, login_hash(login)],
            )
        });
    }

    /// Forgets the `n` oldest failures (Nextcloud reported fewer).
    fn drop_oldest(&self, n: u32) {
        self.run(|c| {
            c.execute(
                "DELETE FROM nextcloud_failures WHERE rowid IN (SELECT rowid FROM nextcloud_failures \
                 WHERE nextcloud = ?1 ORDER BY at LIMIT ?2)",
                params![self.nextcloud, n],
            )
        });
    }
}

/// The failures this server caused at one Nextcloud, and its block.
pub struct FailureBudget {
    /// Where, for the log (no user info).
    name: String,
    max_attempts: u32,
    digester: Digester,
    state: Mutex<State>,
    /// The failures of every process sharing the state database, if any.
    shared: Option<SharedLedger>,
    /// The counters.
    pub stats: BudgetStats,
}

/// A check let through: counted in flight until dropped.
pub struct Spend<'a> {
    budget: Option<&'a FailureBudget>,
    /// Counted in flight for this client address instead of for the server.
    client: Option<IpAddr>,
}

impl Drop for Spend<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            if let Ok(mut s) = b.state.lock() {
                match self.client.and_then(|c| s.clients.get_mut(&c)) {
                    Some(c) => c.in_flight = c.in_flight.saturating_sub(1),
                    None if self.client.is_some() => {}
                    None => s.in_flight = s.in_flight.saturating_sub(1),
                }
            }
        }
    }
}

/// Drops failures older than the window from `failures`.
fn age_out(failures: &mut VecDeque<Failure>, now: u64) {
    let window = WINDOW.as_secs();
    while failures
        .front()
        .is_some_and(|f| f.at.saturating_add(window) <= now)
    {
        failures.pop_front();
    }
}

/// Failures implied by Nextcloud's `bruteforce.delay` (ms): 0 for none,
/// else 100 ms × 2^failures, capped at 25 s (8 failures or more within 12 h).
pub fn failures_from_delay(delay_ms: u64) -> u32 {
    if delay_ms == 0 {
        return 0;
    }
    // Nextcloud's cap (`MAX_DELAY`): 100 ms × 2^8 would be beyond it.
    if delay_ms >= 25_000 {
        return 8;
    }
    let mut n = 0u32;
    while n < 8 && 100u64 << (n + 1) <= delay_ms {
        n += 1;
    }
    n.max(1)
}

type Registry = Mutex<HashMap<(String, u32, Option<std::path::PathBuf>), Weak<FailureBudget>>>;

/// Every budget of this process, by Nextcloud, limit and state database.
fn registry() -> &'static Registry {
    static BUDGETS: OnceLock<Registry> = OnceLock::new();
    BUDGETS.get_or_init(Registry::default)
}

/// The process's monotonic seconds: a stepped wall clock moves no window.
fn now() -> u64 {
    SystemClock.monotonic_secs()
}

impl FailureBudget {
    /// A budget for the Nextcloud called `name` in logs, below `max_attempts`.
    /// `None` without OS randomness for the digest key.
    pub fn new(name: &str, max_attempts: u32) -> Option<Self> {
        Some(FailureBudget {
            name: name.to_string(),
            max_attempts,
            digester: Digester::random()?,
            state: Mutex::default(),
            shared: None,
            stats: BudgetStats::default(),
        })
    }

    /// The same, keeping the failures in `ledger` as well (shared with
    /// the other processes that use its database).
    pub fn with_ledger(mut self, ledger: SharedLedger) -> Self {
        self.shared = Some(ledger);
        self
    }

    /// The budget shared by every backend for the Nextcloud at `key` (its
    /// base URL) in this process, made on first use.
    pub fn for_nextcloud(
        key: &str,
        name: &str,
        max_attempts: u32,
        db: Option<&std::path::Path>,
    ) -> Option<Arc<Self>> {
        let mut map = registry().lock().ok()?;
        map.retain(|_, w| w.strong_count() > 0);
        let id = (
            key.to_string(),
            max_attempts,
            db.map(std::path::Path::to_path_buf),
        );
        if let Some(b) = map.get(&id).and_then(Weak::upgrade) {
            return Some(b);
        }
        let mut budget = FailureBudget::new(name, max_attempts)?;
        if let Some(path) = db {
            match SharedLedger::open(path, key) {
                Ok(ledger) => budget = budget.with_ledger(ledger),
                // Still a budget, for this process only.
                Err(e) => warn!(
                    "failure budget for Nextcloud at {name}: the state database cannot keep it ({e}); \
                     this process counts its own failures only"
                ),
            }
        }
        let b = Arc::new(budget);
        map.insert(id, Arc::downgrade(&b));
        Some(b)
    }

    /// The budgets in use in this process (for the metrics page).
    pub fn in_use() -> Vec<Arc<FailureBudget>> {
        registry()
            .lock()
            .map(|m| m.values().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// Where, as logged (no user info).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most failures this server lets itself cause within the window.
    pub fn limit(&self) -> u32 {
        self.max_attempts.saturating_sub(HEADROOM).max(1)
    }

    fn limit_for(&self, prospect: Prospect) -> u32 {
        match prospect {
            Prospect::Likely => self.limit(),
            Prospect::Unlikely => self.limit().saturating_sub(KEPT_FOR_LIKELY).max(1),
        }
    }

    fn counted(&self, s: &mut State, now: u64) -> u32 {
        age_out(&mut s.failures, now);
        if s.seed_until <= now {
            s.seed = 0;
        }
        let own = match &self.shared {
            // A database that cannot tell counts as spent: wait, never guess.
            Some(ledger) => ledger.count(None).unwrap_or(u32::MAX),
            None => u32::try_from(s.failures.len()).unwrap_or(u32::MAX),
        };
        own.saturating_add(s.seed)
    }

    /// The failures `login` holds in the window.
    fn counted_for(&self, s: &State, login: &str) -> usize {
        match &self.shared {
            Some(ledger) => ledger.count(Some(login)).map_or(usize::MAX, |n| n as usize),
            None => {
                let digest = self.login_digest(login);
                s.failures.iter().filter(|f| f.login.ct_eq(&digest)).count()
            }
        }
    }

    /// Lets a check that may fail through at `now` (monotonic seconds), or
    /// says why not. The check counts in flight until the [`Spend`] drops.
    pub fn admit_at(&self, login: &str, prospect: Prospect, now: u64) -> Result<Spend<'_>, Spent> {
        self.admit_from_at(login, None, prospect, now)
    }

    /// [`FailureBudget::admit_at`] for a check from the client at `client`:
    /// while Nextcloud honours the forwarded address, spent from that
    /// address's own budget.
    pub(crate) fn admit_from_at(
        &self,
        login: &str,
        client: Option<IpAddr>,
        prospect: Prospect,
        now: u64,
    ) -> Result<Spend<'_>, Spent> {
        let Ok(mut s) = self.state.lock() else {
            // A poisoned lock must not lock anyone out.
            return Ok(Spend {
                budget: None,
                client: None,
            });
        };
        if let Some(key) = self.counted_client(&s, client) {
            return self.admit_client(&mut s, key, login, prospect, now);
        }
        if s.allow_listed == Some(true) {
            return Ok(Spend {
                budget: None,
                client: None,
            });
        }
        let failures = self.counted(&mut s, now).saturating_add(s.in_flight);
        let own = self.counted_for(&s, login);
        self.judge(failures, own, prospect)
            .inspect_err(|_| self.note_phase(&mut s, now))?;
        s.in_flight += 1;
        Ok(Spend {
            budget: Some(self),
            client: None,
        })
    }

    /// The client key a check from `client` is counted under: `Some` only
    /// while Nextcloud honours the forwarded address.
    fn counted_client(&self, s: &State, client: Option<IpAddr>) -> Option<IpAddr> {
        (s.forwarding == Forwarding::Honoured)
            .then_some(client)
            .flatten()
            .map(client_key)
    }

    /// Admits a check against the budget of the client at `key`.
    fn admit_client(
        &self,
        s: &mut State,
        key: IpAddr,
        login: &str,
        prospect: Prospect,
        now: u64,
    ) -> Result<Spend<'_>, Spent> {
        let digest = self.login_digest(login);
        let c = client_entry(&mut s.clients, key, now);
        age_out(&mut c.failures, now);
        let failures = u32::try_from(c.failures.len())
            .unwrap_or(u32::MAX)
            .saturating_add(c.in_flight);
        let own = c.failures.iter().filter(|f| f.login.ct_eq(&digest)).count();
        self.judge(failures, own, prospect)?;
        c.in_flight += 1;
        Ok(Spend {
            budget: Some(self),
            client: Some(key),
        })
    }

    /// The budget's rule for one check: `failures` counted where it would
    /// be recorded (with those in flight), `own` of them the login's.
    fn judge(&self, failures: u32, own: usize, prospect: Prospect) -> Result<(), Spent> {
        let limit = self.limit_for(prospect);
        // A larger budget (a raised max-attempts) lets one login hold more.
        let per_login = PER_LOGIN.max(self.limit_for(Prospect::Unlikely) as usize / 2);
        if prospect == Prospect::Unlikely && own >= per_login {
            self.stats.withheld.fetch_add(1, Ordering::Relaxed);
            return Err(Spent {
                failures: u32::try_from(own).unwrap_or(u32::MAX),
                limit: u32::try_from(per_login).unwrap_or(u32::MAX),
            });
        }
        // A login retrying after its own failure (a typo, then the right
        // password) may use the part kept for likely checks: its success
        // deletes its failures at Nextcloud.
        let limit = if prospect == Prospect::Unlikely && own > 0 {
            self.limit_for(Prospect::Likely)
        } else {
            limit
        };
        if failures >= limit {
            self.stats.withheld.fetch_add(1, Ordering::Relaxed);
            return Err(Spent { failures, limit });
        }
        Ok(())
    }

    /// Whether a request with credentials may go to Nextcloud at `now`:
    /// during a block only one per [`BLOCK_PROBE_INTERVAL`].
    pub fn may_send_at(&self, now: u64) -> Result<(), BlockOn> {
        self.may_send_from_at(None, now)
    }

    /// [`FailureBudget::may_send_at`] for a request from `client`: while
    /// forwarding is honoured, that address's block is the one that counts.
    pub(crate) fn may_send_from_at(&self, client: Option<IpAddr>, now: u64) -> Result<(), BlockOn> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(());
        };
        let block = match self.counted_client(&s, client) {
            Some(key) => s.clients.get_mut(&key).and_then(|c| c.block.as_mut()),
            None => s.block.as_mut(),
        };
        let Some(block) = block else {
            return Ok(());
        };
        if now >= block.next_probe {
            block.next_probe = now.saturating_add(BLOCK_PROBE_INTERVAL.as_secs());
            return Ok(());
        }
        self.stats.blocked.fetch_add(1, Ordering::Relaxed);
        Err(BlockOn {
            for_secs: now.saturating_sub(block.since),
            retry_in: block.next_probe.saturating_sub(now),
        })
    }

    /// Counts what Nextcloud made of a request for `login` at `now`.
    pub fn record_at(&self, login: &str, outcome: Outcome, now: u64) {
        self.record_from_at(login, None, outcome, now)
    }

    /// [`FailureBudget::record_at`] for a request sent with `client` as
    /// the forwarded address.
    pub(crate) fn record_from_at(
        &self,
        login: &str,
        client: Option<IpAddr>,
        outcome: Outcome,
        now: u64,
    ) {
        let Ok(mut s) = self.state.lock() else { return };
        let digest = self.login_digest(login);
        if let Some(key) = self.counted_client(&s, client) {
            self.record_client(&mut s, key, digest, outcome, now);
            return;
        }
        if outcome == Outcome::Failed && s.forwarding == Forwarding::Unknown {
            // Counted for this server meanwhile; asking about this address
            // next tells whether Nextcloud counted it there instead.
            s.probe_client = client.map(client_key);
        }
        match outcome {
            Outcome::Blocked => {
                self.stats.blocks_seen.fetch_add(1, Ordering::Relaxed);
                let warn_now = match s.block.as_mut() {
                    None => {
                        s.block = Some(Block {
                            since: now,
                            next_probe: now.saturating_add(BLOCK_PROBE_INTERVAL.as_secs()),
                            last_warning: now,
                        });
                        true
                    }
                    Some(b) => {
                        let due =
                            now >= b.last_warning.saturating_add(BLOCK_WARN_INTERVAL.as_secs());
                        if due {
                            b.last_warning = now;
                        }
                        due
                    }
                };
                if warn_now {
                    let since = s.block.as_ref().map_or(0, |b| now.saturating_sub(b.since));
                    warn!(
                        "Nextcloud at {}: its brute-force protection blocks this server's address (HTTP 429 \
                         for every login, right passwords and the service account included; seen for {since} s; \
                         it lifts when the failures of the last 30 minutes fall to {} or fewer). Until then at most \
                         one request per {} s goes to Nextcloud, cached passwords and tokens still work, other \
                         logins get \"try again later\". Fix: allow-list this server's address in Nextcloud \
                         (Administration → Security, or `occ config:app:set bruteForce whitelist_1 --value=ADDRESS/32`) \
                         and run `occ security:bruteforce:reset ADDRESS`",
                        self.name,
                        self.max_attempts,
                        BLOCK_PROBE_INTERVAL.as_secs()
                    );
                }
                return;
            }
            Outcome::Accepted => {
                s.failures.retain(|f| !f.login.ct_eq(&digest));
                if let Some(ledger) = &self.shared {
                    ledger.accepted(login);
                }
            }
            Outcome::Failed => {
                self.stats.failures_caused.fetch_add(1, Ordering::Relaxed);
                if let Some(ledger) = &self.shared {
                    ledger.failed(login);
                }
                s.failures.push_back(Failure {
                    at: now,
                    login: digest,
                });
            }
            Outcome::NotCounted => {}
        }
        if let Some(b) = s.block.take() {
            info!(
                "Nextcloud at {}: the brute-force block is over after {} s",
                self.name,
                now.saturating_sub(b.since)
            );
        }
        self.note_phase(&mut s, now);
    }

    /// Counts what Nextcloud made of a request forwarded for the client at `key`.
    fn record_client(
        &self,
        s: &mut State,
        key: IpAddr,
        digest: PairDigest,
        outcome: Outcome,
        now: u64,
    ) {
        let c = client_entry(&mut s.clients, key, now);
        match outcome {
            Outcome::Blocked => {
                self.stats.blocks_seen.fetch_add(1, Ordering::Relaxed);
                if c.block.is_none() {
                    info!(
                        "Nextcloud at {}: its brute-force protection blocks the logins of client {key}                          (too many failures from that address; this server's address is not affected)",
                        self.name
                    );
                    c.block = Some(Block {
                        since: now,
                        next_probe: now.saturating_add(BLOCK_PROBE_INTERVAL.as_secs()),
                        last_warning: now,
                    });
                }
                return;
            }
            Outcome::Accepted => c.failures.retain(|f| !f.login.ct_eq(&digest)),
            Outcome::Failed => {
                self.stats.client_failures.fetch_add(1, Ordering::Relaxed);
                c.failures.push_back(Failure {
                    at: now,
                    login: digest,
                });
            }
            Outcome::NotCounted => {}
        }
        c.block = None;
    }

    /// Turns forwarding the client's address on (`forward-client-address`):
    /// whether Nextcloud honours it is found out from the capabilities.
    pub(crate) fn forward_client_addresses(&self) {
        if let Ok(mut s) = self.state.lock() {
            if s.forwarding == Forwarding::Off {
                s.forwarding = Forwarding::Unknown;
            }
        }
    }

    /// Whether Nextcloud counts failures for the forwarded address.
    pub fn forwarding(&self) -> Forwarding {
        self.state
            .lock()
            .map_or(Forwarding::Unknown, |s| s.forwarding)
    }

    /// The address to ask the capabilities about for the next forwarding
    /// probe: a client a failure was counted for while it was not known to
    /// be honoured (Nextcloud holds a failure for it if it honours the
    /// header), else [`PROBE_ADDRESS`]. `None` when forwarding is off.
    pub(crate) fn forwarding_probe(&self) -> Option<IpAddr> {
        let s = self.state.lock().ok()?;
        match s.forwarding {
            Forwarding::Off => None,
            _ => Some(s.probe_client.unwrap_or(PROBE_ADDRESS)),
        }
    }

    /// Whether a forwarding probe should run now, right after a failure
    /// (not known yet, and a client address to ask about).
    pub(crate) fn forwarding_probe_wanted(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.forwarding == Forwarding::Unknown && s.probe_client.is_some())
    }

    /// What a forwarding probe found (see [`forwarding_evidence`]); `None`
    /// changes nothing. Each change is logged once, with the fix.
    pub(crate) fn forwarding_found(&self, evidence: Option<Forwarding>) {
        let Some(found) = evidence else { return };
        let Ok(mut s) = self.state.lock() else { return };
        if s.forwarding == Forwarding::Off || s.forwarding == found {
            return;
        }
        s.forwarding = found;
        s.probe_client = None;
        match found {
            Forwarding::Honoured => info!(
                "Nextcloud at {}: it counts failed logins for the client address cloudauth forwards                  (X-Forwarded-For; this server is in its trusted_proxies): each client address has a                  failure budget of its own",
                self.name
            ),
            _ => {
                s.clients.clear();
                warn!(
                    "Nextcloud at {}: forward-client-address is on, but Nextcloud ignores X-Forwarded-For                      from this server and counts every failed login for this server's address (the                      server's failure budget applies). Fix: on Nextcloud, `occ config:system:set                      trusted_proxies 0 --value=ADDRESS` with this server's address",
                    self.name
                )
            }
        }
    }

    /// Claims the next read of the capabilities when it is due at `now`.
    pub fn capabilities_due_at(&self, now: u64) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if now < s.capabilities_due {
            return false;
        }
        s.capabilities_due = now.saturating_add(CAPABILITIES_INTERVAL.as_secs());
        true
    }

    /// What the capabilities said about this address at `now`: allow-listed
    /// or not, and the delay Nextcloud would apply (from which the failures
    /// it holds within 12 h follow, an upper bound for its 30-minute count).
    pub fn capabilities_at(&self, allow_listed: bool, delay_ms: u64, now: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        let reported = failures_from_delay(delay_ms);
        let first = !s.capabilities_read;
        s.capabilities_read = true;
        s.allow_listed = Some(allow_listed);
        s.reported = Some(reported);
        let ours = self.counted(&mut s, now);
        if first && reported > ours {
            // Failures from before this process started (or from another
            // client at this address): counted for one window.
            s.seed = reported - ours;
            s.seed_until = now.saturating_add(WINDOW.as_secs());
        } else if reported < 8 && reported < ours {
            // Nextcloud holds fewer (an admin reset them): believe it.
            let mut excess = ours - reported;
            let from_seed = excess.min(s.seed);
            s.seed -= from_seed;
            excess -= from_seed;
            for _ in 0..excess {
                s.failures.pop_front();
            }
            if let Some(ledger) = &self.shared {
                ledger.drop_oldest(excess);
            }
        }
        self.note_phase(&mut s, now);
    }

    /// The state for `doctor` and the metrics.
    pub fn report_at(&self, now: u64) -> BudgetReport {
        let Ok(mut s) = self.state.lock() else {
            return BudgetReport {
                allow_listed: None,
                reported_failures: None,
                failures: 0,
                limit: self.limit(),
                blocked_for: None,
                forwarding: Forwarding::Unknown,
                clients_with_failures: 0,
            };
        };
        let failures = self.counted(&mut s, now);
        let clients_with_failures = s
            .clients
            .values_mut()
            .map(|c| {
                age_out(&mut c.failures, now);
                usize::from(!c.failures.is_empty())
            })
            .sum();
        BudgetReport {
            allow_listed: s.allow_listed,
            reported_failures: s.reported,
            failures,
            limit: self.limit(),
            blocked_for: s.block.as_ref().map(|b| now.saturating_sub(b.since)),
            forwarding: s.forwarding,
            clients_with_failures,
        }
    }

    /// [`FailureBudget::admit_at`] now.
    pub fn admit(
        &self,
        login: &str,
        client: Option<IpAddr>,
        prospect: Prospect,
    ) -> Result<Spend<'_>, Spent> {
        self.admit_from_at(login, client, prospect, now())
    }

    /// Nextcloud counts login names case-insensitively.
    fn login_digest(&self, login: &str) -> PairDigest {
        self.digester.digest("login", &login.to_lowercase())
    }

    /// [`FailureBudget::may_send_at`] now.
    pub fn may_send(&self, client: Option<IpAddr>) -> Result<(), BlockOn> {
        self.may_send_from_at(client, now())
    }

    /// [`FailureBudget::record_from_at`] now.
    pub fn record(&self, login: &str, client: Option<IpAddr>, outcome: Outcome) {
        self.record_from_at(login, client, outcome, now())
    }

    /// [`FailureBudget::capabilities_due_at`] now.
    pub fn capabilities_due(&self) -> bool {
        self.capabilities_due_at(now())
    }

    /// [`FailureBudget::capabilities_at`] now.
    pub fn capabilities(&self, allow_listed: bool, delay_ms: u64) {
        self.capabilities_at(allow_listed, delay_ms, now())
    }

    /// [`FailureBudget::report_at`] now.
    pub fn report(&self) -> BudgetReport {
        self.report_at(now())
    }

    /// Logs a change of phase, once.
    fn note_phase(&self, s: &mut State, now: u64) {
        let failures = self.counted(s, now).saturating_add(s.in_flight);
        let phase = if s.allow_listed == Some(true) {
            Phase::AllowListed
        } else if failures >= self.limit_for(Prospect::Likely) {
            Phase::Spent
        } else if failures >= self.limit_for(Prospect::Unlikely) {
            Phase::Reserved
        } else {
            Phase::Open
        };
        let before = s.phase.replace(phase);
        if before == Some(phase) {
            return;
        }
        let (name, limit, max) = (&self.name, self.limit(), self.max_attempts);
        let fix = "to let every login through, allow-list this server's address in Nextcloud \
                   (Administration → Security, or `occ config:app:set bruteForce whitelist_1 --value=ADDRESS/32`)";
        match phase {
            Phase::AllowListed => info!(
                "Nextcloud at {name} allow-lists this server's address: its brute-force protection does not \
                 count these logins, so cloudauth's guessing throttle (throttle-failures) is the defence against \
                 password guessing"
            ),
            Phase::Open if before.is_none() => {}
            Phase::Open => info!(
                "Nextcloud at {name}: failed logins within its 30-minute window are below {} again; every password \
                 check goes to Nextcloud",
                self.limit_for(Prospect::Unlikely)
            ),
            Phase::Reserved => warn!(
                "Nextcloud at {name}: this server caused {failures} failed logins there within 30 minutes \
                 (Nextcloud blocks every login from this address after {max}); the rest of the budget ({limit}) \
                 is kept for users who logged in before: unknown names and users who keep failing get \
                 \"try again later\" without asking; {fix}"
            ),
            Phase::Spent => warn!(
                "Nextcloud at {name}: this server caused {failures} failed logins there within 30 minutes \
                 (Nextcloud blocks every login from this address after {max}): password checks not in the \
                 cache get \"try again later\" without asking until the failures age out or users log in; \
                 cached passwords and tokens still work; {fix}"
            ),
        }
    }
}

/// The entry of the client at `key`, made when new; past [`MAX_CLIENTS`]
/// the one used longest ago (none in flight) makes room.
fn client_entry(
    clients: &mut HashMap<IpAddr, ClientState>,
    key: IpAddr,
    now: u64,
) -> &mut ClientState {
    if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
        let oldest = clients
            .iter()
            .filter(|(_, c)| c.in_flight == 0)
            .min_by_key(|(_, c)| c.last)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            clients.remove(&k);
        }
    }
    let c = clients.entry(key).or_default();
    c.last = now;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> FailureBudget {
        FailureBudget::new("test", 10).unwrap()
    }

    fn fail(b: &FailureBudget, login: &str, now: u64) {
        let spend = b.admit_at(login, Prospect::Likely, now).expect("admitted");
        b.record_at(login, Outcome::Failed, now);
        drop(spend);
    }

    #[test]
    fn delay_to_failures() {
        assert_eq!(failures_from_delay(0), 0);
        assert_eq!(failures_from_delay(200), 1);
        assert_eq!(failures_from_delay(400), 2);
        assert_eq!(failures_from_delay(800), 3);
        assert_eq!(failures_from_delay(12800), 7);
        assert_eq!(failures_from_delay(25000), 8);
        assert_eq!(failures_from_delay(99), 1);
    }

    #[test]
    fn never_more_than_the_limit_less_headroom() {
        let b = budget();
        for i in 0..8 {
            fail(&b, &format!("u{i}"), 100);
        }
        assert_eq!(b.limit(), 8);
        assert_eq!(
            b.admit_at("u", Prospect::Likely, 100).err(),
            Some(Spent {
                failures: 8,
                limit: 8
            })
        );
        // Nextcloud's window passes: the budget is back.
        assert!(b
            .admit_at("u", Prospect::Likely, 100 + WINDOW.as_secs())
            .is_ok());
    }

    #[test]
    fn unlikely_checks_leave_some_and_in_flight_counts() {
        let b = budget();
        let held: Vec<_> = (0..5)
            .map(|i| b.admit_at(&format!("n{i}"), Prospect::Unlikely, 1).unwrap())
            .collect();
        assert!(matches!(
            b.admit_at("n9", Prospect::Unlikely, 1),
            Err(Spent {
                failures: 5,
                limit: 5
            })
        ));
        assert!(
            b.admit_at("n9", Prospect::Likely, 1).is_ok(),
            "the rest is kept for likely checks"
        );
        drop(held);
        assert!(
            b.admit_at("n9", Prospect::Unlikely, 1).is_ok(),
            "finished checks that did not fail cost nothing"
        );
    }

    #[test]
    fn one_login_holds_at_most_its_share_unless_likely() {
        let b = budget();
        for _ in 0..3 {
            b.record_at("mallory", Outcome::Failed, 1);
        }
        assert!(matches!(
            b.admit_at("MALLORY", Prospect::Unlikely, 1),
            Err(Spent {
                failures: 3,
                limit: 3
            })
        ));
        assert!(b.admit_at("alice", Prospect::Unlikely, 1).is_ok());
        // Five unknown names failed: others wait, but those five may retry.
        for i in 0..2 {
            b.record_at(&format!("new{i}"), Outcome::Failed, 1);
        }
        assert!(b.admit_at("new9", Prospect::Unlikely, 1).is_err());
        assert!(b.admit_at("new0", Prospect::Unlikely, 1).is_ok());
        b.record_at("mallory", Outcome::Accepted, 2);
        assert!(b.admit_at("mallory", Prospect::Unlikely, 2).is_ok());
    }

    #[test]
    fn a_success_clears_only_that_login() {
        let b = budget();
        for _ in 0..3 {
            fail(&b, "alice", 10);
        }
        fail(&b, "bob", 10);
        fail(&b, "bob", 10);
        b.record_at("ALICE", Outcome::Accepted, 11);
        assert_eq!(b.report_at(11).failures, 2);
    }

    #[test]
    fn a_block_lets_one_probe_through_per_interval_and_ends_on_another_answer() {
        let b = budget();
        assert!(b.may_send_at(0).is_ok());
        b.record_at("alice", Outcome::Blocked, 0);
        assert!(matches!(
            b.may_send_at(1),
            Err(BlockOn {
                for_secs: 1,
                retry_in: 4
            })
        ));
        assert!(b.may_send_at(5).is_ok(), "the probe");
        assert!(b.may_send_at(5).is_err(), "only one");
        b.record_at("alice", Outcome::Blocked, 5);
        assert!(b.may_send_at(9).is_err());
        assert_eq!(b.report_at(9).blocked_for, Some(9));
        assert!(b.may_send_at(10).is_ok());
        b.record_at("alice", Outcome::Accepted, 10);
        assert!(b.may_send_at(10).is_ok() && b.may_send_at(10).is_ok());
        assert_eq!(b.report_at(10).blocked_for, None);
        assert_eq!(b.stats.blocks_seen.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn capabilities_seed_lower_and_allow_list() {
        let b = budget();
        assert!(b.capabilities_due_at(0));
        assert!(!b.capabilities_due_at(1));
        assert!(b.capabilities_due_at(CAPABILITIES_INTERVAL.as_secs()));
        // Six failures before this process: two left for likely checks.
        b.capabilities_at(false, 6400, 0);
        assert_eq!(b.report_at(0).failures, 6);
        fail(&b, "x", 1);
        assert!(b.admit_at("u", Prospect::Likely, 1).is_ok());
        fail(&b, "y", 1);
        assert!(b.admit_at("u", Prospect::Likely, 1).is_err());
        // An admin reset them all.
        b.capabilities_at(false, 0, 2);
        assert_eq!(b.report_at(2).failures, 0);
        assert!(b.admit_at("u", Prospect::Unlikely, 2).is_ok());
        // Allow-listed: nothing is withheld.
        for i in 0..20 {
            b.record_at(&format!("z{i}"), Outcome::Failed, 3);
        }
        b.capabilities_at(true, 0, 4);
        assert!(b.admit_at("u", Prospect::Unlikely, 4).is_ok());
        assert_eq!(b.report_at(4).allow_listed, Some(true));
    }

    #[test]
    fn processes_sharing_a_state_database_spend_one_budget() {
        let dir = std::env::temp_dir().join(format!("cloudauth-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.sqlite3");
        let _ = std::fs::remove_file(&db);
        // Two processes of an extauth pool: two budgets over one database.
        let a = budget().with_ledger(SharedLedger::open(&db, "https://cloud/").unwrap());
        let b = budget().with_ledger(SharedLedger::open(&db, "https://cloud/").unwrap());
        let other = budget().with_ledger(SharedLedger::open(&db, "https://other/").unwrap());
        for i in 0..4 {
            a.record_at(&format!("a{i}"), Outcome::Failed, 1);
            b.record_at(&format!("b{i}"), Outcome::Failed, 1);
        }
        assert_eq!(a.report_at(1).failures, 8);
        assert!(
            b.admit_at("alice", Prospect::Likely, 1).is_err(),
            "spent by both"
        );
        assert!(
            other.admit_at("alice", Prospect::Likely, 1).is_ok(),
            "another Nextcloud"
        );
        // A success in one process clears that login in both.
        b.record_at("A0", Outcome::Accepted, 2);
        assert_eq!(a.report_at(2).failures, 7);
        for _ in 0..3 {
            a.record_at("mallory", Outcome::Failed, 2);
        }
        assert!(
            b.admit_at("mallory", Prospect::Unlikely, 2).is_err(),
            "per login across processes"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_budget_per_nextcloud_in_a_process() {
        let a = FailureBudget::for_nextcloud("https://cloud.example/", "a", 10, None).unwrap();
        let b = FailureBudget::for_nextcloud("https://cloud.example/", "b", 10, None).unwrap();
        let c = FailureBudget::for_nextcloud("https://other.example/", "c", 10, None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn fail_from(b: &FailureBudget, login: &str, client: Option<IpAddr>, now: u64) {
        let spend = b
            .admit_from_at(login, client, Prospect::Unlikely, now)
            .expect("admitted");
        b.record_from_at(login, client, Outcome::Failed, now);
        drop(spend);
    }

    #[test]
    fn forwarding_is_told_by_different_answers_only() {
        use Forwarding::*;
        // The forwarded address's state differs from this server's: honoured.
        assert_eq!(
            forwarding_evidence((false, 0), (false, 200)),
            Some(Honoured)
        );
        assert_eq!(forwarding_evidence((true, 0), (false, 0)), Some(Honoured));
        assert_eq!(
            forwarding_evidence((false, 800), (false, 0)),
            Some(Honoured)
        );
        // The same answer while this server has failures there (or is
        // allow-listed): the header changed nothing.
        assert_eq!(
            forwarding_evidence((false, 400), (false, 400)),
            Some(Ignored)
        );
        assert_eq!(forwarding_evidence((true, 0), (true, 0)), Some(Ignored));
        // Both fresh: cannot tell, which is not "ignored".
        assert_eq!(forwarding_evidence((false, 0), (false, 0)), None);
    }

    #[test]
    fn client_keys_as_nextcloud_counts_them() {
        assert_eq!(
            client_key("192.0.2.7".parse().unwrap()),
            ip("192.0.2.7").unwrap()
        );
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            ip("192.0.2.7").unwrap()
        );
        // IPv6 per /56.
        assert_eq!(
            client_key("2001:db8:1:2ff:1:2:3:4".parse().unwrap()),
            ip("2001:db8:1:200::").unwrap()
        );
    }

    #[test]
    fn a_guessing_client_spends_only_its_own_budget_once_forwarding_is_honoured() {
        let b = budget();
        b.forward_client_addresses();
        assert_eq!(b.forwarding(), Forwarding::Unknown);
        let guesser = ip("127.0.0.3");
        // Not known yet: the failure counts for this server, and the
        // guesser's address is the next one asked about.
        fail_from(&b, "nobody0", guesser, 1);
        assert_eq!(b.report_at(1).failures, 1);
        assert!(b.forwarding_probe_wanted());
        assert_eq!(b.forwarding_probe(), guesser);
        // Nextcloud holds a failure for the guesser (delay 200), none here.
        b.forwarding_found(forwarding_evidence((false, 0), (false, 200)));
        b.capabilities_at(false, 0, 1);
        assert_eq!(b.forwarding(), Forwarding::Honoured);
        assert_eq!(
            b.report_at(1).failures,
            0,
            "corrected by Nextcloud's figure"
        );
        assert!(!b.forwarding_probe_wanted());
        // The guesser: unknown names, up to the unlikely checks' share of
        // its own budget (5), then withheld.
        let mut sent = 0;
        for n in 1..=12 {
            let login = format!("nobody{n}");
            if b.admit_from_at(&login, guesser, Prospect::Unlikely, 2)
                .is_ok()
            {
                b.record_from_at(&login, guesser, Outcome::Failed, 2);
                sent += 1;
            }
        }
        assert_eq!(sent, 5);
        let r = b.report_at(2);
        assert_eq!((r.failures, r.clients_with_failures), (0, 1));
        assert_eq!(b.stats.client_failures.load(Ordering::Relaxed), 5);
        // Other users from other addresses, and this server's own checks,
        // still go through.
        for n in 0..8 {
            assert!(b
                .admit_from_at(&format!("user{n}"), ip("127.0.0.4"), Prospect::Unlikely, 2)
                .is_ok());
        }
        assert!(b.admit_at("svc-check", Prospect::Unlikely, 2).is_ok());
        // A block of the guesser's address is that address's only.
        b.record_from_at("nobody1", guesser, Outcome::Blocked, 3);
        assert!(b.may_send_from_at(guesser, 3).is_err());
        assert!(b.may_send_from_at(ip("127.0.0.4"), 3).is_ok());
        assert!(b.may_send_at(3).is_ok());
        assert_eq!(b.report_at(3).blocked_for, None);
        // The window passes: the guesser's budget is back.
        assert!(b
            .admit_from_at("nobody1", guesser, Prospect::Unlikely, 3 + WINDOW.as_secs())
            .is_ok());
    }

    #[test]
    fn when_nextcloud_ignores_the_header_the_servers_budget_applies() {
        let b = budget();
        // Off: a client address changes nothing.
        fail_from(&b, "a", ip("127.0.0.3"), 1);
        assert_eq!(b.report_at(1).failures, 1);
        assert_eq!(b.forwarding(), Forwarding::Off);
        assert!(!b.forwarding_probe_wanted());
        b.forwarding_found(Some(Forwarding::Honoured));
        assert_eq!(b.forwarding(), Forwarding::Off, "off stays off");

        let b = budget();
        b.forward_client_addresses();
        fail_from(&b, "a", ip("127.0.0.3"), 1);
        // Both answers are this server's, with its failure.
        b.forwarding_found(forwarding_evidence((false, 200), (false, 200)));
        assert_eq!(b.forwarding(), Forwarding::Ignored);
        for n in 0..4 {
            fail_from(&b, &format!("n{n}"), ip("127.0.0.3"), 2);
        }
        assert!(
            b.admit_from_at("m", ip("127.0.0.4"), Prospect::Unlikely, 2)
                .is_err(),
            "one budget for everyone: 5 failures spent the unlikely share"
        );
        assert_eq!(b.report_at(2).failures, 5);
        assert_eq!(b.report_at(2).clients_with_failures, 0);
    }

    #[test]
    fn client_addresses_kept_are_bounded() {
        let b = budget();
        b.forward_client_addresses();
        b.forwarding_found(Some(Forwarding::Honoured));
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            let client = Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)));
            fail_from(&b, "x", client, u64::from(n));
        }
        let kept = b.state.lock().unwrap().clients.len();
        assert_eq!(kept, MAX_CLIENTS);
    }
}
