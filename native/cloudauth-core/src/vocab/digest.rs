//! Keyed digests of (JID, password) pairs with a per-process random key:
//! cheap to compute, useless outside this process, never stored or logged.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A digest of one (JID, password) pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PairDigest([u8; 32]);

impl std::fmt::Debug for PairDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairDigest(..)")
    }
}

impl PairDigest {
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &PairDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Computes [`PairDigest`]s under a key drawn from the OS at creation.
pub(crate) struct Digester {
    key: [u8; 32],
}

impl Digester {
    /// A digester with a fresh random key; `None` if the OS has no randomness to give.
    pub fn random() -> Option<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Some(Digester { key })
    }

    /// HMAC-SHA256(key, len(jid) ‖ jid ‖ password).
    pub fn digest(&self, jid: &str, password: &str) -> PairDigest {
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        m.update(&(jid.len() as u64).to_be_bytes());
        m.update(jid.as_bytes());
        m.update(password.as_bytes());
        PairDigest(m.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_separate_pairs_and_keys() {
        let (a, b) = (Digester::random().unwrap(), Digester::random().unwrap());
        assert!(a.digest("x@y", "pw").ct_eq(&a.digest("x@y", "pw")));
        assert!(!a.digest("x@y", "pw").ct_eq(&a.digest("x@y", "pw2")));
        assert!(!a.digest("x@y", "pw").ct_eq(&a.digest("x@yp", "w")));
        assert!(!a.digest("x@y", "pw").ct_eq(&b.digest("x@y", "pw")));
    }
}
