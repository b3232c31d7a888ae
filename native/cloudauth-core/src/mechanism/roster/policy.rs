//! Which Nextcloud groups become shared roster groups.
//!
//! Names ending in U+200B (zero-width space) are never used, as in xcauth;
//! configurable allow and deny patterns and a maximum size do the same job
//! properly (for instance to keep an "everyone" group out of all rosters).

use std::fmt;

/// A case-insensitive pattern with `*` (any run) and `?` (any one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.chars().flat_map(char::to_lowercase).collect())
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        let p = &self.0;
        let (mut pi, mut ti) = (0, 0);
        // Where the last `*` was and where the text stood then.
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.iter().collect::<String>())
    }
}

/// Why a group is not provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The name ends in U+200B (xcauth's opt-out marker).
    ZeroWidthSpace,
    /// Allow patterns are set and none matches.
    NotAllowed,
    /// A deny pattern matches.
    Denied,
    /// More members than the maximum.
    TooLarge {
        /// Members in the answer.
        members: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::ZeroWidthSpace => f.write_str("name ends in U+200B"),
            Skip::NotAllowed => f.write_str("matches no allow pattern"),
            Skip::Denied => f.write_str("matches a deny pattern"),
            Skip::TooLarge { members, max } => write!(f, "{members} members, more than {max}"),
        }
    }
}

/// The filters for groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPolicy {
    /// If not empty, only groups matching one of these.
    pub allow: Vec<Glob>,
    /// Never groups matching one of these.
    pub deny: Vec<Glob>,
    /// Never groups with more members than this.
    pub max_members: Option<usize>,
}

impl GroupPolicy {
    /// `Ok` when the group named `name` with `members` members is provisioned.
    pub fn check(&self, name: &str, members: usize) -> Result<(), Skip> {
        if name.ends_with('\u{200B}') {
            return Err(Skip::ZeroWidthSpace);
        }
        if self.deny.iter().any(|g| g.matches(name)) {
            return Err(Skip::Denied);
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|g| g.matches(name)) {
            return Err(Skip::NotAllowed);
        }
        match self.max_members {
            Some(max) if members > max => Err(Skip::TooLarge { members, max }),
            _ => Ok(()),
        }
    }

    /// A text that changes whenever the policy does (part of the answer
    /// hash, so that a changed policy is applied at the next login).
    pub(crate) fn fingerprint(&self) -> String {
        let list = |v: &[Glob]| {
            v.iter()
                .map(Glob::to_string)
                .collect::<Vec<_>>()
                .join("\u{1}")
        };
        format!(
            "allow={}\u{2}deny={}\u{2}max={:?}",
            list(&self.allow),
            list(&self.deny),
            self.max_members
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = Glob::new("Team*");
        assert!(g.matches("team"));
        assert!(g.matches("TEAM alpha"));
        assert!(!g.matches("my team"));
        assert!(Glob::new("*-staff").matches("Berlin-Staff"));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").matches("axxbyy"));
        assert!(Glob::new("*ä*").matches("Bäcker"));
        assert!(Glob::new("exact").matches("Exact"));
        assert!(!Glob::new("exact").matches("exactly"));
    }

    #[test]
    fn policy_rules() {
        let p = GroupPolicy::default();
        assert_eq!(p.check("Team", 3), Ok(()));
        assert_eq!(p.check("Hidden\u{200B}", 3), Err(Skip::ZeroWidthSpace));
        let p = GroupPolicy {
            allow: vec![Glob::new("team*"), Glob::new("ops")],
            deny: vec![Glob::new("*secret*")],
            max_members: Some(100),
        };
        assert_eq!(p.check("Team A", 5), Ok(()));
        assert_eq!(p.check("Ops", 5), Ok(()));
        assert_eq!(p.check("Sales", 5), Err(Skip::NotAllowed));
        assert_eq!(p.check("Team secret", 5), Err(Skip::Denied));
        assert_eq!(
            p.check("Team big", 101),
            Err(Skip::TooLarge {
                members: 101,
                max: 100
            })
        );
        assert_eq!(p.check("Team big", 100), Ok(()));
    }

    #[test]
    fn fingerprints_follow_the_policy() {
        let a = GroupPolicy::default();
        let mut b = a.clone();
        b.max_members = Some(10);
        let mut c = a.clone();
        c.deny.push(Glob::new("x"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), GroupPolicy::default().fingerprint());
    }
}
