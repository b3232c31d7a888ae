//! One canonical form for the user and domain of every request, whatever
//! the protocol (saslauthd and Postfix pass what the client typed): the
//! domain lowercased without a trailing dot, the user lowercased, and the
//! characters JIDs forbid refused. Settings lookup, token MACs, the cache
//! key and the backend request all see the same pair, so `A.EXAMPLE`,
//! `a.example.` and `a.example` cannot be told apart by any of them, and
//! `alice@x` at `example.org` cannot pose as `alice` at `x@example.org`.

use std::borrow::Cow;

/// Characters a JID's local part may not contain (RFC 7622, nodeprep).
const USER_FORBIDDEN: &[char] = &['"', '&', '\'', '/', ':', '<', '>', '@'];

fn lower(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The canonical `(user, domain)`, or why the pair is no JID.
pub fn canonical<'a>(
    user: &'a str,
    domain: &'a str,
) -> Result<(Cow<'a, str>, Cow<'a, str>), &'static str> {
    if user
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || USER_FORBIDDEN.contains(&c))
    {
        return Err("the user name has characters a JID cannot have");
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty()
        || domain
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '@' | '/'))
    {
        return Err("the domain has characters a JID's domain cannot have");
    }
    Ok((lower(user), lower(domain)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_trailing_dot_fold_forbidden_characters_refuse() {
        let (u, d) = canonical("Alice", "A.EXAMPLE.").unwrap();
        assert_eq!((u.as_ref(), d.as_ref()), ("alice", "a.example"));
        assert!(matches!(
            canonical("alice", "example.org").unwrap().0,
            Cow::Borrowed(_)
        ));
        assert_eq!(canonical("Jürgen", "Ü.de").unwrap().0, "jürgen");
        for (u, d) in [
            ("alice@x", "example.org"),
            ("alice", "x@example.org"),
            ("alice", "example.org/res"),
            ("al ice", "example.org"),
            ("alice\n", "example.org"),
            ("alice", ""),
            ("alice", "."),
            ("a:b", "example.org"),
        ] {
            assert!(canonical(u, d).is_err(), "{u:?} {d:?}");
        }
    }
}
