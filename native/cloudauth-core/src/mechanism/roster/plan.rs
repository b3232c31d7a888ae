//! From a `sharedroster` answer to the actions that make the XMPP server's
//! shared roster match it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha256};

use super::{group_id, GroupPolicy, Jid, Skip};
use crate::roster::SharedRoster;

/// One group as the answer wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    /// Group id on the XMPP server (see [`group_id`]).
    pub id: String,
    /// The Nextcloud group name, shown to users.
    pub label: String,
    /// Members.
    pub members: BTreeSet<Jid>,
}

/// What a `sharedroster` answer asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Provisioned groups by id.
    pub groups: BTreeMap<String, DesiredGroup>,
    /// Display names of the members of provisioned groups in the login's
    /// domain (names of other domains' users are theirs to set).
    pub names: BTreeMap<Jid, String>,
    /// Groups left out, with the reason, for the log.
    pub skipped: Vec<(String, Skip)>,
}

impl Desired {
    /// Ids of the provisioned groups `jid` is a member of.
    pub fn groups_of(&self, jid: &Jid) -> BTreeSet<String> {
        self.groups
            .values()
            .filter(|g| g.members.contains(jid))
            .map(|g| g.id.clone())
            .collect()
    }
}

/// What the XMPP server (or the state database) has now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// Members of the desired groups that exist; a desired group missing
    /// here does not exist yet.
    pub members: BTreeMap<String, BTreeSet<Jid>>,
    /// Provisioned (cloudauth's) groups the login user is a member of.
    pub login_groups: BTreeSet<String>,
    /// Display names set before, by JID.
    pub names: BTreeMap<Jid, String>,
}

impl Current {
    /// The state after `action` succeeded for a sync of `login`.
    pub fn apply(&mut self, login: &Jid, action: &Action) {
        match action {
            Action::CreateGroup { id, .. } => {
                self.members.entry(id.clone()).or_default();
            }
            Action::AddMember { group, member } => {
                self.members
                    .entry(group.clone())
                    .or_default()
                    .insert(member.clone());
                if member == login {
                    self.login_groups.insert(group.clone());
                }
            }
            Action::RemoveMember { group, member } => {
                if let Some(m) = self.members.get_mut(group) {
                    m.remove(member);
                }
                if member == login {
                    self.login_groups.remove(group);
                }
            }
            Action::SetName { jid, name } => {
                self.names.insert(jid.clone(), name.clone());
            }
        }
    }
}

/// One change to the shared roster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Create a group that displays itself to its members.
    CreateGroup {
        /// Group id.
        id: String,
        /// Label (the Nextcloud group name).
        label: String,
    },
    /// Add a member.
    AddMember {
        /// Group id.
        group: String,
        /// The member.
        member: Jid,
    },
    /// Remove a member.
    RemoveMember {
        /// Group id.
        group: String,
        /// The member.
        member: Jid,
    },
    /// Set a user's vCard FN.
    SetName {
        /// The user.
        jid: Jid,
        /// The display name.
        name: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateGroup { id, label } => write!(f, "create group {id} ({label:?})"),
            Action::AddMember { group, member } => write!(f, "add {member} to {group}"),
            Action::RemoveMember { group, member } => write!(f, "remove {member} from {group}"),
            Action::SetName { jid, name } => write!(f, "set the name of {jid} to {name:?}"),
        }
    }
}

/// The groups and names an answer asks for, after the policy's filters.
/// Ids without `@` belong to `login_domain`.
pub fn desired(answer: &SharedRoster, login_domain: &str, policy: &GroupPolicy) -> Desired {
    let mut by_name: BTreeMap<&str, BTreeSet<Jid>> = BTreeMap::new();
    let mut all_names: BTreeMap<Jid, &str> = BTreeMap::new();
    for (uid, member) in answer {
        let Some(jid) = Jid::from_uid(uid, login_domain) else {
            continue;
        };
        for g in &member.groups {
            by_name.entry(g.as_str()).or_default().insert(jid.clone());
        }
        if !member.name.is_empty() {
            all_names.insert(jid, member.name.as_str());
        }
    }
    let mut out = Desired::default();
    for (name, members) in by_name {
        match policy.check(name, members.len()) {
            Ok(()) => {
                let id = group_id(name);
                out.groups.insert(
                    id.clone(),
                    DesiredGroup {
                        id,
                        label: name.to_string(),
                        members,
                    },
                );
            }
            Err(skip) => out.skipped.push((name.to_string(), skip)),
        }
    }
    let provisioned: BTreeSet<&Jid> = out.groups.values().flat_map(|g| &g.members).collect();
    out.names = all_names
        .into_iter()
        .filter(|(jid, _)| jid.domain == login_domain && provisioned.contains(jid))
        .map(|(jid, name)| (jid, name.to_string()))
        .collect();
    out
}

/// The actions that turn `current` into `desired` for a login of `login`:
/// groups created first, then names set (before members are added, so that
/// the roster pushes of the additions carry them), then members added, then
/// removed (including the login user from provisioned groups it left).
pub fn plan(desired: &Desired, login: &Jid, current: &Current) -> Vec<Action> {
    let mut actions = Vec::new();
    for g in desired.groups.values() {
        let have = match current.members.get(&g.id) {
            Some(have) => have,
            None => {
                actions.push(Action::CreateGroup {
                    id: g.id.clone(),
                    label: g.label.clone(),
                });
                &BTreeSet::new()
            }
        };
        for m in g.members.difference(have) {
            actions.push(Action::AddMember {
                group: g.id.clone(),
                member: m.clone(),
            });
        }
        for m in have.difference(&g.members) {
            actions.push(Action::RemoveMember {
                group: g.id.clone(),
                member: m.clone(),
            });
        }
    }
    for id in &current.login_groups {
        if !desired.groups.contains_key(id) {
            actions.push(Action::RemoveMember {
                group: id.clone(),
                member: login.clone(),
            });
        }
    }
    for (jid, name) in &desired.names {
        if current.names.get(jid) != Some(name) {
            actions.push(Action::SetName {
                jid: jid.clone(),
                name: name.clone(),
            });
        }
    }
    actions.sort_by_key(|a| match a {
        Action::CreateGroup { .. } => 0,
        Action::SetName { .. } => 1,
        Action::AddMember { .. } => 2,
        Action::RemoveMember { .. } => 3,
    });
    actions
}

/// The users other than `login` whose stored digests `actions` (run by a
/// sync of `login` that started from `current`) make stale: the members,
/// before and after, of every group whose membership changed. A digest says
/// "the server matches this user's answer", and a user's answer lists the
/// members of his groups; after someone else's sync changed one of them, the
/// same answer may need work again (bob put into a group by alice's sync
/// and leaving it again before his next login; alice's answer listing bob
/// again after bob's own sync took him out). Their next login then plans
/// from the state instead of skipping, which costs no command when nothing
/// differs.
pub fn stale_digests(login: &Jid, current: &Current, actions: &[Action]) -> BTreeSet<Jid> {
    let mut out = BTreeSet::new();
    for a in actions {
        if let Action::AddMember { group, member } | Action::RemoveMember { group, member } = a {
            out.insert(member.clone());
            if let Some(members) = current.members.get(group) {
                out.extend(members.iter().cloned());
            }
        }
    }
    out.remove(login);
    out
}

/// A digest of what a sync for `login` would do with `answer` under
/// `policy`: equal digests mean nothing changed since the last sync.
pub fn answer_hash(answer: &SharedRoster, login: &Jid, policy: &GroupPolicy) -> String {
    let mut h = Sha256::new();
    h.update(login.to_string().as_bytes());
    h.update([0]);
    h.update(policy.fingerprint().as_bytes());
    h.update([0]);
    for (uid, m) in answer {
        for part in [uid.as_str(), m.name.as_str()]
            .into_iter()
            .chain(m.groups.iter().map(String::as_str))
        {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update([1]);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::Glob;
    use crate::roster::RosterMember;

    const D: &str = "example.org";

    fn roster(entries: &[(&str, &str, &[&str])]) -> SharedRoster {
        entries
            .iter()
            .map(|(uid, name, groups)| {
                (
                    (*uid).to_string(),
                    RosterMember {
                        name: (*name).to_string(),
                        groups: groups.iter().map(|g| (*g).to_string()).collect(),
                    },
                )
            })
            .collect()
    }

    fn j(user: &str) -> Jid {
        Jid::new(user, D)
    }

    fn alice() -> Jid {
        j("alice")
    }

    fn set(users: &[&str]) -> BTreeSet<Jid> {
        users.iter().map(|u| j(u)).collect()
    }

    /// The state after applying `actions` to `current` (how the server evolves).
    fn apply(current: &Current, login: &Jid, actions: &[Action]) -> Current {
        let mut c = current.clone();
        for a in actions {
            c.apply(login, a);
        }
        c
    }

    #[test]
    fn from_scratch_creates_adds_and_names() {
        let r = roster(&[("alice", "Alice A", &["team"]), ("bob", "Bob B", &["team"])]);
        let d = desired(&r, D, &GroupPolicy::default());
        let actions = plan(&d, &alice(), &Current::default());
        assert_eq!(
            actions,
            vec![
                Action::CreateGroup {
                    id: "team".into(),
                    label: "team".into()
                },
                Action::SetName {
                    jid: alice(),
                    name: "Alice A".into()
                },
                Action::SetName {
                    jid: j("bob"),
                    name: "Bob B".into()
                },
                Action::AddMember {
                    group: "team".into(),
                    member: alice()
                },
                Action::AddMember {
                    group: "team".into(),
                    member: j("bob")
                },
            ]
        );
        // Applying it converges: the same answer plans nothing more.
        let after = apply(&Current::default(), &alice(), &actions);
        assert!(plan(&d, &alice(), &after).is_empty());
    }

    #[test]
    fn labels_keep_the_nextcloud_name_and_ids_are_safe() {
        let r = roster(&[("alice", "Alice", &["Team Alpha"])]);
        let d = desired(&r, D, &GroupPolicy::default());
        let g = d.groups.values().next().unwrap();
        assert_eq!(g.label, "Team Alpha");
        assert_eq!(g.id, group_id("Team Alpha"));
        assert!(g.id.starts_with("team-alpha-"));
    }

    #[test]
    fn departed_member_is_removed() {
        let before = roster(&[("alice", "Alice", &["team"]), ("bob", "Bob", &["team"])]);
        let d0 = desired(&before, D, &GroupPolicy::default());
        let state = apply(
            &Current::default(),
            &alice(),
            &plan(&d0, &alice(), &Current::default()),
        );
        let after = roster(&[("alice", "Alice", &["team"])]);
        let d1 = desired(&after, D, &GroupPolicy::default());
        assert_eq!(
            plan(&d1, &alice(), &state),
            vec![Action::RemoveMember {
                group: "team".into(),
                member: j("bob")
            }]
        );
    }

    #[test]
    fn login_user_leaving_a_group_is_removed_from_it() {
        let mut state = Current::default();
        state.members.insert("team".into(), set(&["alice", "bob"]));
        state.members.insert("ops".into(), set(&["alice", "carol"]));
        state.login_groups = ["team".to_string(), "ops".to_string()].into();
        state.names.insert(alice(), "Alice".into());
        state.names.insert(j("bob"), "Bob".into());
        // alice is now only in team; ops is not in her answer any more.
        let r = roster(&[("alice", "Alice", &["team"]), ("bob", "Bob", &["team"])]);
        let d = desired(&r, D, &GroupPolicy::default());
        assert_eq!(
            plan(&d, &alice(), &state),
            vec![Action::RemoveMember {
                group: "ops".into(),
                member: alice()
            }],
            "carol stays in ops: alice's answer does not speak for it"
        );
    }

    #[test]
    fn renamed_user_gets_a_new_name_only() {
        let mut state = Current::default();
        state.members.insert("team".into(), set(&["alice", "bob"]));
        state.login_groups.insert("team".into());
        state.names.insert(alice(), "Alice".into());
        state.names.insert(j("bob"), "Bob".into());
        let r = roster(&[("alice", "Alice", &["team"]), ("bob", "Robert", &["team"])]);
        let d = desired(&r, D, &GroupPolicy::default());
        assert_eq!(
            plan(&d, &alice(), &state),
            vec![Action::SetName {
                jid: j("bob"),
                name: "Robert".into()
            }]
        );
    }

    #[test]
    fn empty_answer_removes_the_login_user_from_its_groups() {
        let mut state = Current::default();
        state.login_groups.insert("team".into());
        let d = desired(&SharedRoster::new(), D, &GroupPolicy::default());
        assert!(d.groups.is_empty() && d.names.is_empty());
        assert_eq!(
            plan(&d, &alice(), &state),
            vec![Action::RemoveMember {
                group: "team".into(),
                member: alice()
            }]
        );
        assert!(plan(&d, &alice(), &Current::default()).is_empty());
    }

    #[test]
    fn zero_width_space_groups_are_skipped() {
        let r = roster(&[("alice", "Alice", &["team", "private\u{200B}"])]);
        let d = desired(&r, D, &GroupPolicy::default());
        assert_eq!(d.groups.keys().collect::<Vec<_>>(), vec!["team"]);
        assert_eq!(
            d.skipped,
            vec![("private\u{200B}".to_string(), Skip::ZeroWidthSpace)]
        );
    }

    #[test]
    fn filters_skip_groups_and_their_members_names() {
        let r = roster(&[
            ("alice", "Alice", &["team", "everyone"]),
            ("bob", "Bob", &["everyone"]),
            ("carol", "Carol", &["everyone", "secret-club"]),
        ]);
        let policy = GroupPolicy {
            allow: vec![],
            deny: vec![Glob::new("secret*")],
            max_members: Some(2),
        };
        let d = desired(&r, D, &policy);
        assert_eq!(d.groups.keys().collect::<Vec<_>>(), vec!["team"]);
        assert_eq!(d.skipped.len(), 2);
        assert_eq!(
            d.names.keys().collect::<Vec<_>>(),
            vec![&alice()],
            "bob and carol are in no provisioned group"
        );
        let allow = GroupPolicy {
            allow: vec![Glob::new("every*")],
            ..GroupPolicy::default()
        };
        let d = desired(&r, D, &allow);
        assert_eq!(d.groups.keys().collect::<Vec<_>>(), vec!["everyone"]);
    }

    #[test]
    fn uids_with_a_domain_keep_it_and_only_local_names_are_set() {
        let r = roster(&[
            ("alice", "Alice", &["team"]),
            ("dave@other.org", "Dave", &["team"]),
            ("@broken", "X", &["team"]),
        ]);
        let d = desired(&r, D, &GroupPolicy::default());
        let team = &d.groups["team"];
        assert_eq!(
            team.members,
            [alice(), Jid::new("dave", "other.org")]
                .into_iter()
                .collect()
        );
        assert!(!d.names.contains_key(&Jid::new("dave", "other.org")));
    }

    #[test]
    fn groups_of_a_user() {
        let r = roster(&[("alice", "A", &["team", "ops"]), ("bob", "B", &["ops"])]);
        let d = desired(&r, D, &GroupPolicy::default());
        assert_eq!(
            d.groups_of(&alice()),
            ["ops".to_string(), "team".to_string()].into()
        );
        assert_eq!(d.groups_of(&j("bob")), ["ops".to_string()].into());
    }

    #[test]
    fn stale_digests_are_the_changed_groups_members_but_the_login_user() {
        let mut state = Current::default();
        state
            .members
            .insert("team".into(), set(&["alice", "carol"]));
        state.members.insert("ops".into(), set(&["alice", "dave"]));
        state.login_groups = ["team".to_string(), "ops".to_string()].into();
        // bob joins team; ops is unchanged; a name alone changes no group.
        let r = roster(&[
            ("alice", "Alice", &["team", "ops"]),
            ("bob", "Bob", &["team"]),
            ("carol", "Carol", &["team"]),
            ("dave", "Dave", &["ops"]),
        ]);
        let d = desired(&r, D, &GroupPolicy::default());
        let actions = plan(&d, &alice(), &state);
        assert_eq!(
            stale_digests(&alice(), &state, &actions),
            set(&["bob", "carol"])
        );
        let names_only = [Action::SetName {
            jid: j("dave"),
            name: "D".into(),
        }];
        assert!(stale_digests(&alice(), &state, &names_only).is_empty());
        // The login user leaving a group: the others in it.
        let gone = [Action::RemoveMember {
            group: "ops".into(),
            member: alice(),
        }];
        assert_eq!(stale_digests(&alice(), &state, &gone), set(&["dave"]));
    }

    #[test]
    fn hash_is_stable_and_sees_every_change() {
        let r = roster(&[("alice", "Alice", &["team"]), ("bob", "Bob", &["team"])]);
        let p = GroupPolicy::default();
        let h = answer_hash(&r, &alice(), &p);
        assert_eq!(h, answer_hash(&r.clone(), &alice(), &p));
        let variants = [
            roster(&[("alice", "Alice", &["team"])]),
            roster(&[("alice", "Alice", &["team"]), ("bob", "Robert", &["team"])]),
            roster(&[("alice", "Alice", &["team"]), ("bob", "Bob", &["ops"])]),
            SharedRoster::new(),
        ];
        for v in &variants {
            assert_ne!(h, answer_hash(v, &alice(), &p));
        }
        assert_ne!(h, answer_hash(&r, &j("bob"), &p), "per login user");
        let strict = GroupPolicy {
            max_members: Some(1),
            ..GroupPolicy::default()
        };
        assert_ne!(h, answer_hash(&r, &alice(), &strict), "per policy");
        // Field boundaries matter: ("ab", "c") is not ("a", "bc").
        let a = roster(&[("ab", "c", &[])]);
        let b = roster(&[("a", "bc", &[])]);
        assert_ne!(answer_hash(&a, &alice(), &p), answer_hash(&b, &alice(), &p));
    }
}
