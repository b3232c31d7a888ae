//! One user's roster from the plan's groups, for servers that keep rosters
//! per user (Prosody): every other member of the login's provisioned
//! groups, under the groups' labels.

use std::collections::{BTreeMap, BTreeSet};

use super::{Desired, Jid};

/// One contact of the login's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalItem {
    /// The contact.
    pub jid: Jid,
    /// Display name (empty when the cloud gave none or the contact is of another domain).
    pub name: String,
    /// Labels of the groups the login shares with the contact.
    pub groups: BTreeSet<String>,
}

/// The roster `login` should have: the other members of the provisioned
/// groups he is in, each once with all shared labels; he himself is not
/// in it. Also his own display name (for the contacts' side of the
/// subscription), empty when unknown.
pub fn personal_roster(want: &Desired, login: &Jid) -> (Vec<PersonalItem>, String) {
    let mut by_jid: BTreeMap<&Jid, BTreeSet<String>> = BTreeMap::new();
    for g in want.groups.values().filter(|g| g.members.contains(login)) {
        for m in g.members.iter().filter(|m| *m != login) {
            by_jid.entry(m).or_default().insert(g.label.clone());
        }
    }
    let items = by_jid
        .into_iter()
        .map(|(jid, groups)| PersonalItem {
            jid: jid.clone(),
            name: want.names.get(jid).cloned().unwrap_or_default(),
            groups,
        })
        .collect();
    (items, want.names.get(login).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::{desired, GroupPolicy, RosterMember, SharedRoster};

    fn member(name: &str, groups: &[&str]) -> RosterMember {
        RosterMember {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn other_members_with_shared_labels_not_self() {
        let mut answer = SharedRoster::new();
        answer.insert("alice".into(), member("Alice", &["Staff Team", "Readers"]));
        answer.insert(
            "bob".into(),
            member("Bob Builder", &["Staff Team", "Readers"]),
        );
        answer.insert("carol@other.org".into(), member("Carol", &["Readers"]));
        answer.insert("dave".into(), member("Dave", &["Elsewhere"]));
        let want = desired(&answer, "example.org", &GroupPolicy::default());
        let alice = Jid::new("alice", "example.org");
        let (items, own) = personal_roster(&want, &alice);
        assert_eq!(own, "Alice");
        let shown: Vec<_> = items
            .iter()
            .map(|i| {
                (
                    i.jid.to_string(),
                    i.name.as_str(),
                    i.groups.iter().cloned().collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "bob@example.org".to_string(),
                    "Bob Builder",
                    vec!["Readers".to_string(), "Staff Team".to_string()]
                ),
                (
                    "carol@other.org".to_string(),
                    "",
                    vec!["Readers".to_string()]
                ),
            ],
            "dave shares no group; alice is not in her own roster; other domains' names are theirs"
        );
    }

    #[test]
    fn no_groups_no_items() {
        let mut answer = SharedRoster::new();
        answer.insert("alice".into(), member("Alice", &[]));
        let want = desired(&answer, "example.org", &GroupPolicy::default());
        let (items, _) = personal_roster(&want, &Jid::new("alice", "example.org"));
        assert!(items.is_empty());
    }
}
