//! One canonical form for the user and domain of every request, whatever
//! the protocol (saslauthd and Postfix pass what the client typed): the
//! domain mapped with UTS 46 without a trailing dot, the user lowercased, and the
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

/// The canonical form of a domain alone, or why it is no JID's domain.
///
/// The domain is mapped with UTS 46 (the `idna` crate, as RFC 7622 asks
/// of a JID's domainpart) to its Unicode form: case folded, full-width
/// letters and the ideographic and full-width full stops (`。`, `．`, `｡`)
/// mapped, punycode (`xn--…`) labels decoded — so every spelling of one
/// domain reaches its per-domain settings (issue 24: such spellings fell
/// through to the global settings). Then one trailing dot goes. Refused: a
/// name UTS 46 refuses, a character a domain cannot have (after mapping:
/// `＠` is `@`), and an empty label (`a..b`, `.a`, `a..`: stripping one
/// trailing dot must give a canonical form, so `a.example..` may not
/// become `a.example.`, which no configured domain matches).
pub fn canonical_domain(domain: &str) -> Result<Cow<'_, str>, &'static str> {
    let mapped = if is_plain_ascii(domain) {
        Cow::Borrowed(domain)
    } else {
        let (mapped, checked) = idna::domain_to_unicode(domain);
        if checked.is_err() {
            return Err("the domain is not a valid internationalised domain name");
        }
        Cow::Owned(mapped)
    };
    let bare = mapped.strip_suffix('.').unwrap_or(&mapped);
    if bare.is_empty()
        || bare
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '@' | '/'))
    {
        return Err("the domain has characters a JID's domain cannot have");
    }
    if bare.split('.').any(str::is_empty) {
        return Err("the domain has an empty label");
    }
    Ok(match mapped {
        Cow::Borrowed(d) => Cow::Borrowed(d.strip_suffix('.').unwrap_or(d)),
        Cow::Owned(d) => Cow::Owned(d.strip_suffix('.').unwrap_or(&d).to_string()),
    })
}

/// Lowercase ASCII letters, digits, `-`, `_` and dots, no punycode label:
/// UTS 46 would leave it as it is.
fn is_plain_ascii(domain: &str) -> bool {
    domain
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && !domain.split('.').any(|l| l.starts_with("xn--"))
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

    /// Issue 24: domains spelled in Unicode bypassed per-domain settings
    /// over saslauthd and one-shot checks.
    #[test]
    fn every_spelling_of_a_domain_is_one_domain() {
        for spelling in [
            "ｅｘａｍｐｌｅ.org",
            "example。org",
            "example．org",
            "example｡org",
            "EXAMPLE.ORG.",
            "ＥＸＡＭＰＬＥ．ＯＲＧ。",
        ] {
            assert_eq!(
                canonical_domain(spelling).unwrap(),
                "example.org",
                "{spelling:?}"
            );
        }
        for spelling in [
            "xn--bcher-kva.example",
            "BÜCHER.example",
            "bücher.example.",
            "XN--BCHER-KVA.example",
        ] {
            assert_eq!(
                canonical_domain(spelling).unwrap(),
                "bücher.example",
                "{spelling:?}"
            );
        }
        assert_eq!(canonical_domain("例え．ＪＰ").unwrap(), "例え.jp");
        for bad in [
            "a＠example.org",
            "a／b.example",
            "xn--a.example",
            "a。。example",
            "example．org。。",
            "a\u{200b}\u{0}.example",
        ] {
            assert!(canonical_domain(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            canonical_domain("example.org").unwrap(),
            Cow::Borrowed(_)
        ));
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
