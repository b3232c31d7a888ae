//! Shared roster state in xcauth's SQLite layout, so that an xcauth
//! database carries over (port mode with `ejabberdctl`, where the XMPP
//! server cannot be read cheaply):
//!
//! * `rosterinfo(jid TEXT PRIMARY KEY, fullname TEXT, grouplist TEXT,
//!   responsehash TEXT, last_update TIMESTAMP)`: per user, the name last
//!   set, the tab-separated groups the user was put in at its own last sync,
//!   the digest of that sync's answer (cleared when another user's sync
//!   changes one of the user's groups);
//! * `rostergroups(groupname TEXT PRIMARY KEY, userlist TEXT)`: per group
//!   (`id@domain`), its tab-separated members.
//!
//! The groups a user is in are read from `rostergroups`, which every sync
//! keeps up to date for every member, not from the user's `grouplist`,
//! which only the user's own syncs write: a member put into a group by
//! someone else's login must leave it at his own next login (issue 12).
//! `grouplist` still counts for groups `rostergroups` has no row for.
//!
//! Rows are upserted with `INSERT OR IGNORE` then `UPDATE`, so extra
//! columns survive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{stale_digests, Action, Current, Desired, Jid};
use crate::timestamp;
use crate::vocab::state_db::{open_shared, StoreError};

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
pub(crate) fn group_key(id: &str, domain: &str) -> String {
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
    /// Other users whose digests this sync made stale (see
    /// [`stale_digests`]): cleared, so that their next login syncs even if
    /// their answer is the one of their last sync.
    pub stale: BTreeSet<Jid>,
}

impl SyncOutcome {
    /// The outcome of a sync of `login` that read `before` (see
    /// [`RosterDb::current`]), ran `attempted` and got to `after` (`before`
    /// with the actions that succeeded applied). `hash` is the answer's
    /// digest, to be given only when every action succeeded.
    pub fn new(
        login: &Jid,
        before: &Current,
        after: Current,
        attempted: &[Action],
        hash: Option<String>,
    ) -> Self {
        let names = after
            .names
            .iter()
            .filter(|(jid, name)| before.names.get(*jid) != Some(*name))
            .map(|(jid, name)| (jid.clone(), name.clone()))
            .collect();
        // Attempted actions, not only those that succeeded: a command that
        // failed or timed out may still have changed the group, and a
        // needless sync of someone else costs no command.
        let stale = stale_digests(login, before, attempted);
        SyncOutcome {
            hash,
            login_groups: after.login_groups,
            members: after.members,
            names,
            stale,
        }
    }
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

    /// The groups of `domain` as `rostergroups` has them: id → members.
    pub fn groups(&self, domain: &str) -> Result<BTreeMap<String, BTreeSet<Jid>>, StoreError> {
        let conn = self.conn()?;
        let suffix = format!("@{domain}");
        let mut stmt = conn
            .prepare_cached(
                "SELECT groupname, userlist FROM rostergroups
                 WHERE substr(groupname, -length(?1)) = ?1",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([&suffix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(db_err)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (key, list) = row.map_err(db_err)?;
            // Keys are `id@domain`; the query matched the suffix, and group
            // ids never contain `@` (ours and xcauth's alike).
            let Some(id) = key.strip_suffix(&suffix) else {
                continue;
            };
            let members = split_tabs(list).filter_map(|j| Jid::parse(&j)).collect();
            out.insert(id.to_string(), members);
        }
        Ok(out)
    }

    /// What a sync of `login` towards `want` starts from: the members of
    /// the wanted groups and of the login user's groups, the groups the
    /// login user is in, and the names set before.
    ///
    /// The login user's groups are those whose `rostergroups` row lists
    /// him — whoever's sync put him there — plus those of his own last
    /// `grouplist` that have no row (an xcauth database cut short).
    pub fn current(&self, login: &Jid, want: &Desired) -> Result<Current, StoreError> {
        let groups = self.groups(&login.domain)?;
        let mut login_groups: BTreeSet<String> = groups
            .iter()
            .filter(|(_, members)| members.contains(login))
            .map(|(id, _)| id.clone())
            .collect();
        login_groups.extend(
            self.login_groups(login)?
                .into_iter()
                .filter(|id| !groups.contains_key(id)),
        );
        // Members of the login user's groups too, so that leaving one also
        // updates its row (else the next member's sync removes him again).
        let members = groups
            .into_iter()
            .filter(|(id, _)| want.groups.contains_key(id) || login_groups.contains(id))
            .collect();
        Ok(Current {
            members,
            login_groups,
            names: self.names(want.names.keys())?,
        })
    }

    /// Groups `jid` was put in at its own last sync (`grouplist`); see
    /// [`RosterDb::current`] for the groups it is in now.
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
        for jid in &outcome.stale {
            tx.execute(
                "UPDATE rosterinfo SET responsehash = NULL WHERE jid = ?1",
                [jid.to_string()],
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
    use crate::roster::{
        answer_hash, desired, group_id, plan, GroupPolicy, RosterMember, SharedRoster,
    };

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
            stale: BTreeSet::new(),
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

    /// A port-mode sync of `login` whose commands all succeed, as
    /// `cloudauth`'s roster_sync runs it: digest check, state, plan, save.
    /// Returns the actions, `None` when the digest said "unchanged".
    fn sync(db: &RosterDb, login: &Jid, answer: &SharedRoster) -> Option<Vec<Action>> {
        let policy = GroupPolicy::default();
        let hash = answer_hash(answer, login, &policy);
        if db.hash(login).unwrap().as_deref() == Some(hash.as_str()) {
            return None;
        }
        let want = desired(answer, &login.domain, &policy);
        let before = db.current(login, &want).unwrap();
        let actions = plan(&want, login, &before);
        let mut after = before.clone();
        for a in &actions {
            after.apply(login, a);
        }
        let outcome = SyncOutcome::new(login, &before, after, &actions, Some(hash));
        db.save(login, &outcome, 1_800_000_000).unwrap();
        Some(actions)
    }

    /// The answers of the test: alice and bob, bob in Team or not.
    fn answer(bob_in_team: bool) -> SharedRoster {
        let member = |name: &str, groups: &[&str]| RosterMember {
            name: name.to_string(),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
        };
        let bob_groups: &[&str] = if bob_in_team { &["Team"] } else { &[] };
        [
            ("alice".to_string(), member("Alice", &["Team"])),
            ("bob".to_string(), member("Bob", bob_groups)),
        ]
        .into()
    }

    /// Issue 12: alice's login puts bob into Team, bob leaves the group,
    /// bob's own login must take him out (his `grouplist` never listed it).
    #[test]
    fn a_member_put_in_by_another_login_leaves_at_his_own() {
        let db = RosterDb::open(&temp_db("issue12")).unwrap();
        let (alice, bob) = (Jid::new("alice", "d"), Jid::new("bob", "d"));
        let team = group_id("Team");
        let put_in = sync(&db, &alice, &answer(true)).unwrap();
        assert!(put_in.contains(&Action::AddMember {
            group: team.clone(),
            member: bob.clone()
        }));
        assert!(
            db.login_groups(&bob).unwrap().is_empty(),
            "bob never synced"
        );
        // bob's own answer: he is in no group any more.
        let bob_alone: SharedRoster = [(
            "bob".to_string(),
            RosterMember {
                name: "Bob".into(),
                groups: vec![],
            },
        )]
        .into();
        assert_eq!(
            sync(&db, &bob, &bob_alone).unwrap(),
            vec![Action::RemoveMember {
                group: team.clone(),
                member: bob.clone()
            }]
        );
        assert_eq!(
            db.members(&team, "d").unwrap(),
            Some([alice.clone()].into()),
            "Team's row no longer lists bob, so alice's next sync has nothing to redo"
        );
        assert!(db
            .current(&bob, &Desired::default())
            .unwrap()
            .login_groups
            .is_empty());
    }

    /// Digests made stale by someone else's sync are cleared: the same
    /// answer as at a user's last sync may need work again.
    #[test]
    fn another_users_sync_clears_the_digests_it_made_stale() {
        let db = RosterDb::open(&temp_db("stale")).unwrap();
        let (alice, bob) = (Jid::new("alice", "d"), Jid::new("bob", "d"));
        let team = group_id("Team");
        let add_bob = Action::AddMember {
            group: team.clone(),
            member: bob.clone(),
        };
        let remove_bob = Action::RemoveMember {
            group: team.clone(),
            member: bob.clone(),
        };
        // bob synced while in Team, then alice: bob's sync made it all.
        sync(&db, &bob, &answer(true)).unwrap();
        assert_eq!(sync(&db, &alice, &answer(true)), Some(vec![]));
        // bob leaves Team; alice's login takes him out and clears his digest.
        assert_eq!(
            sync(&db, &alice, &answer(false)).unwrap(),
            vec![remove_bob.clone()]
        );
        assert_eq!(db.hash(&bob).unwrap(), None);
        // bob is back in Team: his answer is that of his last sync, yet the
        // server lacks him.
        assert_eq!(
            sync(&db, &bob, &answer(true)).unwrap(),
            vec![add_bob.clone()]
        );
        // bob's own sync changed Team: alice's digest (bob not in Team) is
        // cleared too, so her answer without bob still takes him out.
        assert_eq!(db.hash(&alice).unwrap(), None);
        assert_eq!(sync(&db, &alice, &answer(false)).unwrap(), vec![remove_bob]);
        // Nothing changed since: digests stand and nothing is planned.
        assert_eq!(sync(&db, &alice, &answer(false)), None);
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
}
