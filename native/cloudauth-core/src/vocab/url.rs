//! URL rules shared by the settings, the HTTP transport and `doctor`: which
//! URLs a `url` setting takes, whether one stays on this machine, and how
//! one is shown without its credentials.

/// Parses a configured URL; only http and https are accepted.
///
/// Errors never repeat the text: a URL that does not parse may still hold
/// `user:password@`, and errors go to the terminal and the log.
pub fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err("the URL has no host".to_string()),
        other => Err(format!(
            "the URL's scheme {:?} is not http or https",
            crate::log_text::printable_snippet(other.as_bytes(), 20)
        )),
    }
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
