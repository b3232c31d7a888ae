//! Which cloud, which secret and which domain name serve an XMPP domain.
//!
//! One global setting serves every domain today; per-domain sources (a
//! plain file, xcauth's SQLite `domains` table) implement the same trait.

use std::sync::Arc;

use crate::secret::Secret;
use crate::token::TokenKey;

/// How to reach and authenticate against the cloud for one XMPP domain.
///
/// Built with [`DomainSettings::new`], which prepares the token key and
/// parses the URL once instead of per request.
#[derive(Debug, Clone)]
pub struct DomainSettings {
    /// Full URL of the JSXC external API endpoint, as configured.
    pub url: String,
    /// Shared API secret (signs requests, verifies tokens).
    pub secret: Secret,
    /// Domain sent to the cloud, when it differs from the XMPP domain.
    pub auth_domain: Option<String>,
    /// The secret prepared for token checks.
    pub token_key: TokenKey,
    /// `url` parsed, or why it cannot be.
    pub parsed_url: Result<reqwest::Url, String>,
}

impl DomainSettings {
    /// Settings for one domain (or the global ones, with `auth_domain` `None`).
    pub fn new(url: impl Into<String>, secret: Secret, auth_domain: Option<String>) -> Self {
        let url = url.into();
        DomainSettings {
            parsed_url: reqwest::Url::parse(&url).map_err(|e| e.to_string()),
            token_key: TokenKey::new(&secret),
            url,
            secret,
            auth_domain,
        }
    }

    /// The domain name to send to the cloud for a request on `xmpp_domain`.
    pub fn auth_domain<'a>(&'a self, xmpp_domain: &'a str) -> &'a str {
        self.auth_domain.as_deref().unwrap_or(xmpp_domain)
    }
}

/// Finds the settings for an XMPP domain.
pub trait SettingsResolver: Send + Sync {
    /// Settings for `xmpp_domain`, or `None` when this domain is not served.
    fn resolve(&self, xmpp_domain: &str) -> Option<Arc<DomainSettings>>;
}

/// The same settings for every domain (xcauth's global `--url`/`--secret`).
#[derive(Debug, Clone)]
pub struct SingleDomain(pub Arc<DomainSettings>);

impl SingleDomain {
    /// Serves every domain with `settings`.
    pub fn new(settings: DomainSettings) -> Self {
        SingleDomain(Arc::new(settings))
    }
}

impl SettingsResolver for SingleDomain {
    fn resolve(&self, _xmpp_domain: &str) -> Option<Arc<DomainSettings>> {
        Some(Arc::clone(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_domain_falls_back_to_xmpp_domain() {
        let s = DomainSettings::new("http://x", Secret::new("k"), None);
        assert_eq!(s.auth_domain("chat.example.org"), "chat.example.org");
        let s = DomainSettings::new("http://x", Secret::new("k"), Some("example.org".into()));
        assert_eq!(s.auth_domain("chat.example.org"), "example.org");
        assert!(s.parsed_url.is_ok());
        assert!(DomainSettings::new("not a url", Secret::new("k"), None)
            .parsed_url
            .is_err());
    }
}
