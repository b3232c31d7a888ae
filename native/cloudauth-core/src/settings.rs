//! Which cloud, which secret and which domain name serve an XMPP domain.
//!
//! One global setting serves every domain today; per-domain sources (a
//! plain file, xcauth's SQLite `domains` table) implement the same trait.

use std::sync::Arc;

use crate::secret::Secret;

/// How to reach and authenticate against the cloud for one XMPP domain.
#[derive(Debug, Clone)]
pub struct DomainSettings {
    /// Full URL of the JSXC external API endpoint.
    pub url: String,
    /// Shared API secret (signs requests, verifies tokens).
    pub secret: Secret,
    /// Domain sent to the cloud, when it differs from the XMPP domain.
    pub auth_domain: Option<String>,
}

impl DomainSettings {
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
        let mut s = DomainSettings {
            url: "http://x".into(),
            secret: Secret::new("k"),
            auth_domain: None,
        };
        assert_eq!(s.auth_domain("chat.example.org"), "chat.example.org");
        s.auth_domain = Some("example.org".into());
        assert_eq!(s.auth_domain("chat.example.org"), "example.org");
    }
}
