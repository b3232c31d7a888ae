//! URL rules shared by the settings, the HTTP transport and `doctor`: which
//! URLs a `url` setting takes, whether one stays on this machine, and how
//! one is shown without its credentials.

/// A URL scheme a backend takes (its `BackendEntry::schemes`), and what
/// `doctor`'s probes need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlScheme {
    /// As in the URL (`https`, `ldaps`).
    pub name: &'static str,
    /// The connection starts with a TLS handshake (probed by `doctor`);
    /// without it a URL to another machine is warned about.
    pub tls: bool,
    /// The port when the URL gives none.
    pub default_port: u16,
}

/// `http://`.
pub const HTTP: UrlScheme = UrlScheme {
    name: "http",
    tls: false,
    default_port: 80,
};
/// `https://`.
pub const HTTPS: UrlScheme = UrlScheme {
    name: "https",
    tls: true,
    default_port: 443,
};
/// What an HTTP backend takes.
pub const HTTP_SCHEMES: &[UrlScheme] = &[HTTP, HTTPS];

/// The schemes' names for messages: `http or https`.
pub fn scheme_names(schemes: &[UrlScheme]) -> String {
    let names: Vec<&str> = schemes.iter().map(|s| s.name).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "none".to_string(),
    }
}

/// Parses a configured URL; only http and https are accepted.
///
/// Errors never repeat the text: a URL that does not parse may still hold
/// `user:password@`, and errors go to the terminal and the log.
pub fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    parse_url_of(text, HTTP_SCHEMES)
}

/// Parses a configured URL with one of `schemes` and a host.
pub fn parse_url_of(text: &str, schemes: &[UrlScheme]) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    check_scheme(&url, schemes)?;
    if url.host_str().is_none() {
        return Err("the URL has no host".to_string());
    }
    Ok(url)
}

/// The scheme of `url` among `schemes`, or why it is none of them.
pub fn check_scheme(url: &reqwest::Url, schemes: &[UrlScheme]) -> Result<UrlScheme, String> {
    schemes
        .iter()
        .find(|s| s.name == url.scheme())
        .copied()
        .ok_or_else(|| {
            format!(
                "the URL's scheme {:?} is not {}",
                crate::log_text::printable_snippet(url.scheme().as_bytes(), 20),
                scheme_names(schemes)
            )
        })
}

/// Whether a URL's host is this machine by itself, so that plain http
/// crosses no network: a loopback address, or `localhost`. Other names
/// (`cloud.localhost` included: whether it resolves to loopback depends on
/// the resolver and `/etc/hosts`) are not. The start-up warning and
/// `cloudauth doctor` both ask this.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    })
}

/// `url` for display: without user info (which may hold a password).
pub fn shown_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    // Both only fail for URLs without a host, which `url` settings never are.
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a directory backend would register.
    const LDAP: &[UrlScheme] = &[
        UrlScheme {
            name: "ldap",
            tls: false,
            default_port: 389,
        },
        UrlScheme {
            name: "ldaps",
            tls: true,
            default_port: 636,
        },
    ];

    #[test]
    fn a_backend_s_schemes_decide() {
        assert!(parse_url("https://cloud.example.org/").is_ok());
        assert_eq!(
            parse_url("ldaps://dir.example.org/").unwrap_err(),
            "the URL's scheme \"ldaps\" is not http or https"
        );
        let url = parse_url_of("ldaps://dir.example.org/", LDAP).unwrap();
        assert_eq!(check_scheme(&url, LDAP).unwrap().default_port, 636);
        assert!(check_scheme(&url, LDAP).unwrap().tls);
        assert_eq!(
            parse_url_of("https://cloud.example.org/", LDAP).unwrap_err(),
            "the URL's scheme \"https\" is not ldap or ldaps"
        );
        assert_eq!(
            parse_url_of("ldap:///", LDAP).unwrap_err(),
            "the URL has no host"
        );
    }
}
