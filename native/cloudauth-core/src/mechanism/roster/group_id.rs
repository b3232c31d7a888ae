//! Shared roster group ids from Nextcloud group names.
//!
//! Ids are lowercase and made of `[a-z0-9._-]` only, so that they survive
//! command lines and ejabberd versions that lowercase ids on creation but
//! not elsewhere (24.12+). The Nextcloud name itself becomes the group's
//! label, which is what clients show.

use sha2::{Digest, Sha256};

/// The group id for a Nextcloud group name.
///
/// A name that already is a safe id is its own id. Any other name is
/// slugged (lowercase, other characters as `-`) and gets the first 8 hex
/// digits of SHA-256(name) appended, so that distinct names ("Team",
/// "team", "Team!") never share an id.
pub fn group_id(name: &str) -> String {
    let safe = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if !name.is_empty() && name.chars().all(safe) {
        return name.to_string();
    }
    let mut slug = String::with_capacity(name.len() + 9);
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if safe(c) { c } else { '-' };
        if !(c == '-' && slug.ends_with('-')) {
            slug.push(c);
        }
    }
    let slug = slug.trim_matches('-');
    let hash = Sha256::digest(name.as_bytes());
    let tag = hex::encode(&hash[..4]);
    if slug.is_empty() {
        format!("group-{tag}")
    } else {
        format!("{slug}-{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_their_own_id() {
        assert_eq!(group_id("team"), "team");
        assert_eq!(group_id("ops-2.eu_west"), "ops-2.eu_west");
    }

    #[test]
    fn other_names_are_slugged_and_tagged() {
        let id = group_id("Team Alpha");
        assert!(id.starts_with("team-alpha-"), "{id}");
        assert_eq!(id.len(), "team-alpha-".len() + 8);
        let b = group_id("Büro / Köln");
        assert!(b.starts_with("b-ro-k-ln-"), "{b}");
        assert!(group_id("Ω").starts_with("group-"));
        assert!(group_id("!!!").starts_with("group-"));
        for id in [group_id("Team Alpha"), b, group_id("!!!"), group_id("ÄÖÜ")] {
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)),
                "{id}"
            );
        }
    }

    #[test]
    fn distinct_names_get_distinct_ids() {
        let names = ["Team", "team", "TEAM", "Team!", "team-", "Tëam"];
        let ids: std::collections::BTreeSet<String> = names.iter().map(|n| group_id(n)).collect();
        assert_eq!(ids.len(), names.len(), "{ids:?}");
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(group_id("Team Alpha"), group_id("Team Alpha"));
    }
}
