//! Shared roster state in xcauth's SQLite layout, so that an xcauth
//! database carries over (port mode with `ejabberdctl`, where the XMPP
//! server cannot be read cheaply):
//!
//! * `rosterinfo(jid TEXT PRIMARY KEY, fullname TEXT, grouplist TEXT,
//!   responsehash TEXT, last_update TIMESTAMP)`: per user, the name last
//!   set, the tab-separated groups the user was put in at its own last sync,
//!   the digest of that sync's answer;
//! * `rostergroups(groupname TEXT PRIMARY KEY, userlist TEXT)`: per group
//!   (`id@domain`), its tab-separated members.
//!
//! Rows are upserted with `INSERT OR IGNORE` then `UPDATE`, so extra
//! columns survive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::Jid;
use crate::cache::sqlite::open_shared;
use crate::cache::StoreError;
use crate::timestamp;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

fn split_tabs(text: Option<String>) -> impl Iterator<Item = String> {
    text.unwrap_or_default()
        .split('\t')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter()
}

fn join_tabs<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = items.into_iter().collect();
    v.sort_unstable();
    v.join("\t")
}

/// The key of a group in `rostergroups`.
pub fn group_key(id: &str, domain: &str) -> String {
    format!("{id}@{domain}")
}

/// What a finished sync leaves behind.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// The answer's digest, when every action succeeded (else the next login retries).
    pub hash: Option<String>,
    /// Groups (id) the login user is in now.
    pub login_groups: BTreeSet<String>,
    /// Members of each group touched, by group id.
    pub members: BTreeMap<String, BTreeSet<Jid>>,
    /// Names set.
    pub names: BTreeMap<Jid, String>,
}

/// The roster tables of an (xcauth) state database.
pub struct RosterDb {
    conn: Mutex<Connection>,
}

impl RosterDb {
    /// Opens (creating the tables if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_shared(path)?;
        Ok(RosterDb {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError("roster db lock poisoned".into()))
    }

    /// The digest of the last complete sync of `jid`.
    pub fn hash(&self, jid: &Jid) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT responsehash FROM rosterinfo WHERE jid = ?1",
            [jid.to_string()],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(db_err)
    }

    /// Members of the group `id` on `domain`, `None` when it is not known.
    pub fn members(&self, id: &str, domain: &str) -> Result<Option<BTreeSet<Jid>>, StoreError> {
        let conn = self.conn()?;
        let text = conn
            .query_row(
                "SELECT userlist FROM rostergroups WHERE groupname = ?1",
                [group_key(id, domain)],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(db_err)?;
        Ok(text.map(|t| split_tabs(t).filter_map(|j| Jid::parse(&j)).collect()))
    }

    /// Ids of the groups of `jid`'s domain whose stored member list has
    /// `jid`: also those another member's sync put it in, which its own
    /// `grouplist` does not know about.
    pub fn groups_listing(&self, jid: &Jid) -> Result<BTreeSet<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT groupname, userlist FROM rostergroups")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(db_err)?;
        let me = jid.to_string();
        let suffix = format!("@{}", jid.domain);
        let mut out = BTreeSet::new();
        for row in rows {
            let (key, list) = row.map_err(db_err)?;
            let Some(id) = key.strip_suffix(&suffix) else {
                continue;
            };
            if split_tabs(list).any(|m| m == me) {
                out.insert(id.to_string());
            }
        }
        Ok(out)
    }

    /// Groups `jid` was put in at its last sync.
    pub fn login_groups(&self, jid: &Jid) -> Result<BTreeSet<String>, StoreError> {
        let conn = self.conn()?;
        let text = conn
            .query_row(
                "SELECT grouplist FROM rosterinfo WHERE jid = ?1",
                [jid.to_string()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(db_err)?
            .flatten();
        Ok(split_tabs(text).collect())
    }

    /// Names set before, for those of `jids` that have one.
    pub fn names<'a>(
        &self,
        jids: impl IntoIterator<Item = &'a Jid>,
    ) -> Result<BTreeMap<Jid, String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT fullname FROM rosterinfo WHERE jid = ?1")
            .map_err(db_err)?;
        let mut out = BTreeMap::new();
        for jid in jids {
            let name = stmt
                .query_row([jid.to_string()], |r| r.get::<_, Option<String>>(0))
                .optional()
                .map_err(db_err)?
                .flatten();
            if let Some(n) = name {
                out.insert(jid.clone(), n);
            }
        }
        Ok(out)
    }

    /// Records a sync of `login`'s roster in one transaction.
    pub fn save(&self, login: &Jid, outcome: &SyncOutcome, now: u64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(db_err)?;
        let ensure_user = |tx: &rusqlite::Transaction<'_>, jid: &str| {
            tx.execute("INSERT OR IGNORE INTO rosterinfo (jid) VALUES (?1)", [jid])
        };
        let me = login.to_string();
        ensure_user(&tx, &me).map_err(db_err)?;
        tx.execute(
            "UPDATE rosterinfo SET grouplist = ?1 WHERE jid = ?2",
            params![
                join_tabs(outcome.login_groups.iter().map(String::as_str)),
                me
            ],
        )
        .map_err(db_err)?;
        if let Some(h) = &outcome.hash {
            tx.execute(
                "UPDATE rosterinfo SET responsehash = ?1, last_update = ?2 WHERE jid = ?3",
                params![h, timestamp::format(now), me],
            )
            .map_err(db_err)?;
        }
        for (jid, name) in &outcome.names {
            let j = jid.to_string();
            ensure_user(&tx, &j).map_err(db_err)?;
            tx.execute(
                "UPDATE rosterinfo SET fullname = ?1 WHERE jid = ?2",
                params![name, j],
            )
            .map_err(db_err)?;
        }
        for (id, members) in &outcome.members {
            let key = group_key(id, &login.domain);
            let list: Vec<String> = members.iter().map(Jid::to_string).collect();
            tx.execute(
                "INSERT OR IGNORE INTO rostergroups (groupname) VALUES (?1)",
                [&key],
            )
            .map_err(db_err)?;
            tx.execute(
                "UPDATE rostergroups SET userlist = ?1 WHERE groupname = ?2",
                params![join_tabs(list.iter().map(String::as_str)), key],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cloudauth-rosterdb-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("xcauth.sqlite3")
    }

    #[test]
    fn an_xcauth_database_is_read_and_written_in_place() {
        let path = temp_db("xcauth");
        let c = Connection::open(&path).unwrap();
        // As xcauth creates and fills it (tab-joined, sorted; an extra column).
        c.execute_batch(
            "CREATE TABLE rosterinfo (jid TEXT PRIMARY KEY, fullname TEXT, grouplist TEXT,
                                      responsehash TEXT, last_update TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                                      note TEXT);
             CREATE TABLE rostergroups (groupname TEXT PRIMARY KEY, userlist TEXT);
             INSERT INTO rosterinfo VALUES ('alice@example.org', 'Alice', 'Family\tteam', 'abc', '2026-01-01 00:00:00.000000', 'kept');
             INSERT INTO rostergroups VALUES ('team@example.org', 'alice@example.org\tbob@example.org');",
        )
        .unwrap();
        drop(c);
        let db = RosterDb::open(&path).unwrap();
        let alice = Jid::new("alice", "example.org");
        let bob = Jid::new("bob", "example.org");
        assert_eq!(db.hash(&alice).unwrap().as_deref(), Some("abc"));
        assert_eq!(
            db.login_groups(&alice).unwrap(),
            ["Family".to_string(), "team".to_string()].into()
        );
        assert_eq!(
            db.members("team", "example.org").unwrap(),
            Some([alice.clone(), bob.clone()].into())
        );
        assert_eq!(db.members("ops", "example.org").unwrap(), None);
        assert_eq!(
            db.names([&alice, &bob]).unwrap(),
            [(alice.clone(), "Alice".to_string())].into()
        );

        let outcome = SyncOutcome {
            hash: Some("def".into()),
            login_groups: ["team".to_string()].into(),
            members: [("team".to_string(), [alice.clone()].into())].into(),
            names: [(bob.clone(), "Bob".to_string())].into(),
        };
        db.save(&alice, &outcome, 1_800_000_000).unwrap();
        assert_eq!(db.hash(&alice).unwrap().as_deref(), Some("def"));
        assert_eq!(
            db.login_groups(&alice).unwrap(),
            ["team".to_string()].into()
        );
        assert_eq!(
            db.members("team", "example.org").unwrap(),
            Some([alice.clone()].into())
        );
        assert_eq!(db.names([&bob]).unwrap()[&bob], "Bob");
        let c = Connection::open(&path).unwrap();
        let note: String = c
            .query_row(
                "SELECT note FROM rosterinfo WHERE jid = 'alice@example.org'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(note, "kept", "extra columns survive");
    }

    #[test]
    fn a_failed_sync_keeps_the_old_hash() {
        let db = RosterDb::open(&temp_db("nohash")).unwrap();
        let alice = Jid::new("alice", "d");
        let mut outcome = SyncOutcome {
            hash: Some("one".into()),
            ..SyncOutcome::default()
        };
        db.save(&alice, &outcome, 1).unwrap();
        outcome.hash = None;
        db.save(&alice, &outcome, 2).unwrap();
        assert_eq!(db.hash(&alice).unwrap().as_deref(), Some("one"));
    }

    /// alice's sync put bob into a group: bob's own grouplist does not
    /// know, the group's member list does (the groups of his domain only).
    #[test]
    fn groups_another_members_sync_put_him_in() {
        let db = RosterDb::open(&temp_db("listing")).unwrap();
        let (alice, bob) = (Jid::new("alice", "d"), Jid::new("bob", "d"));
        let outcome = SyncOutcome {
            login_groups: ["team".to_string()].into(),
            members: [
                ("team".to_string(), [alice.clone(), bob.clone()].into()),
                ("solo".to_string(), [alice.clone()].into()),
            ]
            .into(),
            ..SyncOutcome::default()
        };
        db.save(&alice, &outcome, 1).unwrap();
        let other = SyncOutcome {
            members: [("team".to_string(), [Jid::new("bob", "d")].into())].into(),
            ..SyncOutcome::default()
        };
        db.save(&Jid::new("carol", "e"), &other, 1).unwrap();
        assert!(db.login_groups(&bob).unwrap().is_empty());
        assert_eq!(
            db.groups_listing(&bob).unwrap(),
            ["team".to_string()].into()
        );
        assert_eq!(
            db.groups_listing(&alice).unwrap(),
            ["solo".to_string(), "team".to_string()].into()
        );
    }
}
