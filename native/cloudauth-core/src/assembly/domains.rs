//! Per-domain settings: each XMPP domain may have its own backend, URL,
//! secret, auth domain, token formats (any per-domain setting of the
//! schema), from xcauth's SQLite `domains` table (plus our `domain_settings`
//! table beside it) and/or a plain file of `domain secret url [authdomain]
//! [key=value …]` lines, over the global settings. Sources are re-read when
//! they change (checked at most once a second), so edits take effect
//! without a restart.
//!
//! Precedence: database row, then file line, then the global settings; a
//! row's missing (NULL or empty) secret or URL is taken from the global ones.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use thiserror::Error;
use tracing::{info, warn};

use crate::backend::HttpClient;
use crate::jid;
use crate::settings::keys;
use crate::settings::values::{Layer, Origin, SettingsError, Values};
use crate::settings::{DomainSettings, SettingsResolver};
use crate::token::TokenContext;

/// How often sources are checked for changes.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// One domain's configured values, over the global ones.
#[derive(Debug, Clone)]
pub struct DomainRow {
    /// XMPP domain (lowercase).
    pub domain: String,
    /// Its settings (schema keys).
    pub layer: Layer,
}

impl DomainRow {
    fn new(domain: &str) -> Self {
        let domain = domain.to_lowercase();
        DomainRow {
            layer: Layer::new(Origin::Domain(domain.clone())),
            domain,
        }
    }

    /// The value this row gives for `key`, as text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.layer
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A source that cannot be read.
#[derive(Debug, Error)]
pub enum DomainSourceError {
    /// The file could not be read.
    #[error("per-domain file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the file is not `domain secret url [authdomain] [key=value …]`.
    #[error("per-domain file {path} line {line}: expected `domain secret url [authdomain] [key=value ...]`")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The database could not be read.
    #[error("domain database {path}: {detail}")]
    Db {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// The positional fields of a per-domain line after the domain, as xcauth has them.
const POSITIONAL: [&str; 3] = [keys::SECRET, keys::URL, keys::AUTH_DOMAIN];

/// Parses a per-domain file: `domain secret url [authdomain]` as xcauth
/// has it, and/or `key=value` fields (any per-domain setting) after the
/// domain. `#` starts a comment line.
pub fn parse_domain_file(path: &Path, text: &str) -> Result<Vec<DomainRow>, DomainSourceError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || DomainSourceError::Line {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let mut fields = line.split_whitespace();
        // The domain in the form requests are looked up with (`A.Example.`
        // is `a.example`); a name no JID can have is a mistake in the file.
        let domain = jid::canonical_domain(fields.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let mut row = DomainRow::new(&domain);
        let mut positional = POSITIONAL.iter();
        for f in fields {
            match f.split_once('=') {
                Some((k, v)) if !k.is_empty() => row.layer.set(k, v),
                _ => row.layer.set(*positional.next().ok_or_else(bad)?, f),
            }
        }
        if row.layer.entries.is_empty() {
            return Err(bad());
        }
        rows.push(row);
    }
    Ok(rows)
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Reads xcauth's `domains` table (extra columns tolerated) and our
/// `domain_settings (xmppdomain, key, value)` table beside it, for the
/// settings xcauth's columns have no room for.
pub(crate) fn read_domain_table(
    conn: &Connection,
    path: &Path,
) -> Result<Vec<DomainRow>, DomainSourceError> {
    let db = |e: rusqlite::Error| DomainSourceError::Db {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let mut rows: Vec<DomainRow> = Vec::new();
    // Rows keyed by the canonical domain, as requests are looked up; a
    // domain no JID can have is left out (no request could use it).
    let row_of = |rows: &mut Vec<DomainRow>, domain: &str| -> Option<usize> {
        let Ok(d) = jid::canonical_domain(domain) else {
            warn!(
                "domain database {}: row for {domain:?} ignored: not a JID's domain",
                path.display()
            );
            return None;
        };
        match rows.iter().position(|r| r.domain == d) {
            Some(i) => Some(i),
            None => {
                rows.push(DomainRow::new(&d));
                Some(rows.len() - 1)
            }
        }
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    if table_exists(conn, "domains").map_err(db)? {
        let mut stmt = conn
            .prepare("SELECT xmppdomain, authsecret, authurl, authdomain FROM domains")
            .map_err(db)?;
        let found = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    nonempty(r.get(1)?),
                    nonempty(r.get(2)?),
                    nonempty(r.get(3)?),
                ))
            })
            .map_err(db)?;
        for f in found {
            let (domain, secret, url, auth_domain) = f.map_err(db)?;
            let Some(i) = row_of(&mut rows, &domain) else {
                continue;
            };
            for (k, v) in POSITIONAL.iter().zip([secret, url, auth_domain]) {
                if let Some(v) = v {
                    rows[i].layer.set(*k, v);
                }
            }
        }
    }
    if table_exists(conn, "domain_settings").map_err(db)? {
        let mut stmt = conn
            .prepare("SELECT xmppdomain, key, value FROM domain_settings ORDER BY rowid")
            .map_err(db)?;
        let found = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db)?;
        for f in found {
            let (domain, key, value) = f.map_err(db)?;
            let Some(i) = row_of(&mut rows, &domain) else {
                continue;
            };
            rows[i].layer.set(key, value);
        }
    }
    Ok(rows)
}

/// Reads the rows of the database at `path` once (for a look at them, as
/// the doctor takes; serving watches the database instead).
pub fn read_domain_db(path: &Path) -> Result<Vec<DomainRow>, DomainSourceError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| DomainSourceError::Db {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let _ = conn.busy_timeout(Duration::from_secs(2));
    read_domain_table(&conn, path)
}

/// A watched source of rows.
trait Source: Send {
    /// True when the source changed since the last load (or was never loaded).
    fn changed(&mut self) -> bool;
    /// Reads all rows.
    fn load(&mut self) -> Result<Vec<DomainRow>, DomainSourceError>;
}

struct FileSource {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Source for FileSource {
    fn changed(&mut self) -> bool {
        stamp(&self.path) != self.seen || self.seen.is_none()
    }

    fn load(&mut self) -> Result<Vec<DomainRow>, DomainSourceError> {
        self.seen = stamp(&self.path);
        let text = fs::read_to_string(&self.path).map_err(|source| DomainSourceError::File {
            path: self.path.clone(),
            source,
        })?;
        parse_domain_file(&self.path, &text)
    }
}

struct DbSource {
    path: PathBuf,
    conn: Connection,
    seen: Option<i64>,
}

impl Source for DbSource {
    fn changed(&mut self) -> bool {
        // data_version changes whenever another connection commits.
        let v = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .ok();
        v != self.seen || self.seen.is_none()
    }

    fn load(&mut self) -> Result<Vec<DomainRow>, DomainSourceError> {
        self.seen = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .ok();
        read_domain_table(&self.conn, &self.path)
    }
}

/// What turns settings into a served domain: the shared HTTP client and
/// what token formats need.
#[derive(Clone)]
pub struct Builder {
    /// The process's HTTP client.
    pub http: Arc<HttpClient>,
    /// For token formats.
    pub tokens: TokenContext,
}

impl Builder {
    /// A builder with its own HTTP client and a per-process replay guard.
    pub fn new(timeouts: crate::Timeouts) -> Self {
        Builder {
            http: Arc::new(HttpClient::new(timeouts)),
            tokens: TokenContext {
                replay: Arc::new(crate::token::MemoryReplayGuard::default()),
            },
        }
    }

    /// The domain served by `values`.
    pub fn build(&self, values: &Values) -> Result<Arc<DomainSettings>, SettingsError> {
        DomainSettings::build(values, &self.http, &self.tokens).map(Arc::new)
    }
}

/// A served domain: the row it was built from and what was built.
struct Served {
    row: Layer,
    settings: Arc<DomainSettings>,
}

struct Snapshot {
    domains: HashMap<String, Served>,
    checked: Instant,
}

/// Settings per XMPP domain from all configured sources.
pub struct DomainTable {
    global: Result<Arc<DomainSettings>, SettingsError>,
    global_values: Values,
    builder: Builder,
    sources: Mutex<Vec<Box<dyn Source>>>,
    snapshot: RwLock<Snapshot>,
}

impl DomainTable {
    /// A table with the global settings and, optionally, a per-domain file
    /// and an xcauth database. Sources are read once now; errors here are fatal.
    pub fn new(
        global: Values,
        builder: Builder,
        file: Option<&Path>,
        db: Option<&Path>,
    ) -> Result<Self, DomainSourceError> {
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        // Lower precedence first: later sources override earlier rows.
        if let Some(p) = file {
            sources.push(Box::new(FileSource {
                path: p.to_path_buf(),
                seen: None,
            }));
        }
        if let Some(p) = db {
            let conn = Connection::open(p).map_err(|e| DomainSourceError::Db {
                path: p.to_path_buf(),
                detail: e.to_string(),
            })?;
            let _ = conn.busy_timeout(Duration::from_secs(2));
            sources.push(Box::new(DbSource {
                path: p.to_path_buf(),
                conn,
                seen: None,
            }));
        }
        let table = DomainTable {
            global: builder.build(&global),
            global_values: global,
            builder,
            sources: Mutex::new(sources),
            snapshot: RwLock::new(Snapshot {
                domains: HashMap::new(),
                checked: Instant::now(),
            }),
        };
        let domains = table.load_all(&HashMap::new())?;
        if let Ok(mut s) = table.snapshot.write() {
            s.domains = domains;
        }
        Ok(table)
    }

    /// Number of domains with their own settings.
    pub(crate) fn domain_count(&self) -> usize {
        self.snapshot.read().map(|s| s.domains.len()).unwrap_or(0)
    }

    /// True when some domain can be served (own settings or global ones).
    pub fn serves_anything(&self) -> bool {
        self.global.is_ok() || self.domain_count() > 0
    }

    /// Why the global settings serve no domain, if they do not.
    pub fn global_problem(&self) -> Option<&SettingsError> {
        self.global.as_ref().err()
    }

    fn merge(&self, row: &Layer) -> Result<Arc<DomainSettings>, SettingsError> {
        let resolved = self.global_values.overlay(row)?;
        for w in resolved.warnings {
            warn!("{w}");
        }
        self.builder.build(&resolved.values)
    }

    /// Reads every source. A domain whose row is unchanged from `previous`
    /// keeps its built settings, generation included: a source is re-read
    /// whenever anything commits to its database (the password cache's own
    /// writes too), and what was learnt from a backend (a refused password)
    /// must outlive a reload that changed nothing.
    fn load_all(
        &self,
        previous: &HashMap<String, Served>,
    ) -> Result<HashMap<String, Served>, DomainSourceError> {
        let mut sources = match self.sources.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut rows: HashMap<String, Layer> = HashMap::new();
        for src in sources.iter_mut() {
            for row in src.load()? {
                // Later sources override earlier rows.
                rows.insert(row.domain, row.layer);
            }
        }
        let mut domains = HashMap::new();
        for (domain, row) in rows {
            if let Some(old) = previous.get(&domain).filter(|old| old.row == row) {
                let settings = Arc::clone(&old.settings);
                domains.insert(domain, Served { row, settings });
                continue;
            }
            match self.merge(&row) {
                Ok(settings) => {
                    domains.insert(domain, Served { row, settings });
                }
                Err(e) => warn!("domain {domain}: not served: {e}"),
            }
        }
        Ok(domains)
    }

    fn refresh_if_due(&self) {
        let due = self
            .snapshot
            .read()
            .map(|s| s.checked.elapsed() >= RECHECK)
            .unwrap_or(false);
        if !due {
            return;
        }
        let changed = match self.sources.lock() {
            Ok(mut s) => s.iter_mut().any(|src| src.changed()),
            Err(_) => false,
        };
        if !changed {
            if let Ok(mut snap) = self.snapshot.write() {
                snap.checked = Instant::now();
            }
            return;
        }
        let reloaded = match self.snapshot.read() {
            Ok(snap) => self.load_all(&snap.domains),
            Err(_) => self.load_all(&HashMap::new()),
        };
        if let Ok(mut snap) = self.snapshot.write() {
            snap.checked = Instant::now();
            match reloaded {
                Ok(domains) => {
                    let same = domains.len() == snap.domains.len()
                        && domains.iter().all(|(d, s)| {
                            snap.domains
                                .get(d)
                                .is_some_and(|old| Arc::ptr_eq(&old.settings, &s.settings))
                        });
                    if !same {
                        info!("per-domain settings reloaded: {} domains", domains.len());
                    }
                    snap.domains = domains;
                }
                Err(e) => {
                    warn!("per-domain settings not reloaded, keeping the previous ones: {e}")
                }
            }
        }
    }
}

impl SettingsResolver for DomainTable {
    fn resolve(&self, xmpp_domain: &str) -> Option<Arc<DomainSettings>> {
        self.refresh_if_due();
        let own = self
            .snapshot
            .read()
            .ok()
            .and_then(|s| s.domains.get(xmpp_domain).map(|d| Arc::clone(&d.settings)));
        own.or_else(|| self.global.as_ref().ok().cloned())
    }

    fn listed(&self, xmpp_domain: &str) -> bool {
        self.snapshot
            .read()
            .is_ok_and(|s| s.domains.contains_key(xmpp_domain))
    }

    fn served(&self) -> Vec<Arc<DomainSettings>> {
        let mut all: Vec<_> = self.global.as_ref().ok().cloned().into_iter().collect();
        if let Ok(s) = self.snapshot.read() {
            all.extend(s.domains.values().map(|d| Arc::clone(&d.settings)));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Timeouts;
    use crate::secret::Secret;
    use crate::token::MemoryReplayGuard;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("cloudauth-domains-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn builder() -> Builder {
        Builder {
            http: Arc::new(HttpClient::new(Timeouts {
                connect: Duration::from_secs(1),
                total: Duration::from_secs(1),
            })),
            tokens: TokenContext {
                replay: Arc::new(MemoryReplayGuard::default()),
            },
        }
    }

    fn values(kv: &[(&str, &str)]) -> Values {
        let mut l = Layer::new(Origin::CommandLine);
        for (k, v) in kv {
            l.set(*k, *v);
        }
        Values::resolve(&[l], |_| true).unwrap().values
    }

    fn global() -> Values {
        values(&[("url", "https://global/api"), ("secret", "global-secret")])
    }

    fn table(g: Values, file: Option<&Path>, db: Option<&Path>) -> DomainTable {
        DomainTable::new(g, builder(), file, db).unwrap()
    }

    fn url_of(t: &DomainTable, d: &str) -> String {
        t.resolve(d)
            .unwrap()
            .values
            .url(keys::URL)
            .unwrap()
            .to_string()
    }

    #[test]
    fn file_lines() {
        let rows = parse_domain_file(
            Path::new("f"),
            "# c\nA.example s1 https://a/api\nb.example s2 https://b/api b.org\nc.example backend=json url=https://c/\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].domain, "a.example");
        assert_eq!(rows[1].get(keys::AUTH_DOMAIN), Some("b.org"));
        assert_eq!(rows[2].get(keys::BACKEND), Some("json"));
        assert_eq!(rows[2].get(keys::URL), Some("https://c/"));
        assert!(parse_domain_file(Path::new("f"), "alone\n").is_err());
        // Found by the domain_file fuzz target: rows are keyed as requests
        // are looked up, and a name no JID has is an error in the file.
        let rows = parse_domain_file(Path::new("f"), "B.Example. s u\n").unwrap();
        assert_eq!(rows[0].domain, "b.example");
        for bad in [
            "a\0b s u\n",
            "a@b s u\n",
            "a/b s u\n",
            "a.. s u\n",
            ". s u\n",
        ] {
            assert!(parse_domain_file(Path::new("f"), bad).is_err(), "{bad:?}");
        }
        assert!(parse_domain_file(Path::new("f"), "a s u d extra\n").is_err());
    }

    #[test]
    fn precedence_and_fallback() {
        let d = dir("prec");
        let file = d.join("domains.txt");
        fs::write(
            &file,
            "a.example file-secret https://file/a\nb.example file-b https://file/b\n",
        )
        .unwrap();
        let db = d.join("xcauth.sqlite3");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE domains (xmppdomain TEXT PRIMARY KEY, authsecret TEXT, authurl TEXT, authdomain TEXT, regcontact TEXT, extra TEXT);
             INSERT INTO domains (xmppdomain, authsecret, authurl, authdomain) VALUES ('a.example', 'db-secret', 'https://db/a', 'a.org');
             INSERT INTO domains (xmppdomain, authsecret, authurl, authdomain) VALUES ('c.example', NULL, '', NULL);
             CREATE TABLE domain_settings (xmppdomain TEXT, key TEXT, value TEXT);
             INSERT INTO domain_settings VALUES ('j.example', 'backend', 'json');
             INSERT INTO domain_settings VALUES ('j.example', 'url', 'https://json/');",
        )
        .unwrap();
        let t = table(global(), Some(&file), Some(&db));
        let a = t.resolve("a.example").unwrap();
        assert_eq!(
            (
                a.values.url(keys::URL).unwrap().as_str(),
                a.values.secret(keys::SECRET).unwrap().expose(),
                a.auth_domain("a.example")
            ),
            ("https://db/a", &b"db-secret"[..], "a.org")
        );
        let b = t.resolve("b.example").unwrap();
        assert_eq!(
            (url_of(&t, "b.example"), b.auth_domain("b.example")),
            ("https://file/b".to_string(), "b.example")
        );
        let c = t.resolve("c.example").unwrap();
        assert_eq!(
            (url_of(&t, "c.example"), c.values.secret(keys::SECRET)),
            (
                "https://global/api".to_string(),
                Some(&Secret::new("global-secret"))
            )
        );
        assert_eq!(url_of(&t, "unknown.example"), "https://global/api");
        assert_eq!(t.resolve("j.example").unwrap().backend.name(), "json");
        assert_eq!(t.resolve("a.example").unwrap().backend.name(), "jsxc");
    }

    #[test]
    fn without_global_only_listed_domains_are_served() {
        let d = dir("noglobal");
        let file = d.join("domains.txt");
        fs::write(&file, "a.example s https://a\n").unwrap();
        let t = table(values(&[]), Some(&file), None);
        assert!(t.resolve("a.example").is_some());
        assert!(t.resolve("b.example").is_none());
        assert!(t
            .global_problem()
            .is_some_and(|e| e.to_string().contains("url")));
    }

    #[test]
    fn a_broken_row_leaves_its_domain_unserved() {
        let d = dir("broken");
        let file = d.join("domains.txt");
        fs::write(&file, "a.example backend=ldap\nb.example s https://b\n").unwrap();
        let t = table(values(&[]), Some(&file), None);
        assert!(t.resolve("a.example").is_none());
        assert!(t.resolve("b.example").is_some());
    }

    #[test]
    fn database_edits_apply_without_restart() {
        let d = dir("reload");
        let db = d.join("xcauth.sqlite3");
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE domains (xmppdomain TEXT PRIMARY KEY, authsecret TEXT, authurl TEXT, authdomain TEXT);
                 INSERT INTO domains VALUES ('a.example', 'one', 'https://a/1', NULL);",
            )
            .unwrap();
        let t = table(global(), None, Some(&db));
        assert_eq!(url_of(&t, "a.example"), "https://a/1");
        writer
            .execute("UPDATE domains SET authurl = 'https://a/2'", [])
            .unwrap();
        writer
            .execute(
                "INSERT INTO domains VALUES ('n.example', 'n', 'https://n', NULL)",
                [],
            )
            .unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_eq!(url_of(&t, "a.example"), "https://a/2");
        assert_eq!(url_of(&t, "n.example"), "https://n/");
    }

    #[test]
    fn database_rows_are_keyed_by_the_canonical_domain() {
        let d = dir("canonical-db");
        let db = d.join("xcauth.sqlite3");
        let _ = std::fs::remove_file(&db);
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE domains (xmppdomain TEXT PRIMARY KEY, authsecret TEXT, authurl TEXT, authdomain TEXT);
                 INSERT INTO domains VALUES ('B.Example.', 'b', 'https://b/1', NULL);
                 INSERT INTO domains VALUES ('bad@x', 'x', 'https://x/1', NULL);",
            )
            .unwrap();
        let rows = read_domain_db(&db).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.domain.as_str()).collect();
        assert_eq!(names, ["b.example"]);
        let t = table(global(), None, Some(&db));
        assert_eq!(url_of(&t, "b.example"), "https://b/1");
    }

    #[test]
    fn unrelated_commits_keep_the_built_settings() {
        // The password cache shares the database: its writes change
        // data_version, which must not make every domain "new" (and forget
        // the passwords its backend refused a moment ago).
        let d = dir("unrelated");
        let db = d.join("xcauth.sqlite3");
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE domains (xmppdomain TEXT PRIMARY KEY, authsecret TEXT, authurl TEXT, authdomain TEXT);
                 INSERT INTO domains VALUES ('a.example', 'one', 'https://a/1', NULL);
                 INSERT INTO domains VALUES ('b.example', 'two', 'https://b/1', NULL);
                 CREATE TABLE authcache (jid TEXT);",
            )
            .unwrap();
        let t = table(global(), None, Some(&db));
        let (a, b) = (
            t.resolve("a.example").unwrap().generation,
            t.resolve("b.example").unwrap().generation,
        );
        writer
            .execute("INSERT INTO authcache VALUES ('x@a.example')", [])
            .unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_eq!(t.resolve("a.example").unwrap().generation, a);
        writer
            .execute(
                "UPDATE domains SET authurl = 'https://a/2' WHERE xmppdomain = 'a.example'",
                [],
            )
            .unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_ne!(t.resolve("a.example").unwrap().generation, a, "a changed");
        assert_eq!(t.resolve("b.example").unwrap().generation, b, "b did not");
    }

    #[test]
    fn file_edits_apply_and_broken_edits_keep_the_old_table() {
        let d = dir("filereload");
        let file = d.join("domains.txt");
        fs::write(&file, "a.example s https://a/1\n").unwrap();
        let t = table(values(&[]), Some(&file), None);
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        fs::write(&file, "a.example s https://a/22\n").unwrap();
        assert_eq!(url_of(&t, "a.example"), "https://a/22");
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        fs::write(&file, "broken\n").unwrap();
        assert_eq!(url_of(&t, "a.example"), "https://a/22");
    }
}
