//! The `jsxc` token format: JSXC time-limited tokens, verification and minting.
//!
//! A token is 23 bytes, `version(1) ‖ mac(16) ‖ key id(2) ‖ expiry(4, big endian)`,
//! encoded as standard base64 without `=` padding and with `O→-`, `I→$`,
//! `l→%` for readability. The key id is the first two bytes of
//! SHA-256(secret); the MAC is the first 16 bytes of
//! HMAC-SHA256(secret, `version ‖ key id ‖ expiry ‖ user@domain`), the JID
//! taken as its full UTF-8 bytes.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use std::sync::Arc;
use std::time::Duration;

use super::{TokenCheck, TokenContext, TokenEntry, TokenFormat};
use crate::secret::Secret;
use crate::settings::keys;
use crate::settings::values::{SettingsError, Values};

/// The registry entry: `tokens = jsxc` (the default) needs `secret`.
pub(crate) static ENTRY: TokenEntry = TokenEntry {
    name: "jsxc",
    summary: "JSXC time-limited tokens, signed with the API secret (HMAC-SHA256)",
    settings: &[],
    build,
};

fn build(v: &Values, _ctx: &TokenContext) -> Result<Arc<dyn TokenFormat>, SettingsError> {
    Ok(Arc::new(TokenKey::new(
        &v.require_secret(keys::SECRET, "token format jsxc")?,
    )))
}

impl TokenFormat for TokenKey {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    /// A token with another key id is an ordinary password (it may be one);
    /// one with this secret's key id but a wrong MAC, or expired, is refused.
    fn check(&self, user: &str, domain: &str, password: &str, now: u64) -> TokenCheck {
        match self.verify(user, domain, password, now) {
            TokenVerdict::Valid { .. } => TokenCheck::Valid,
            TokenVerdict::Expired { .. } => TokenCheck::Refused("token expired"),
            TokenVerdict::BadMac => TokenCheck::Refused("token not valid for this user"),
            TokenVerdict::NotAToken => TokenCheck::NotToken,
        }
    }

    fn mint(&self, user: &str, domain: &str, now: u64, ttl: Duration) -> String {
        TokenKey::mint(self, user, domain, now.saturating_add(ttl.as_secs()))
    }
}

/// The only token format version in use.
pub(crate) const TOKEN_VERSION: u8 = 0;
/// Length of a decoded token in bytes.
pub(crate) const TOKEN_LEN: usize = 23;
/// Length of an encoded token in characters.
pub const ENCODED_LEN: usize = 31;

/// What a password turned out to be when read as a JSXC token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVerdict {
    /// A valid, unexpired token for this JID.
    Valid {
        /// Unix time until which the token is accepted.
        expiry: u64,
    },
    /// A token made with this secret, but its lifetime has ended.
    Expired {
        /// Unix time at which the token ran out.
        expiry: u64,
    },
    /// Token-shaped and made with this secret's key id, but the MAC does not
    /// match: a token for another user, or a forgery.
    BadMac,
    /// Not a token of this secret (wrong shape, version or key id): an
    /// ordinary password, to be checked elsewhere.
    NotAToken,
}

/// First two bytes of SHA-256(secret), identifying the secret a token was made with.
pub(crate) fn key_id(secret: &Secret) -> [u8; 2] {
    let digest = Sha256::digest(secret.expose());
    [digest[0], digest[1]]
}

/// A secret prepared for token work: its key id and the HMAC state already
/// keyed with it, so that a check costs one HMAC over the message only.
#[derive(Clone)]
pub struct TokenKey {
    id: [u8; 2],
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keyed state is derived from the secret: never printed.
        write!(f, "TokenKey(id {:02x}{:02x})", self.id[0], self.id[1])
    }
}

impl TokenKey {
    /// Prepares `secret`.
    pub fn new(secret: &Secret) -> Self {
        // HMAC accepts keys of any length; an error here is impossible.
        let keyed = match Hmac::<Sha256>::new_from_slice(secret.expose()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        TokenKey {
            id: key_id(secret),
            keyed,
        }
    }

    /// The key id tokens of this secret carry.
    pub fn id(&self) -> [u8; 2] {
        self.id
    }

    fn mac(&self, version: u8, expiry: u32, user: &str, domain: &str) -> [u8; 16] {
        let mut m = self.keyed.clone();
        m.update(&[version]);
        m.update(&self.id);
        m.update(&expiry.to_be_bytes());
        m.update(user.as_bytes());
        m.update(b"@");
        m.update(domain.as_bytes());
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// Reads `password` as a JSXC token for `user@domain` at time `now` (Unix seconds).
    ///
    /// A token with another version or key id is answered `NotAToken` without
    /// any MAC work. The MAC is compared in constant time. A token is accepted
    /// up to and including its expiry second.
    pub fn verify(&self, user: &str, domain: &str, password: &str, now: u64) -> TokenVerdict {
        let Some(raw) = decode(password) else {
            return TokenVerdict::NotAToken;
        };
        let version = raw[0];
        if version != TOKEN_VERSION || [raw[17], raw[18]] != self.id {
            return TokenVerdict::NotAToken;
        }
        let expiry = u32::from_be_bytes([raw[19], raw[20], raw[21], raw[22]]);
        let expected = self.mac(version, expiry, user, domain);
        if !bool::from(expected.ct_eq(&raw[1..17])) {
            return TokenVerdict::BadMac;
        }
        let expiry = u64::from(expiry);
        if now > expiry {
            TokenVerdict::Expired { expiry }
        } else {
            TokenVerdict::Valid { expiry }
        }
    }

    /// Mints a token for `user@domain` that is valid until `expiry` (Unix
    /// seconds, saturated to the 32-bit field).
    pub fn mint(&self, user: &str, domain: &str, expiry: u64) -> String {
        let expiry = u32::try_from(expiry).unwrap_or(u32::MAX);
        let m = self.mac(TOKEN_VERSION, expiry, user, domain);
        let mut raw = [0u8; TOKEN_LEN];
        raw[0] = TOKEN_VERSION;
        raw[1..17].copy_from_slice(&m);
        raw[17..19].copy_from_slice(&self.id);
        raw[19..23].copy_from_slice(&expiry.to_be_bytes());
        encode(&raw)
    }
}

/// Undoes the readability substitutions and the base64 encoding.
fn decode(password: &str) -> Option<[u8; TOKEN_LEN]> {
    if password.len() != ENCODED_LEN {
        return None;
    }
    let mut std_b64 = [0u8; ENCODED_LEN];
    for (dst, &c) in std_b64.iter_mut().zip(password.as_bytes()) {
        *dst = match c {
            b'-' => b'O',
            b'$' => b'I',
            b'%' => b'l',
            // Those three are replaced on encoding, so they never appear.
            b'O' | b'I' | b'l' => return None,
            other => other,
        };
    }
    let mut out = [0u8; TOKEN_LEN];
    match STANDARD_NO_PAD.decode_slice(std_b64, &mut out) {
        Ok(TOKEN_LEN) => Some(out),
        _ => None,
    }
}

fn encode(raw: &[u8; TOKEN_LEN]) -> String {
    STANDARD_NO_PAD
        .encode(raw)
        .chars()
        .map(|c| match c {
            'O' => '-',
            'I' => '$',
            'l' => '%',
            other => other,
        })
        .collect()
}

/// Reads `password` as a JSXC token for `user@domain` at time `now`;
/// see [`TokenKey::verify`]. Prepare a [`TokenKey`] once for repeated checks.
pub fn verify(secret: &Secret, user: &str, domain: &str, password: &str, now: u64) -> TokenVerdict {
    TokenKey::new(secret).verify(user, domain, password, now)
}

/// Mints a token for `user@domain` valid until `expiry`; see [`TokenKey::mint`].
pub fn mint(secret: &Secret, user: &str, domain: &str, expiry: u64) -> String {
    TokenKey::new(secret).mint(user, domain, expiry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vectors {
        tokens: Vec<TokenCase>,
    }

    #[derive(Deserialize)]
    struct TokenCase {
        user: String,
        domain: String,
        secret: String,
        now: u64,
        password: String,
        valid: bool,
        why: String,
    }

    fn vectors() -> Vectors {
        let text = include_str!("../../../tests/data/jsxc-vectors.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn every_vector_case_with_injected_clock() {
        let v = vectors();
        assert!(v.tokens.len() >= 80, "vector file looks truncated");
        for case in v.tokens {
            let clock = FixedClock::new(case.now);
            let secret = Secret::new(case.secret.as_bytes());
            let verdict = verify(
                &secret,
                &case.user,
                &case.domain,
                &case.password,
                clock.now_unix(),
            );
            assert_eq!(
                matches!(verdict, TokenVerdict::Valid { .. }),
                case.valid,
                "{} / {} / {}: {:?}",
                case.why,
                case.user,
                case.password,
                verdict
            );
            let expected_kind = match case.why.as_str() {
                "valid" => matches!(verdict, TokenVerdict::Valid { .. }),
                "expired" => matches!(verdict, TokenVerdict::Expired { .. }),
                "other user" => verdict == TokenVerdict::BadMac,
                "other secret" | "unknown version" | "not a token" => {
                    verdict == TokenVerdict::NotAToken
                }
                other => panic!("unknown case kind {other}"),
            };
            assert!(expected_kind, "{}: got {:?}", case.why, verdict);
        }
    }

    #[test]
    fn mint_reproduces_the_vectors() {
        for case in vectors().tokens.iter().filter(|c| c.why == "valid") {
            let secret = Secret::new(case.secret.as_bytes());
            let Some(raw) = decode(&case.password) else {
                panic!("vector does not decode")
            };
            let expiry = u64::from(u32::from_be_bytes([raw[19], raw[20], raw[21], raw[22]]));
            assert_eq!(
                mint(&secret, &case.user, &case.domain, expiry),
                case.password
            );
        }
    }

    #[test]
    fn expiry_second_itself_is_still_valid() {
        let s = Secret::new("k");
        let t = mint(&s, "a", "b", 1000);
        assert_eq!(
            verify(&s, "a", "b", &t, 1000),
            TokenVerdict::Valid { expiry: 1000 }
        );
        assert_eq!(
            verify(&s, "a", "b", &t, 1001),
            TokenVerdict::Expired { expiry: 1000 }
        );
    }

    #[test]
    fn non_ascii_jid_uses_all_bytes() {
        let s = Secret::new("k");
        let t = mint(&s, "jürgen", "例え.jp", 5000);
        assert!(matches!(
            verify(&s, "jürgen", "例え.jp", &t, 1),
            TokenVerdict::Valid { .. }
        ));
        // Differs only in a non-ASCII character: must not verify.
        assert_eq!(verify(&s, "jörgen", "例え.jp", &t, 1), TokenVerdict::BadMac);
    }

    #[test]
    fn domain_is_part_of_the_mac() {
        let s = Secret::new("k");
        let t = mint(&s, "alice", "a.example", 5000);
        assert_eq!(
            verify(&s, "alice", "b.example", &t, 1),
            TokenVerdict::BadMac
        );
    }
}
