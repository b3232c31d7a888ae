//! TLS for the backend client: certificates verified against the system's
//! roots (rustls with ring, no OpenSSL), the roots loaded on the first
//! handshake instead of at start-up.
//!
//! Parsing the system's CA bundle costs memory and time that a cloud reached
//! over plain HTTP (or not at all, for token-only work) never needs, and a
//! machine without a CA bundle would otherwise fail to build any client.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The crypto provider used for every connection (ring).
pub fn provider() -> Arc<CryptoProvider> {
    // Err only means another part of the process installed a provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Verifies server certificates with the platform verifier (system roots,
/// WebPKI), which it builds on the first certificate to check.
#[derive(Debug)]
pub(crate) struct LazySystemRoots {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>>,
}

impl LazySystemRoots {
    /// A verifier that will load the system roots when first needed.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        LazySystemRoots {
            provider,
            inner: OnceLock::new(),
        }
    }

    fn inner(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(Arc::clone(&self.provider)).map(Arc::new)
            })
            .as_ref()
            .map(|v| v.as_ref())
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazySystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client configuration for the backend: TLS 1.2 and 1.3, HTTP/1.1,
/// certificates verified against the system roots (loaded lazily).
pub(crate) fn client_config() -> Result<ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = Arc::new(LazySystemRoots::new(Arc::clone(&provider)));
    // rustls calls any verifier that is not its own built-in one "dangerous";
    // this one delegates every certificate check to the platform verifier.
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What to do about a TLS failure, from rustls's description of it (the
/// HTTP client's errors carry only that text): `""` when there is nothing
/// plainer to say.
pub fn hint(detail: &str) -> &'static str {
    let d = detail.to_ascii_lowercase();
    if d.contains("causedasendentity") {
        " (the server presents a CA certificate as its own, as `openssl req -x509` makes by \
         default: never accepted, installed or not; give it a certificate signed by a CA, or one \
         made with basicConstraints=CA:FALSE, and install that CA or certificate with \
         update-ca-certificates)"
    } else if ["unknownissuer", "badsignature"]
        .iter()
        .any(|k| d.contains(k))
    {
        " (the certificate is not trusted: self-signed or an unknown CA; install the CA on this \
         machine with update-ca-certificates, or use a certificate from a public CA)"
    } else if d.contains("notvalidforname") || d.contains("not valid for name") {
        " (the certificate is for another name: use the name on the certificate in the URL)"
    } else if d.contains("expired") || d.contains("not valid yet") || d.contains("notvalidyet") {
        " (the certificate has expired or is not valid yet: renew it, or check this machine's clock)"
    } else if d.contains("invalidcontenttype") || d.contains("corrupt message") {
        " (the port seems to speak plain HTTP: use http:// for it, or the TLS port)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_in_plain_words() {
        assert!(hint("invalid peer certificate: UnknownIssuer").contains("update-ca-certificates"));
        assert!(
            hint("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))")
                .contains("CA certificate as its own")
        );
        assert!(hint("invalid peer certificate: certificate not valid for name \"x\"; certificate is only valid for y")
            .contains("another name"));
        assert!(hint("received corrupt message of type InvalidContentType").contains("plain HTTP"));
        assert_eq!(hint("something else"), "");
    }

    #[test]
    fn building_the_config_loads_no_roots() {
        let provider = provider();
        let v = LazySystemRoots::new(Arc::clone(&provider));
        assert!(v.inner.get().is_none());
        assert!(!v.supported_verify_schemes().is_empty());
        assert!(v.inner.get().is_none(), "schemes must not load the roots");
        assert!(client_config().is_ok());
    }
}
