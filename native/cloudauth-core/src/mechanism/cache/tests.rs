//! Cache timeline with an injected clock, and xcauth databases used in place.

use std::path::PathBuf;
use std::time::Duration;

use super::sqlite::SqliteStore;
use super::*;

const T0: u64 = 1_800_000_000;
const H: u64 = 3600;
const D: u64 = 86_400;
const W: u64 = 604_800;

/// Hashes made by Python's bcrypt (as xcauth does), `$2b$` prefix.
const PY_ALICE: &str = "$2b$04$1QQCdioUzDjvF1guqVvJT.Wh3fj.8fSWtd3AH/Xmb66l5SDOfn9ie"; // alice-pw
const PY_JUERGEN: &str = "$2b$05$v9CXnSOIbWhSzhgL1yzLruM2H74DsxUf4CjtbeVliolqKzkJJDwMu"; // pässwörd-ü

fn memory_cache() -> PasswordCache {
    PasswordCache::new(Box::new(MemoryStore::default()), CacheTtls::default(), 4).unwrap()
}

/// Full check as the decision does it: fast lookup, then bcrypt if needed.
fn check(c: &PasswordCache, jid: &str, pw: &str, now: u64, rules: Rules) -> bool {
    match c.lookup(jid, pw, now, rules) {
        Lookup::Hit => true,
        Lookup::Miss => false,
        Lookup::Verify { pwhash } => c.verify_slow(jid, pw, &pwhash, now),
    }
}

fn verified(c: &PasswordCache, jid: &str, pw: &str, now: u64) {
    let h = c.hash(pw).unwrap();
    c.record_verified(jid, pw, &h, now);
}

#[test]
fn empty_cache_misses() {
    let c = memory_cache();
    assert_eq!(c.lookup("a@b", "pw", T0, Rules::Normal), Lookup::Miss);
    assert_eq!(c.lookup("a@b", "pw", T0, Rules::Unreachable), Lookup::Miss);
}

#[test]
fn query_ttl_edge_both_sides() {
    let c = memory_cache();
    verified(&c, "a@b", "pw", T0);
    assert!(
        check(&c, "a@b", "pw", T0 + H - 1, Rules::Normal),
        "inside query TTL"
    );
    // The hit above moved anyauth to T0+H-1.
    assert!(check(&c, "a@b", "pw", T0 + 2 * H - 2, Rules::Normal));
    assert!(
        !check(&c, "a@b", "pw", T0 + 3 * H - 2, Rules::Normal),
        "query TTL passed exactly"
    );
}

#[test]
fn verification_ttl_edge_both_sides() {
    let c = memory_cache();
    verified(&c, "a@b", "pw", T0);
    // Keep querying every 30 min so the query TTL never runs out.
    let mut t = T0;
    while t + 1800 < T0 + D {
        t += 1800;
        assert!(check(&c, "a@b", "pw", t, Rules::Normal), "at {}", t - T0);
    }
    assert!(
        check(&c, "a@b", "pw", T0 + D - 1, Rules::Normal),
        "last second of verification TTL"
    );
    assert!(
        !check(&c, "a@b", "pw", T0 + D, Rules::Normal),
        "verification TTL passed"
    );
}

#[test]
fn unreachable_ttl_edge_both_sides() {
    let c = memory_cache();
    verified(&c, "a@b", "pw", T0);
    assert!(
        !check(&c, "a@b", "pw", T0 + 2 * H, Rules::Normal),
        "normal rules: query TTL over"
    );
    assert!(
        check(&c, "a@b", "pw", T0 + W - 1, Rules::Unreachable),
        "unreachable: inside a week"
    );
    assert!(
        !check(&c, "a@b", "pw", T0 + W, Rules::Unreachable),
        "unreachable TTL passed"
    );
}

#[test]
fn wrong_password_never_matches() {
    let c = memory_cache();
    verified(&c, "a@b", "pw", T0);
    assert!(!check(&c, "a@b", "wrong", T0 + 1, Rules::Normal));
    assert!(!check(&c, "a@b", "wrong", T0 + 1, Rules::Unreachable));
    assert!(!check(&c, "other@b", "pw", T0 + 1, Rules::Unreachable));
}

#[test]
fn repeated_hit_uses_the_digest_not_bcrypt() {
    let c = memory_cache();
    verified(&c, "a@b", "pw", T0);
    // record_verified remembered the match: no bcrypt needed.
    assert_eq!(c.lookup("a@b", "pw", T0 + 1, Rules::Normal), Lookup::Hit);
    // Another password is never a digest hit.
    assert!(matches!(
        c.lookup("a@b", "other", T0 + 1, Rules::Normal),
        Lookup::Verify { .. }
    ));
}

#[test]
fn changed_hash_invalidates_the_digest() {
    let c = memory_cache();
    verified(&c, "a@b", "old", T0);
    assert_eq!(c.lookup("a@b", "old", T0 + 1, Rules::Normal), Lookup::Hit);
    // Another process stored the new password.
    let new_hash = c.hash("new").unwrap();
    c.store.record_verified("a@b", &new_hash, T0 + 2).unwrap();
    assert!(matches!(
        c.lookup("a@b", "old", T0 + 3, Rules::Normal),
        Lookup::Verify { .. }
    ));
    assert!(!check(&c, "a@b", "old", T0 + 3, Rules::Normal));
    assert!(check(&c, "a@b", "new", T0 + 3, Rules::Normal));
}

#[test]
fn reusable_hash_only_for_the_same_password() {
    let c = memory_cache();
    verified(&c, "a@b", "pw", T0);
    assert!(c.reusable_hash("a@b", "pw").is_some());
    assert!(c.reusable_hash("a@b", "other").is_none());
    assert!(c.reusable_hash("x@b", "pw").is_none());
}

#[test]
fn long_passwords_are_not_cached() {
    let c = memory_cache();
    let long = "x".repeat(BCRYPT_MAX_PASSWORD + 1);
    assert_eq!(c.hash(&long), None);
    assert_eq!(c.lookup("a@b", &long, T0, Rules::Normal), Lookup::Miss);
}

/// An xcauth row for a password longer than bcrypt reads holds the hash of
/// its first 72 bytes (Python's bcrypt truncated silently): another password
/// with the same 72-byte prefix must not be admitted by it.
#[test]
fn an_old_row_for_a_long_password_admits_no_password_sharing_its_prefix() {
    let c = memory_cache();
    let long = format!(
        "{}-the-rest-of-a-long-passphrase",
        "p".repeat(BCRYPT_MAX_PASSWORD)
    );
    let prefix = &long[..BCRYPT_MAX_PASSWORD];
    let truncated_hash = bcrypt::hash(prefix, 4).unwrap();
    c.record_verified("a@b", prefix, &truncated_hash, T0);
    let other = format!("{prefix}-something-else");
    assert!(!check(&c, "a@b", &other, T0 + 1, Rules::Normal));
    assert!(!check(&c, "a@b", &long, T0 + 1, Rules::Unreachable));
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cloudauth-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("xcauth.sqlite3")
}

/// A database as xcauth creates it, with Python datetime strings and `$2b$` hashes.
fn xcauth_db(name: &str) -> PathBuf {
    let path = temp_db(name);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE domains (xmppdomain TEXT PRIMARY KEY, authsecret TEXT, authurl TEXT, authdomain TEXT,
                               regcontact TEXT, regfirst TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                               reglatest TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE authcache (jid TEXT PRIMARY KEY, pwhash TEXT,
                                 firstauth TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                                 remoteauth TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                                 anyauth TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO authcache VALUES ('alice@example.org', '{PY_ALICE}',
             '2027-01-10 08:00:00.000000', '2027-01-15 07:30:00.123456', '2027-01-15 07:59:00.654321');
         INSERT INTO authcache VALUES ('jürgen@xn--mnchen-3ya.de', '{PY_JUERGEN}',
             '2027-01-10 08:00:00', '2027-01-15 07:30:00', '2027-01-15 07:59:00');"
    ))
    .unwrap();
    path
}

#[test]
fn xcauth_database_is_used_in_place() {
    let path = xcauth_db("inplace");
    let c = PasswordCache::new(
        Box::new(SqliteStore::open(&path).unwrap()),
        CacheTtls::default(),
        4,
    )
    .unwrap();
    // T0 = 2027-01-15 08:00:00 UTC: verified 30 min ago, queried 1 min ago.
    assert!(check(
        &c,
        "alice@example.org",
        "alice-pw",
        T0,
        Rules::Normal
    ));
    assert!(!check(&c, "alice@example.org", "wrong", T0, Rules::Normal));
    assert!(check(
        &c,
        "jürgen@xn--mnchen-3ya.de",
        "pässwörd-ü",
        T0,
        Rules::Normal
    ));
    // The hit wrote anyauth back in xcauth's format.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let any: String = conn
        .query_row(
            "SELECT anyauth FROM authcache WHERE jid = 'alice@example.org'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(any, "2027-01-15 08:00:00");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_store_keeps_firstauth_and_updates_the_rest() {
    let path = xcauth_db("update");
    let store = SqliteStore::open(&path).unwrap();
    store
        .record_verified("alice@example.org", "$2b$04$x", T0 + 10)
        .unwrap();
    store
        .record_verified("new@example.org", "$2b$04$y", T0 + 20)
        .unwrap();
    let a = store.get("alice@example.org").unwrap().unwrap();
    assert_eq!(a.firstauth, T0 - 5 * D);
    assert_eq!(
        (a.remoteauth, a.anyauth, a.pwhash.as_str()),
        (T0 + 10, T0 + 10, "$2b$04$x")
    );
    let n = store.get("new@example.org").unwrap().unwrap();
    assert_eq!(
        (n.firstauth, n.remoteauth, n.anyauth),
        (T0 + 20, T0 + 20, T0 + 20)
    );
    store.record_query("new@example.org", T0 + 30).unwrap();
    assert_eq!(
        store.get("new@example.org").unwrap().unwrap().anyauth,
        T0 + 30
    );
    assert_eq!(store.get("nobody@example.org").unwrap(), None);
}

#[test]
fn persistent_entries_survive_a_new_process_view() {
    let path = temp_db("reopen");
    {
        let c = PasswordCache::new(
            Box::new(SqliteStore::open(&path).unwrap()),
            CacheTtls::default(),
            4,
        )
        .unwrap();
        verified(&c, "a@b", "pw", T0);
    }
    let c = PasswordCache::new(
        Box::new(SqliteStore::open(&path).unwrap()),
        CacheTtls::default(),
        4,
    )
    .unwrap();
    // A new process has no digest yet: bcrypt decides, then the digest serves.
    assert!(matches!(
        c.lookup("a@b", "pw", T0 + 5, Rules::Normal),
        Lookup::Verify { .. }
    ));
    assert!(check(&c, "a@b", "pw", T0 + 5, Rules::Normal));
    assert_eq!(c.lookup("a@b", "pw", T0 + 6, Rules::Normal), Lookup::Hit);
}

/// Run by `kill_9_loses_nothing_committed` in a child process: commits
/// entries one by one and reports each commit on stdout.
#[test]
fn kill9_writer_child() {
    let Ok(path) = std::env::var("CLOUDAUTH_KILL9_DB") else {
        return;
    };
    let store = SqliteStore::open(std::path::Path::new(&path)).unwrap();
    use std::io::Write;
    let mut out = std::io::stdout();
    for i in 0..1_000_000u64 {
        store
            .record_verified(&format!("user{i}@example.org"), "$2b$04$hash", T0 + i)
            .unwrap();
        writeln!(out, "committed {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_loses_nothing_committed() {
    use std::io::{BufRead, BufReader};
    let path = temp_db("kill9");
    SqliteStore::open(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "mechanism::cache::tests::kill9_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CLOUDAUTH_KILL9_DB", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = None;
    let started = std::time::Instant::now();
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("committed ") {
            last = n.parse::<u64>().ok();
            if last >= Some(300) || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
    }
    // SIGKILL in the middle of the stream of writes.
    child.kill().unwrap();
    let _ = child.wait();
    let last = last.expect("the writer committed nothing");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..=last {
        let e = store.get(&format!("user{i}@example.org")).unwrap();
        assert!(e.is_some(), "entry {i} of {last} committed entries lost");
    }
}

#[test]
fn processes_opening_a_new_database_at_once_all_succeed() {
    // ejabberd starts the whole extauth pool at once; every process opens
    // (and the first creates) the same database and switches it to WAL.
    for round in 0..20 {
        let path = temp_db(&format!("race{round}"));
        let gate = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (p, g) = (path.clone(), std::sync::Arc::clone(&gate));
                std::thread::spawn(move || {
                    g.wait();
                    SqliteStore::open(&p).map(|_| ())
                })
            })
            .collect();
        for o in openers {
            let opened = o.join().unwrap();
            assert!(opened.is_ok(), "round {round}: {opened:?}");
        }
    }
}

/// A state database cloudauth creates has xcauth's whole schema (xcauth
/// stops at the first missing table) and is not readable by others.
#[test]
fn a_database_cloudauth_creates_is_one_xcauth_can_use() {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_db("schema");
    let _ = std::fs::remove_file(&path);
    let _store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    for query in [
        "SELECT xmppdomain, authsecret, authurl, authdomain, regcontact, regfirst, reglatest FROM domains",
        "SELECT jid, pwhash, firstauth, remoteauth, anyauth FROM authcache",
        "SELECT jid, fullname, grouplist, responsehash FROM rosterinfo",
        "SELECT groupname, userlist FROM rostergroups",
    ] {
        assert!(conn.prepare(query).is_ok(), "{query}");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}
