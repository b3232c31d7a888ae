//! The users file: `{"users": [{"uid", "password", "name", "groups"}]}`,
//! each entry optionally with `login`, `app_passwords`, `admin`,
//! `subadmin`, `disabled` and `two_factor` (for the OCS API; all default to
//! nothing), and optionally `"group_names": {"staff": "Staff Team"}`: the
//! groups' display names (Nextcloud 32/34's ids differ from them; default:
//! the id).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

/// A users file that cannot be used.
#[derive(Debug, Error)]
pub enum UsersError {
    /// Unreadable.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// Not the expected JSON.
    #[error("{0}: {1}")]
    Json(String, serde_json::Error),
}

/// One cloud account.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// Cloud user id (`alice` or `alice@example.org`).
    pub uid: String,
    /// Password.
    pub password: String,
    /// Display name (defaults to the uid).
    #[serde(default)]
    pub name: Option<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Another name to log in with at the OCS API, typically the e-mail
    /// address (Nextcloud accepts it in place of the uid).
    #[serde(default)]
    pub login: Option<String>,
    /// App passwords, each accepted in place of the password, by every API.
    #[serde(default)]
    pub app_passwords: Vec<String>,
    /// A Nextcloud administrator, as membership in group `admin` also makes
    /// one (a service account that may look at every user and group).
    #[serde(default)]
    pub admin: bool,
    /// Groups this user is subadmin of.
    #[serde(default)]
    pub subadmin: Vec<String>,
    /// A disabled account: its right password is refused (and not counted
    /// by the brute-force throttle); the OCS API shows `enabled: false`.
    #[serde(default)]
    pub disabled: bool,
    /// Two-factor authentication enforced (or `token_auth_enforced`): the
    /// OCS API never checks the password, only app passwords log in.
    #[serde(default)]
    pub two_factor: bool,
}

/// How Nextcloud 32/34 answer a basic-auth login (`Session::logClientIn`).
#[derive(Debug, Clone)]
pub enum Login<'a> {
    /// Logged in (password or app password).
    Ok(&'a User),
    /// Wrong password or unknown user: 401 "Unauthorised", counted.
    Wrong,
    /// A disabled account's right password: 401 "Unauthorised", not counted.
    Disabled,
    /// A two-factor account's password (right or wrong, never checked):
    /// 401 "Current user is not logged in", not counted.
    TwoFactor,
}

impl User {
    /// Whether `password` is this user's password or one of its app passwords.
    pub fn password_matches(&self, password: &str) -> bool {
        // Every candidate is compared, whichever matches, so that the time
        // taken says nothing about which one did.
        std::iter::once(&self.password)
            .chain(&self.app_passwords)
            .fold(false, |found, p| {
                ct_eq(p.as_bytes(), password.as_bytes()) | found
            })
    }

    /// Display name: `name`, else the uid.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.uid)
    }

    /// Administrator: `"admin": true` or a member of group `admin`.
    pub fn is_admin(&self) -> bool {
        self.admin || self.groups.iter().any(|g| g == "admin")
    }

    /// Whether this user administers `other`: an admin, or subadmin of one
    /// of `other`'s groups.
    pub fn manages(&self, other: &User) -> bool {
        self.is_admin() || self.subadmin.iter().any(|g| other.groups.contains(g))
    }
}

#[derive(Deserialize)]
struct UsersFile {
    users: Vec<User>,
    #[serde(default)]
    group_names: BTreeMap<String, String>,
}

/// All accounts, by uid, and the groups' display names.
#[derive(Debug, Default)]
pub struct Directory {
    users: BTreeMap<String, User>,
    group_names: BTreeMap<String, String>,
}

/// Constant-time comparison of equally long secrets (the length may leak).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Directory {
    /// Reads a users file.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| UsersError::Read(shown.clone(), e))?;
        let file: UsersFile =
            serde_json::from_str(&text).map_err(|e| UsersError::Json(shown, e))?;
        Ok(Directory {
            users: file.users.into_iter().map(|u| (u.uid.clone(), u)).collect(),
            group_names: file.group_names,
        })
    }

    /// A group's display name (its id when none is set).
    pub fn group_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.group_names.get(id).map_or(id, String::as_str)
    }

    /// Every group id, sorted.
    pub fn groups(&self) -> std::collections::BTreeSet<&str> {
        self.users
            .values()
            .flat_map(|u| u.groups.iter().chain(&u.subadmin))
            .map(String::as_str)
            .collect()
    }

    /// The uids tried for a request, as the ojsxc app does: `user@domain` (when a domain is given), then `user`.
    fn candidates(username: &str, domain: &str) -> Vec<String> {
        let mut c = Vec::new();
        if !domain.is_empty() {
            c.push(format!("{username}@{domain}"));
        }
        c.push(username.to_string());
        c
    }

    /// The uid whose password matches, trying `user@domain` then `user`.
    pub fn check_password(&self, username: &str, domain: &str, password: &str) -> Option<String> {
        if username.is_empty() || password.is_empty() {
            return None;
        }
        Self::candidates(username, domain).into_iter().find(|uid| {
            self.users
                .get(uid)
                .is_some_and(|u| u.password_matches(password))
        })
    }

    /// Every account, by uid.
    pub fn all(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The account with this uid.
    pub fn get(&self, uid: &str) -> Option<&User> {
        self.users.get(uid)
    }

    /// The account a Nextcloud login name means: the uid (ignoring case,
    /// as Nextcloud finds `ALICE`) or, failing that, a `login` alias
    /// (compared ignoring ASCII case, as Nextcloud looks up e-mail addresses).
    pub fn by_login(&self, name: &str) -> Option<&User> {
        self.users
            .get(name)
            .or_else(|| {
                self.users
                    .values()
                    .find(|u| u.uid.eq_ignore_ascii_case(name))
            })
            .or_else(|| {
                self.users.values().find(|u| {
                    u.login
                        .as_deref()
                        .is_some_and(|l| l.eq_ignore_ascii_case(name))
                })
            })
    }

    /// A Nextcloud login: `name` as [`Directory::by_login`] reads it;
    /// `password` the password or an app password.
    #[cfg(test)]
    pub fn login(&self, name: &str, password: &str) -> Option<&User> {
        match self.nextcloud_login(name, password) {
            Login::Ok(u) => Some(u),
            _ => None,
        }
    }

    /// A Nextcloud login with the outcomes that 32/34 tell apart.
    pub fn nextcloud_login(&self, name: &str, password: &str) -> Login<'_> {
        if name.is_empty() || password.is_empty() {
            return Login::Wrong;
        }
        let Some(user) = self.by_login(name) else {
            return Login::Wrong;
        };
        if user.two_factor {
            // Only app passwords (tokens) skip the second factor.
            let app = user.app_passwords.iter().fold(false, |found, p| {
                ct_eq(p.as_bytes(), password.as_bytes()) | found
            });
            return if app {
                Login::Ok(user)
            } else {
                Login::TwoFactor
            };
        }
        match (user.password_matches(password), user.disabled) {
            (true, false) => Login::Ok(user),
            (true, true) => Login::Disabled,
            (false, _) => Login::Wrong,
        }
    }

    /// Whether any account is a member or subadmin of `group`.
    pub fn group_exists(&self, group: &str) -> bool {
        self.users
            .values()
            .any(|u| u.groups.iter().chain(&u.subadmin).any(|g| g == group))
    }

    /// The members of `group`, by uid.
    pub fn members<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a User> + 'a {
        self.users
            .values()
            .filter(move |u| u.groups.iter().any(|g| g == group))
    }

    /// Whether `user@domain` or `user` exists.
    pub fn exists(&self, username: &str, domain: &str) -> bool {
        !username.is_empty()
            && Self::candidates(username, domain)
                .iter()
                .any(|uid| self.users.contains_key(uid))
    }

    /// The shared roster of a user: every member of each of its groups
    /// (itself included), with display name and the shared groups. `[]` when empty.
    pub fn shared_roster(&self, username: &str, domain: &str) -> Value {
        let me = Self::candidates(username, domain)
            .into_iter()
            .find_map(|uid| self.users.get(&uid));
        let mut roster: BTreeMap<&str, (String, Vec<&str>)> = BTreeMap::new();
        if let Some(me) = me {
            for group in &me.groups {
                for member in self.users.values().filter(|u| u.groups.contains(group)) {
                    let entry = roster
                        .entry(member.uid.as_str())
                        .or_insert_with(|| (member.display_name().to_string(), Vec::new()));
                    entry.1.push(group.as_str());
                }
            }
        }
        if roster.is_empty() {
            return json!([]);
        }
        let map: serde_json::Map<String, Value> = roster
            .into_iter()
            .map(|(uid, (name, groups))| {
                (uid.to_string(), json!({ "name": name, "groups": groups }))
            })
            .collect();
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let text = r#"{"users": [
            {"uid": "alice", "password": "a-pw", "name": "Alice", "groups": ["Team", "Ops"]},
            {"uid": "alice@other.org", "password": "other-pw"},
            {"uid": "bob", "password": "b-pw", "name": "Bob", "groups": ["Team"]},
            {"uid": "carol", "password": "c-pw", "login": "Carol@Mail.example",
             "app_passwords": ["c-app-1", "c-app-2"], "subadmin": ["Ops"]},
            {"uid": "root", "password": "r-pw", "admin": true},
            {"uid": "ops", "password": "o-pw", "groups": ["admin"]}
        ]}"#;
        let f: UsersFile = serde_json::from_str(text).unwrap();
        Directory {
            users: f.users.into_iter().map(|u| (u.uid.clone(), u)).collect(),
            group_names: f.group_names,
        }
    }

    #[test]
    fn password_tries_user_at_domain_first() {
        let d = dir();
        assert_eq!(
            d.check_password("alice", "example.org", "a-pw").as_deref(),
            Some("alice")
        );
        assert_eq!(
            d.check_password("alice", "other.org", "other-pw")
                .as_deref(),
            Some("alice@other.org")
        );
        assert_eq!(
            d.check_password("alice", "other.org", "a-pw").as_deref(),
            Some("alice")
        );
        assert_eq!(d.check_password("alice", "example.org", "wrong"), None);
        assert_eq!(d.check_password("alice", "example.org", ""), None);
    }

    #[test]
    fn app_passwords_work_everywhere() {
        let d = dir();
        assert_eq!(
            d.check_password("carol", "x", "c-app-2").as_deref(),
            Some("carol")
        );
        assert!(d.login("carol", "c-app-1").is_some());
        assert!(d.login("carol", "c-app").is_none());
    }

    #[test]
    fn login_by_uid_or_alias() {
        let d = dir();
        let uid = |n, p| d.login(n, p).map(|u| u.uid.clone());
        assert_eq!(uid("carol", "c-pw").as_deref(), Some("carol"));
        assert_eq!(uid("carol@mail.example", "c-pw").as_deref(), Some("carol"));
        assert_eq!(uid("carol@mail.example", "wrong"), None);
        assert_eq!(uid("nobody", "c-pw"), None);
        assert_eq!(uid("carol", ""), None);
    }

    #[test]
    fn admins_and_subadmins() {
        let d = dir();
        let u = |id| d.get(id).unwrap();
        assert!(u("root").is_admin() && u("ops").is_admin());
        assert!(!u("alice").is_admin());
        assert!(
            u("carol").manages(u("alice")),
            "subadmin of Ops, alice's group"
        );
        assert!(!u("carol").manages(u("bob")));
        assert!(u("root").manages(u("bob")));
        assert!(d.group_exists("Ops") && !d.group_exists("Nope"));
        let team: Vec<_> = d.members("Team").map(|u| u.uid.as_str()).collect();
        assert_eq!(team, ["alice", "bob"]);
    }

    #[test]
    fn exists() {
        let d = dir();
        assert!(d.exists("bob", "example.org"));
        assert!(!d.exists("mallory", "example.org"));
        assert!(!d.exists("", "example.org"));
    }

    #[test]
    fn roster() {
        let d = dir();
        let r = d.shared_roster("bob", "example.org");
        assert_eq!(r["alice"]["name"], "Alice");
        assert_eq!(r["alice"]["groups"], json!(["Team"]));
        assert_eq!(r["bob"]["groups"], json!(["Team"]));
        assert_eq!(d.shared_roster("root", "example.org"), json!([]));
        assert_eq!(d.shared_roster("nobody", "example.org"), json!([]));
    }
}
