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
    Ok((lower(user), canonical_domain(domain)?))
}

/// The canonical form of a domain alone (lowercase, without its trailing
/// dot), or why it is no JID's domain: a character a domain cannot have,
/// or an empty label (`a..b`, `.a`, `a..`: stripping one trailing dot must
/// give a canonical form, so `a.example..` may not become `a.example.`,
/// which no configured domain matches).
pub fn canonical_domain(domain: &str) -> Result<Cow<'_, str>, &'static str> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty()
        || domain
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '@' | '/'))
    {
        return Err("the domain has characters a JID's domain cannot have");
    }
    if domain.split('.').any(str::is_empty) {
        return Err("the domain has an empty label");
    }
    Ok(lower(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_are_canonical() {
        // Found by the frames fuzz target's check: `a.example..` became
        // `a.example.`, another name than `a.example` for the settings lookup.
        for d in ["A.Example.", "a.example", "例え.JP.", "x"] {
            let once = canonical_domain(d).unwrap();
            assert_eq!(canonical_domain(&once).unwrap(), once, "{d:?}");
        }
    }

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
            ("alice", "a.example.."),
            ("alice", ".a.example"),
            ("alice", "a..example"),
        ] {
            assert!(canonical(u, d).is_err(), "{u:?} {d:?}");
        }
    }
}
