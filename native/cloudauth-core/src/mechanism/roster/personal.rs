//! One user's roster from the plan's groups, for servers that keep rosters
//! per user (Prosody): every other member of the login's provisioned
//! groups, under the groups' labels; and the changes a client holding an
//! older version of it must make (whole buckets of contacts, so that a
//! member leaving a 5,000-member group resends about 150 contacts, not
//! 5,000, and cloudauth needs no memory of what it sent).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha256};

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

/// How many buckets a user's roster is split into for versioning: a change
/// resends the buckets it touches, about 1/`BUCKETS` of the contacts each.
pub const BUCKETS: usize = 32;

/// Hex digits of a bucket digest (64 bits: a change that keeps the digest
/// is out of reach by chance).
const DIGEST_HEX: usize = 16;

/// Marks the version format, so that another one can follow.
const VERSION_FORMAT: &str = "1";

/// The bucket a contact belongs to; the same for every roster he is in.
pub fn bucket_of(jid: &Jid) -> usize {
    usize::from(Sha256::digest(jid.to_string().as_bytes())[0]) % BUCKETS
}

/// The digest of one bucket as the client holds it: empty for an empty
/// bucket, else covers the owner's display name (written into the contacts'
/// rosters) and every item's JID, name and groups.
fn bucket_digest(own_name: &str, items: &[&PersonalItem]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut h = Sha256::new();
    let mut part = |text: &str| {
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    };
    part(own_name);
    for item in items {
        part(&item.jid.to_string());
        part(&item.name);
        for g in &item.groups {
            part(g);
        }
        part("");
    }
    let mut digest = hex::encode(h.finalize());
    digest.truncate(DIGEST_HEX);
    digest
}

/// The version of a user's roster a client holds: one digest per bucket
/// (empty for an empty bucket). On the wire `1.D0.D1…D31`, bounded by
/// [`BUCKETS`] × 17 bytes whatever the roster's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterVersion {
    digests: Vec<String>,
}

/// A version that is not `1.` and [`BUCKETS`] digests of 16 lowercase hex
/// digits (or empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("roster version is not {VERSION_FORMAT}.DIGEST×{BUCKETS} (16 hex digits or empty each)")]
pub struct BadVersion;

impl std::str::FromStr for RosterVersion {
    type Err = BadVersion;

    fn from_str(text: &str) -> Result<Self, BadVersion> {
        let rest = text
            .strip_prefix(VERSION_FORMAT)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(BadVersion)?;
        let digests: Vec<String> = rest.split('.').map(str::to_string).collect();
        let digest_ok = |d: &String| {
            d.is_empty()
                || (d.len() == DIGEST_HEX
                    && d.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        };
        if digests.len() != BUCKETS || !digests.iter().all(digest_ok) {
            return Err(BadVersion);
        }
        Ok(RosterVersion { digests })
    }
}

impl fmt::Display for RosterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VERSION_FORMAT}.{}", self.digests.join("."))
    }
}

/// One bucket the client must replace: its provisioned contacts of
/// `bucket` become `items`, and its digest `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketChange {
    /// Bucket number, below [`BUCKETS`].
    pub bucket: usize,
    /// The bucket's new digest (empty: the bucket is now empty).
    pub digest: String,
    /// Every contact of the bucket now.
    pub items: Vec<PersonalItem>,
}

/// What the client holding `known` (`None`: nothing yet) must change so that
/// it holds `items` (with `own_name` for the contacts' side): the buckets
/// whose digest differs, each whole. Empty when nothing changed.
pub fn changes_since(
    items: Vec<PersonalItem>,
    own_name: &str,
    known: Option<&RosterVersion>,
) -> Vec<BucketChange> {
    let mut by_bucket: Vec<Vec<PersonalItem>> = vec![Vec::new(); BUCKETS];
    for item in items {
        by_bucket[bucket_of(&item.jid)].push(item);
    }
    by_bucket
        .into_iter()
        .enumerate()
        .filter_map(|(bucket, items)| {
            let digest = bucket_digest(own_name, &items.iter().collect::<Vec<_>>());
            let held = known.map_or("", |k| k.digests[bucket].as_str());
            (digest != held).then_some(BucketChange {
                bucket,
                digest,
                items,
            })
        })
        .collect()
}

/// The version a client holds after applying `changes` to `known`.
pub fn apply_changes(known: Option<&RosterVersion>, changes: &[BucketChange]) -> RosterVersion {
    let mut digests = known.map_or_else(|| vec![String::new(); BUCKETS], |k| k.digests.clone());
    for c in changes {
        digests[c.bucket] = c.digest.clone();
    }
    RosterVersion { digests }
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

    fn staff(n: usize) -> Vec<PersonalItem> {
        (0..n)
            .map(|i| PersonalItem {
                jid: Jid::new(format!("u{i}"), "example.org"),
                name: format!("User {i}"),
                groups: ["Staff Team".to_string()].into(),
            })
            .collect()
    }

    #[test]
    fn first_version_sends_everything_once_then_nothing() {
        let items = staff(500);
        let changes = changes_since(items.clone(), "Alice", None);
        let sent: Vec<&Jid> = changes
            .iter()
            .flat_map(|c| c.items.iter().map(|i| &i.jid))
            .collect();
        assert_eq!(sent.len(), 500, "each contact once");
        assert!(changes
            .iter()
            .all(|c| c.items.iter().all(|i| bucket_of(&i.jid) == c.bucket)));
        let held = apply_changes(None, &changes);
        assert!(held.to_string().len() <= 2 + BUCKETS * (DIGEST_HEX + 1));
        assert_eq!(held.to_string().parse::<RosterVersion>(), Ok(held.clone()));
        assert!(changes_since(items, "Alice", Some(&held)).is_empty());
    }

    #[test]
    fn a_member_leaving_resends_only_his_bucket() {
        let mut items = staff(2000);
        let held = apply_changes(None, &changes_since(items.clone(), "Alice", None));
        let gone = items.remove(1234).jid;
        let changes = changes_since(items.clone(), "Alice", Some(&held));
        assert_eq!(changes.len(), 1, "one bucket");
        assert_eq!(changes[0].bucket, bucket_of(&gone));
        assert!(!changes[0].items.iter().any(|i| i.jid == gone));
        assert!(
            changes[0].items.len() < 2000 / BUCKETS * 2,
            "{}",
            changes[0].items.len()
        );
        let held = apply_changes(Some(&held), &changes);
        assert!(changes_since(items.clone(), "Alice", Some(&held)).is_empty());
        // The last one of a bucket leaving: the bucket is sent empty.
        let one = staff(1);
        let held = apply_changes(None, &changes_since(one, "Alice", None));
        let changes = changes_since(Vec::new(), "Alice", Some(&held));
        assert_eq!(changes.len(), 1);
        assert!(changes[0].items.is_empty() && changes[0].digest.is_empty());
    }

    #[test]
    fn own_name_and_groups_count() {
        let items = staff(100);
        let held = apply_changes(None, &changes_since(items.clone(), "Alice", None));
        let nonempty = changes_since(items.clone(), "Alice", None).len();
        assert_eq!(
            changes_since(items.clone(), "Alice L.", Some(&held)).len(),
            nonempty
        );
        let mut regrouped = items;
        regrouped[7].groups.insert("Readers".into());
        let changes = changes_since(regrouped, "Alice", Some(&held));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].bucket, bucket_of(&Jid::new("u7", "example.org")));
    }

    #[test]
    fn versions_that_are_not_ours_are_refused() {
        let good = format!("1.{}", vec![""; BUCKETS].join("."));
        assert!(good.parse::<RosterVersion>().is_ok());
        for bad in [
            String::new(),
            "-".to_string(),
            format!("2.{}", vec![""; BUCKETS].join(".")),
            format!("1.{}", vec![""; BUCKETS - 1].join(".")),
            format!("1.{}.", vec![""; BUCKETS].join(".")),
            format!("1.ABCDEF0123456789{}", ".".repeat(BUCKETS - 1)),
            format!("1.abc{}", ".".repeat(BUCKETS - 1)),
        ] {
            assert_eq!(bad.parse::<RosterVersion>(), Err(BadVersion), "{bad:?}");
        }
    }
}
