//! The users file: `{"users": [{"uid", "password", "name", "groups"}]}`.

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
}

#[derive(Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

/// All accounts, by uid.
#[derive(Debug, Default)]
pub struct Directory {
    users: BTreeMap<String, User>,
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
        })
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
                .is_some_and(|u| ct_eq(u.password.as_bytes(), password.as_bytes()))
        })
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
                    let entry = roster.entry(member.uid.as_str()).or_insert_with(|| {
                        (
                            member.name.clone().unwrap_or_else(|| member.uid.clone()),
                            Vec::new(),
                        )
                    });
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
            {"uid": "carol", "password": "c-pw"}
        ]}"#;
        let f: UsersFile = serde_json::from_str(text).unwrap();
        Directory {
            users: f.users.into_iter().map(|u| (u.uid.clone(), u)).collect(),
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
        assert_eq!(d.shared_roster("carol", "example.org"), json!([]));
        assert_eq!(d.shared_roster("nobody", "example.org"), json!([]));
    }
}
