//! Per-domain settings: each XMPP domain may have its own API secret, API
//! URL and auth domain, from xcauth's SQLite `domains` table and/or a plain
//! file of `domain secret url [authdomain]` lines, falling back to the global
//! settings. Sources are re-read when they change (checked at most once a
//! second), so edits take effect without a restart.
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

use crate::secret::Secret;
use crate::settings::{DomainSettings, SettingsResolver};

/// How often sources are checked for changes.
pub const RECHECK: Duration = Duration::from_secs(1);

/// One domain's configured values; `None` falls back to the global ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    /// XMPP domain (lowercase).
    pub domain: String,
    /// API secret.
    pub secret: Option<String>,
    /// API URL.
    pub url: Option<String>,
    /// Domain sent to the cloud.
    pub auth_domain: Option<String>,
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
    /// A line of the file is not `domain secret url [authdomain]`.
    #[error("per-domain file {path} line {line}: expected `domain secret url [authdomain]`")]
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

/// Parses a per-domain file. `#` starts a comment line.
pub fn parse_domain_file(path: &Path, text: &str) -> Result<Vec<DomainRow>, DomainSourceError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if !(3..=4).contains(&f.len()) {
            return Err(DomainSourceError::Line {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        rows.push(DomainRow {
            domain: f[0].to_lowercase(),
            secret: Some(f[1].to_string()),
            url: Some(f[2].to_string()),
            auth_domain: f.get(3).map(|s| (*s).to_string()),
        });
    }
    Ok(rows)
}

/// Reads the `domains` table of an xcauth database (extra columns tolerated).
pub fn read_domain_table(
    conn: &Connection,
    path: &Path,
) -> Result<Vec<DomainRow>, DomainSourceError> {
    let db = |e: rusqlite::Error| DomainSourceError::Db {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let exists: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'domains'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db)?
        > 0;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT xmppdomain, authsecret, authurl, authdomain FROM domains")
        .map_err(db)?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let rows = stmt
        .query_map([], |r| {
            Ok(DomainRow {
                domain: r.get::<_, String>(0)?.to_lowercase(),
                secret: nonempty(r.get(1)?),
                url: nonempty(r.get(2)?),
                auth_domain: nonempty(r.get(3)?),
            })
        })
        .map_err(db)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db)
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

/// Global fallback settings (`--url`, `--secret`).
#[derive(Debug, Clone, Default)]
pub struct GlobalSettings {
    /// API URL.
    pub url: Option<String>,
    /// API secret.
    pub secret: Option<Secret>,
}

struct Snapshot {
    domains: HashMap<String, Arc<DomainSettings>>,
    checked: Instant,
}

/// Settings per XMPP domain from all configured sources.
pub struct DomainTable {
    global: Option<Arc<DomainSettings>>,
    global_parts: GlobalSettings,
    sources: Mutex<Vec<Box<dyn Source>>>,
    snapshot: RwLock<Snapshot>,
}

impl DomainTable {
    /// A table with the global settings and, optionally, a per-domain file
    /// and an xcauth database. Sources are read once now; errors here are fatal.
    pub fn new(
        global: GlobalSettings,
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
        let global_settings = match (&global.url, &global.secret) {
            (Some(url), Some(secret)) => Some(Arc::new(DomainSettings::new(
                url.clone(),
                secret.clone(),
                None,
            ))),
            _ => None,
        };
        let table = DomainTable {
            global: global_settings,
            global_parts: global,
            sources: Mutex::new(sources),
            snapshot: RwLock::new(Snapshot {
                domains: HashMap::new(),
                checked: Instant::now(),
            }),
        };
        let domains = table.load_all()?;
        if let Ok(mut s) = table.snapshot.write() {
            s.domains = domains;
        }
        Ok(table)
    }

    /// Number of domains with their own settings.
    pub fn domain_count(&self) -> usize {
        self.snapshot.read().map(|s| s.domains.len()).unwrap_or(0)
    }

    /// True when some domain can be served (own settings or global ones).
    pub fn serves_anything(&self) -> bool {
        self.global.is_some() || self.domain_count() > 0
    }

    fn merge(&self, row: DomainRow) -> Option<(String, Arc<DomainSettings>)> {
        let secret = row
            .secret
            .map(|s| Secret::new(s.into_bytes()))
            .or_else(|| self.global_parts.secret.clone())?;
        let url = row.url.or_else(|| self.global_parts.url.clone())?;
        Some((
            row.domain,
            Arc::new(DomainSettings::new(url, secret, row.auth_domain)),
        ))
    }

    fn load_all(&self) -> Result<HashMap<String, Arc<DomainSettings>>, DomainSourceError> {
        let mut sources = match self.sources.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut domains = HashMap::new();
        for src in sources.iter_mut() {
            for row in src.load()? {
                let name = row.domain.clone();
                match self.merge(row) {
                    Some((d, s)) => {
                        domains.insert(d, s);
                    }
                    None => {
                        warn!("domain {name}: no secret or URL (and no global one); not served")
                    }
                }
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
        let reloaded = if changed { Some(self.load_all()) } else { None };
        if let Ok(mut snap) = self.snapshot.write() {
            snap.checked = Instant::now();
            match reloaded {
                Some(Ok(domains)) => {
                    info!("per-domain settings reloaded: {} domains", domains.len());
                    snap.domains = domains;
                }
                Some(Err(e)) => {
                    warn!("per-domain settings not reloaded, keeping the previous ones: {e}")
                }
                None => {}
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
            .and_then(|s| s.domains.get(xmpp_domain).cloned());
        own.or_else(|| self.global.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("cloudauth-domains-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn global() -> GlobalSettings {
        GlobalSettings {
            url: Some("https://global/api".into()),
            secret: Some(Secret::new("global-secret")),
        }
    }

    #[test]
    fn file_lines() {
        let rows = parse_domain_file(
            Path::new("f"),
            "# c\nA.example s1 https://a/api\nb.example s2 https://b/api b.org\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].domain, "a.example");
        assert_eq!(rows[1].auth_domain.as_deref(), Some("b.org"));
        assert!(parse_domain_file(Path::new("f"), "only two\n").is_err());
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
             INSERT INTO domains (xmppdomain, authsecret, authurl, authdomain) VALUES ('c.example', NULL, '', NULL);",
        )
        .unwrap();
        let t = DomainTable::new(global(), Some(&file), Some(&db)).unwrap();
        let a = t.resolve("a.example").unwrap();
        assert_eq!(
            (
                a.url.as_str(),
                a.secret.expose(),
                a.auth_domain("a.example")
            ),
            ("https://db/a", &b"db-secret"[..], "a.org")
        );
        let b = t.resolve("b.example").unwrap();
        assert_eq!(
            (b.url.as_str(), b.auth_domain("b.example")),
            ("https://file/b", "b.example")
        );
        let c = t.resolve("c.example").unwrap();
        assert_eq!(
            (c.url.as_str(), c.secret.expose()),
            ("https://global/api", &b"global-secret"[..])
        );
        let z = t.resolve("unknown.example").unwrap();
        assert_eq!(z.url, "https://global/api");
    }

    #[test]
    fn without_global_only_listed_domains_are_served() {
        let d = dir("noglobal");
        let file = d.join("domains.txt");
        fs::write(&file, "a.example s https://a\n").unwrap();
        let t = DomainTable::new(GlobalSettings::default(), Some(&file), None).unwrap();
        assert!(t.resolve("a.example").is_some());
        assert!(t.resolve("b.example").is_none());
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
        let t = DomainTable::new(global(), None, Some(&db)).unwrap();
        assert_eq!(t.resolve("a.example").unwrap().url, "https://a/1");
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
        assert_eq!(t.resolve("a.example").unwrap().url, "https://a/2");
        assert_eq!(t.resolve("n.example").unwrap().url, "https://n");
    }

    #[test]
    fn file_edits_apply_and_broken_edits_keep_the_old_table() {
        let d = dir("filereload");
        let file = d.join("domains.txt");
        fs::write(&file, "a.example s https://a/1\n").unwrap();
        let t = DomainTable::new(GlobalSettings::default(), Some(&file), None).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        fs::write(&file, "a.example s https://a/22\n").unwrap();
        assert_eq!(t.resolve("a.example").unwrap().url, "https://a/22");
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        fs::write(&file, "broken line\n").unwrap();
        assert_eq!(t.resolve("a.example").unwrap().url, "https://a/22");
    }
}
