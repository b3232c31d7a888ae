//! Request bodies for the JSXC external API and their `X-JSXC-Signature`.
//!
//! The body is `application/x-www-form-urlencoded` with the fields in the
//! order `operation, username, domain[, password]`; the signature header is
//! `sha1=<hex HMAC-SHA1(secret, exact body bytes)>`.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-JSXC-Signature";

/// Builds the form-encoded body from `(name, value)` pairs, in the given order.
pub(crate) fn form_body(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

fn hmac_sha1(secret: &Secret, body: &[u8]) -> [u8; 20] {
    let mut m = match Hmac::<Sha1>::new_from_slice(secret.expose()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The header value `sha1=<hex>` for `body` under `secret`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    format!("sha1={}", hex::encode(hmac_sha1(secret, body)))
}

/// Checks a received header value against `body` in constant time.
///
/// Accepts only the `sha1=` form, with hex digits in either case.
pub fn verify(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.trim().strip_prefix("sha1=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_mac) else {
        return false;
    };
    let expected = hmac_sha1(secret, body);
    given.len() == expected.len() && bool::from(expected.ct_eq(&given[..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vectors {
        signatures: Vec<SigCase>,
    }

    #[derive(Deserialize)]
    struct SigCase {
        secret: String,
        form: serde_json::Map<String, serde_json::Value>,
        body: String,
        header: String,
    }

    #[test]
    fn vectors_match_byte_for_byte() {
        let v: Vectors =
            serde_json::from_str(include_str!("../../tests/data/jsxc-vectors.json")).unwrap();
        assert!(!v.signatures.is_empty());
        for case in v.signatures {
            let order = ["operation", "username", "domain", "password"];
            let fields: Vec<(&str, &str)> = order
                .iter()
                .filter_map(|k| case.form.get(*k).and_then(|v| v.as_str()).map(|v| (*k, v)))
                .collect();
            assert_eq!(fields.len(), case.form.len(), "unexpected form field");
            let body = form_body(&fields);
            assert_eq!(body, case.body);
            let secret = Secret::new(case.secret.as_bytes());
            assert_eq!(sign(&secret, body.as_bytes()), case.header);
            assert!(verify(&secret, body.as_bytes(), &case.header));
            assert!(verify(
                &secret,
                body.as_bytes(),
                &case.header.to_uppercase().replace("SHA1=", "sha1=")
            ));
            let mut tampered = body.clone().into_bytes();
            tampered.push(b'x');
            assert!(!verify(&secret, &tampered, &case.header));
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let s = Secret::new("k");
        for h in ["", "sha1=", "sha1=zz", "sha256=00", "md5=abcd", "sha1=00"] {
            assert!(!verify(&s, b"body", h), "{h}");
        }
    }
}
