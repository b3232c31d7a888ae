//! Shared roster provisioning from Nextcloud groups, as a pure plan.
//!
//! From a `sharedroster` answer, the login JID and the current state (as
//! the XMPP server or a state database has it), compute what to do: create
//! missing groups, add missing members, remove departed members (and the
//! login user from groups it left), set vCard FN where a display name
//! changed. Applying the actions (ejabberd's command API in the VM,
//! `ejabberdctl` from the port binary) belongs to the adapters.

pub mod group_id;
pub mod personal;
pub mod plan;
pub mod policy;
pub mod state_db;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use group_id::group_id;
pub use personal::{
    apply_changes, bucket_of, changes_since, personal_roster, BadVersion, BucketChange,
    PersonalItem, RosterVersion, BUCKETS,
};
pub use plan::{answer_hash, desired, plan, stale_digests, Action, Current, Desired, DesiredGroup};
pub use policy::{Glob, GroupPolicy, Skip};

/// One member of a shared roster: display name and the groups shared with the asker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterMember {
    /// Display name in the cloud.
    #[serde(default)]
    pub name: String,
    /// Display names of the groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A backend's shared roster answer: cloud user id → member.
pub type SharedRoster = BTreeMap<String, RosterMember>;

/// The description of every group cloudauth provisions; only such groups
/// are ever changed (the in-VM module uses the same text).
pub const MARKER: &str = "Nextcloud group (provisioned by cloudauth)";

/// A bare JID, split.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jid {
    /// Local part.
    pub user: String,
    /// Domain.
    pub domain: String,
}

impl Jid {
    /// `user@domain`.
    pub fn new(user: impl Into<String>, domain: impl Into<String>) -> Self {
        Jid {
            user: user.into(),
            domain: domain.into(),
        }
    }

    /// A Nextcloud user id as a JID: `uid@domain` ids keep their domain,
    /// plain ids belong to `default_domain` (the login's). `None` for ids
    /// that cannot be a JID (empty parts).
    pub fn from_uid(uid: &str, default_domain: &str) -> Option<Self> {
        let (user, domain) = match uid.split_once('@') {
            Some((u, d)) => (u, d),
            None => (uid, default_domain),
        };
        (!user.is_empty() && !domain.is_empty()).then(|| Jid::new(user, domain))
    }

    /// Parses `user@domain` (as ejabberd lists group members).
    pub fn parse(text: &str) -> Option<Self> {
        let (u, d) = text.split_once('@')?;
        (!u.is_empty() && !d.is_empty() && !d.contains('@')).then(|| Jid::new(u, d))
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}
