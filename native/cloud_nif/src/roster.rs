//! Shared roster terms between the core's roster plan and Erlang.
//!
//! JIDs travel as `{User, Server}`; groups as `{Id, Label, [Jid]}`; names as
//! `{Jid, Name}`; actions as `{create_group, Id, Label}`,
//! `{add_member, Id, Jid}`, `{remove_member, Id, Jid}`, `{set_name, Jid, Name}`.

use std::collections::{BTreeMap, BTreeSet};

use cloudauth_core::roster::{Action, Current, Desired, DesiredGroup, Jid};
use rustler::{Atom, Encoder, Env, Term};

use crate::atoms;

/// A JID as Erlang sends and receives it.
pub type JidTerm = (String, String);
/// A group as Erlang receives it: id, label, members.
pub type GroupTerm = (String, String, Vec<JidTerm>);
/// A display name: the JID and the name.
pub type NameTerm = (JidTerm, String);
/// A group left out: its name and why.
pub type SkippedTerm = (String, String);

fn jid_term(j: &Jid) -> JidTerm {
    (j.user.clone(), j.domain.clone())
}

fn jid((user, domain): JidTerm) -> Jid {
    Jid::new(user, domain)
}

/// The desired state as terms: groups, names, skipped groups with reasons.
pub fn desired_terms(d: &Desired) -> (Vec<GroupTerm>, Vec<NameTerm>, Vec<SkippedTerm>) {
    let groups = d
        .groups
        .values()
        .map(|g| {
            (
                g.id.clone(),
                g.label.clone(),
                g.members.iter().map(jid_term).collect(),
            )
        })
        .collect();
    let names = d
        .names
        .iter()
        .map(|(j, n)| (jid_term(j), n.clone()))
        .collect();
    let skipped = d
        .skipped
        .iter()
        .map(|(name, why)| (name.clone(), why.to_string()))
        .collect();
    (groups, names, skipped)
}

/// The desired state back from terms (skipped groups play no part in a plan).
pub fn desired_from(groups: Vec<GroupTerm>, names: Vec<NameTerm>) -> Desired {
    Desired {
        groups: groups
            .into_iter()
            .map(|(id, label, members)| {
                let members = members.into_iter().map(jid).collect();
                (id.clone(), DesiredGroup { id, label, members })
            })
            .collect(),
        names: names.into_iter().map(|(j, n)| (jid(j), n)).collect(),
        skipped: Vec::new(),
    }
}

/// The current state from terms.
pub fn current_from(
    members: Vec<(String, Vec<JidTerm>)>,
    login_groups: Vec<String>,
    names: Vec<NameTerm>,
) -> Current {
    Current {
        members: members
            .into_iter()
            .map(|(id, m)| (id, m.into_iter().map(jid).collect::<BTreeSet<_>>()))
            .collect(),
        login_groups: login_groups.into_iter().collect(),
        names: names
            .into_iter()
            .map(|(j, n)| (jid(j), n))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The outcome of fetching a shared roster.
pub enum Fetched {
    /// `{ok, Hash, Groups, Names, Skipped}`.
    Ok {
        /// Digest of the answer for this login and policy.
        hash: String,
        /// The desired state.
        desired: Desired,
    },
    /// `{trouble, Why}`: the cloud could not give the roster.
    Trouble(String),
}

impl Encoder for Fetched {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Fetched::Ok { hash, desired } => {
                let (groups, names, skipped) = desired_terms(desired);
                (atoms::ok(), hash, groups, names, skipped).encode(env)
            }
            Fetched::Trouble(why) => (atoms::trouble(), why).encode(env),
        }
    }
}

/// One action as a term.
pub fn action_term<'a>(env: Env<'a>, a: &Action) -> Term<'a> {
    let tag = |t: Atom| t.encode(env);
    match a {
        Action::CreateGroup { id, label } => (tag(atoms::create_group()), id, label).encode(env),
        Action::AddMember { group, member } => {
            (tag(atoms::add_member()), group, jid_term(member)).encode(env)
        }
        Action::RemoveMember { group, member } => {
            (tag(atoms::remove_member()), group, jid_term(member)).encode(env)
        }
        Action::SetName { jid, name } => (tag(atoms::set_name()), jid_term(jid), name).encode(env),
    }
}
