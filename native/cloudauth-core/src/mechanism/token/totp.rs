//! The `totp` token format: tokens of Prosody's `mod_auth_token`,
//! verification and minting.
//!
//! A token is `OTP‖NONCE SPACE base64(HMAC-SHA256(token_secret, OTP‖NONCE‖user@domain))`,
//! where OTP is the 8-digit RFC 6238 TOTP (HMAC-SHA1, 30 s steps, T0 = 0)
//! of the base32 `otp_seed` and NONCE is 32 random decimal digits. The
//! application that mints tokens and the XMPP server share both values, so a
//! login needs no call to the cloud.
//!
//! Only that reference form is a token. The signed bytes have nothing between
//! the nonce and the user name, so if the nonce's length could vary, the
//! boundary between them would be the presenter's choice: `malice`'s token
//! with the `m` moved into the nonce would be correctly signed for `alice`,
//! and `bob`'s with nonce digits moved out for `506bob`. With the OTP and the
//! nonce of fixed length the user name starts at byte 40 of the signed
//! message, and a localpart cannot contain `@`, so every signed message has
//! exactly one reading. A password of the token's shape with another nonce
//! (1 to 64 letters or digits) is refused as malformed, without hashing: it is
//! no password anyone has, and sending it on would cost a failed login at
//! the backend.
//!
//! Two details follow the reference generator (pyotp plus `hmac.new`) rather
//! than intuition, and tokens from existing deployments depend on them:
//! the `otp_seed` is base32 *decoded* before use as the TOTP key, while the
//! `token_secret`, although it is generated as base32 too, keys the HMAC
//! with its configured text bytes as they are, never decoded.
//!
//! The signature is checked before the OTP, so a token for another account
//! (or from someone without the secret) is refused without revealing whether
//! its OTP was current. A valid token stays valid for the whole accepted
//! window (the OTP's step ±1), so it can be replayed within it: the caller
//! must remember the `replay_key` of [`TotpVerdict::Valid`] until the token expires.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::{ReplayGuard, TokenCheck, TokenContext, TokenEntry, TokenFormat, Use};
use crate::settings::schema::{Kind, Spec};
use crate::settings::values::{SettingsError, Values};

/// Why a token used before is refused (here, or on another node of a cluster).
pub(crate) const REPLAYED: &str = "TOTP token already used";

/// Why a token is refused whose use the guard may have forgotten (the
/// clock went back past tokens it had swept: see [`super::replay`]).
pub(crate) const FORGOTTEN: &str =
    "TOTP token from before the used-token memory (the clock went back): refused";

/// `totp-seed-file`: the base32 `otp_seed`.
pub(crate) const TOTP_SEED_FILE: &str = "totp-seed-file";
/// `totp-secret-file`: the `token_secret`.
pub(crate) const TOTP_SECRET_FILE: &str = "totp-secret-file";

/// The registry entry: `tokens = totp` needs both files.
pub(crate) static ENTRY: TokenEntry = TokenEntry {
    name: "totp",
    summary: "Prosody mod_auth_token tokens: TOTP + HMAC-SHA256, one use each",
    settings: &[
        Spec::new(
            TOTP_SEED_FILE,
            Kind::SecretFile,
            "totp tokens: file holding the base32 otp_seed (first line)",
        )
        .per_domain()
        .value_name("FILE"),
        Spec::new(
            TOTP_SECRET_FILE,
            Kind::SecretFile,
            "totp tokens: file holding the token_secret (first line, used as written)",
        )
        .per_domain()
        .value_name("FILE"),
    ],
    build,
};

fn build(v: &Values, ctx: &TokenContext) -> Result<Arc<dyn TokenFormat>, SettingsError> {
    let seed = v.require_secret(TOTP_SEED_FILE, "token format totp")?;
    let secret = v.require_secret(TOTP_SECRET_FILE, "token format totp")?;
    let seed_text = String::from_utf8_lossy(seed.expose());
    let key = TotpKey::new(&seed_text, secret.expose()).map_err(|e| SettingsError::Invalid {
        key: TOTP_SEED_FILE.into(),
        origin: v
            .origin(TOTP_SEED_FILE)
            .cloned()
            .unwrap_or(crate::settings::values::Origin::Default),
        why: e.to_string(),
    })?;
    Ok(Arc::new(Totp {
        key,
        replay: Arc::clone(&ctx.replay),
    }))
}

/// The format for one domain: its key, and the guard that makes each token
/// single-use.
pub(crate) struct Totp {
    key: TotpKey,
    replay: Arc<dyn ReplayGuard>,
}

impl TokenFormat for Totp {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    /// A password shaped like a token is never sent to the backend: it is
    /// either a valid, unused token, or refused here.
    fn check(&self, user: &str, domain: &str, password: &str, now: u64) -> TokenCheck {
        match self.key.verify(user, domain, password, now) {
            TotpVerdict::NotAToken => TokenCheck::NotToken,
            TotpVerdict::Malformed => {
                TokenCheck::Refused("TOTP token malformed (its nonce must be 32 digits)")
            }
            TotpVerdict::BadSignature => TokenCheck::Refused("TOTP token not valid for this user"),
            TotpVerdict::BadOtp => TokenCheck::Refused("TOTP token expired"),
            TotpVerdict::Valid { replay_key, step } => {
                // Accepted up to the end of step + 1: remember it that long.
                let until = step.saturating_add(SKEW_STEPS + 1).saturating_mul(INTERVAL);
                let key = format!("totp\0{user}@{domain}\0{replay_key}");
                match self.replay.check_use(&key, until, now) {
                    Ok(Use::First) => TokenCheck::Valid,
                    Ok(Use::Again) => TokenCheck::Refused(REPLAYED),
                    Ok(Use::Forgotten) => TokenCheck::Refused(FORGOTTEN),
                    Ok(Use::Claim(c)) => TokenCheck::Claim(c),
                    Err(_) => TokenCheck::Unknown("TOTP replay guard storage failed"),
                }
            }
        }
    }

    /// A token for the step containing `now` (the lifetime is fixed: this
    /// step and the next), with a random 32-digit nonce.
    fn mint(&self, user: &str, domain: &str, now: u64, _ttl: Duration) -> String {
        let mut raw = [0u8; 32];
        // Without OS randomness the nonce would repeat; fall back to the
        // clock's nanoseconds so two tokens of one step still differ.
        if getrandom::fill(&mut raw).is_err() {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            raw[..16].copy_from_slice(&n.to_le_bytes());
        }
        let nonce: String = raw.iter().map(|b| char::from(b'0' + b % 10)).collect();
        self.key.mint(user, domain, now, &nonce)
    }
}

/// Digits of the OTP; `mod_auth_token` uses 8 where most authenticators use 6.
const DIGITS: usize = 8;
/// Length of a TOTP time step in seconds.
const INTERVAL: u64 = 30;
/// Steps accepted on either side of the current one, for clock differences
/// between the minting application and this server.
const SKEW_STEPS: u64 = 1;
/// The nonce's length: the reference generator draws 32 decimal digits, and
/// only that length makes the signed message unambiguous (module doc).
const NONCE_LEN: usize = 32;
/// Longest nonce of a password still read as a (malformed) token: one of
/// the old, lenient shape is refused rather than sent to the backend.
const MAX_NONCE_LEN: usize = 64;
/// Length of the standard, padded base64 of a 32-byte HMAC-SHA256.
const SIGNATURE_B64_LEN: usize = 44;
/// Shortest and longest possible token, checked before anything else.
const MIN_TOKEN_LEN: usize = DIGITS + 1 + 1 + SIGNATURE_B64_LEN;
const MAX_TOKEN_LEN: usize = DIGITS + MAX_NONCE_LEN + 1 + SIGNATURE_B64_LEN;

/// A configuration that cannot verify any token.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TotpKeyError {
    /// The `otp_seed` has a character outside the base32 alphabet (spaces and
    /// trailing `=` aside), or data after its `=` padding.
    #[error("otp_seed is not base32: unexpected character at position {position}")]
    BadSeedCharacter {
        /// Character index in the configured text (the character itself is
        /// not reported: it is part of a secret).
        position: usize,
    },
    /// The `otp_seed` has a number of base32 characters that no byte string
    /// encodes to (1, 3 or 6 modulo 8).
    #[error("otp_seed is not base32: {chars} characters cannot encode whole bytes")]
    BadSeedLength {
        /// Number of base32 characters, spaces and padding excluded.
        chars: usize,
    },
    /// The `otp_seed` holds no base32 characters at all.
    #[error("otp_seed is empty")]
    EmptySeed,
    /// The `token_secret` is empty: anyone could sign tokens.
    #[error("token_secret is empty")]
    EmptySecret,
}

/// What a password turned out to be when read as a `mod_auth_token` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpVerdict {
    /// Valid; `replay_key` identifies (otp, nonce) so the caller can refuse a second use (it is the token's first word; the caller adds the JID).
    Valid {
        /// The token's first word, `OTP‖NONCE`. The token keeps verifying
        /// until the end of step `step + 1`, i.e. until Unix time
        /// `(step + 2) * 30`; remember the key at least that long.
        replay_key: String,
        /// The TOTP step (Unix time / 30) the token's OTP belongs to.
        step: u64,
    },
    /// Shaped like a token of this format (8 digits + nonce, one space, 44-char base64 of 32 bytes) but the signature does not match this user@domain / secret.
    BadSignature,
    /// Signature right but the OTP is not within the accepted steps (expired or from the future, or another seed).
    BadOtp,
    /// Shaped like a token (8 digits, then 1 to 64 letters or digits, one
    /// space, the base64 of 32 bytes) but its nonce is not 32 digits: never
    /// valid (module doc), refused without hashing.
    Malformed,
    /// Not shaped like a token of this format at all: an ordinary password.
    NotAToken,
}

/// The two shared values of a `mod_auth_token` set-up, ready for use.
#[derive(Clone)]
pub struct TotpKey {
    /// The decoded `otp_seed`: the TOTP key.
    seed: Vec<u8>,
    /// HMAC-SHA256 already keyed with the `token_secret`, so that a check
    /// costs one HMAC over the message only.
    signing: Hmac<Sha256>,
}

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both fields are secrets (or derived from one): never printed.
        f.write_str("TotpKey(<redacted>)")
    }
}

impl TotpKey {
    /// Prepares the configured `otp_seed` (base32 text; lowercase, spaces and
    /// `=` padding accepted, as pyotp does) and `token_secret` (used as given).
    pub fn new(otp_seed_base32: &str, token_secret: &[u8]) -> Result<Self, TotpKeyError> {
        if token_secret.is_empty() {
            return Err(TotpKeyError::EmptySecret);
        }
        let seed = base32_decode(otp_seed_base32)?;
        if seed.is_empty() {
            return Err(TotpKeyError::EmptySeed);
        }
        // HMAC accepts keys of any length; an error here is impossible.
        let signing = match Hmac::<Sha256>::new_from_slice(token_secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Ok(TotpKey { seed, signing })
    }

    /// Reads `password` as a token for user@domain at `now` (Unix seconds).
    ///
    /// The shape is checked first and alone, so an ordinary password (of any
    /// length) costs no hashing. Then the signature, in constant time; only a
    /// correctly signed token gets its OTP compared, against the steps
    /// `now / 30` ± 1, each computed and compared in constant time.
    pub fn verify(&self, user: &str, domain: &str, password: &str, now: u64) -> TotpVerdict {
        let token = match parse(password) {
            Shape::Token(token) => token,
            Shape::Malformed => return TotpVerdict::Malformed,
            Shape::Password => return TotpVerdict::NotAToken,
        };
        let expected = self.signature(token.word, user, domain);
        if !bool::from(expected.ct_eq(&token.signature)) {
            return TotpVerdict::BadSignature;
        }
        let otp = &token.word.as_bytes()[..DIGITS];
        let current = now / INTERVAL;
        let first = current.saturating_sub(SKEW_STEPS);
        let last = current.saturating_add(SKEW_STEPS);
        let mut matched = None;
        // Every step in the window is computed and compared, whatever matched.
        for step in first..=last {
            let hit = bool::from(totp(&self.seed, step)[..].ct_eq(otp));
            if hit && matched.is_none() {
                matched = Some(step);
            }
        }
        match matched {
            Some(step) => TotpVerdict::Valid {
                replay_key: token.word.to_string(),
                step,
            },
            None => TotpVerdict::BadOtp,
        }
    }

    /// Mints a token with the given nonce (caller provides random digits).
    ///
    /// The OTP is that of the step containing `now`. The nonce is not checked
    /// here: one that is not 32 ASCII digits gives a token that
    /// [`TotpKey::verify`] never answers with `Valid`.
    pub fn mint(&self, user: &str, domain: &str, now: u64, nonce: &str) -> String {
        let otp = totp(&self.seed, now / INTERVAL);
        let mut word = String::with_capacity(DIGITS + nonce.len());
        // The OTP is ASCII digits by construction.
        word.extend(otp.iter().map(|&d| char::from(d)));
        word.push_str(nonce);
        let signature = self.signature(&word, user, domain);
        format!("{word} {}", STANDARD.encode(signature))
    }

    /// HMAC-SHA256(token_secret, OTP‖NONCE‖user@domain), the JID taken as its
    /// full UTF-8 bytes.
    fn signature(&self, word: &str, user: &str, domain: &str) -> [u8; 32] {
        #[cfg(test)]
        tests::count_hash();
        let mut m = self.signing.clone();
        m.update(word.as_bytes());
        m.update(user.as_bytes());
        m.update(b"@");
        m.update(domain.as_bytes());
        m.finalize().into_bytes().into()
    }
}

/// True when `password` is read as a token of this format, valid or not
/// (see [`TotpVerdict::Malformed`] and [`TotpVerdict::BadSignature`]): what
/// [`TotpKey::verify`] tests before any hashing.
pub fn looks_like_token(password: &str) -> bool {
    !matches!(parse(password), Shape::Password)
}

/// A password in the reference form of a token.
struct Token<'a> {
    /// `OTP‖NONCE`: 8 ASCII digits, then 32 ASCII digits.
    word: &'a str,
    /// The decoded signature.
    signature: [u8; 32],
}

/// What a password's shape says.
enum Shape<'a> {
    /// The reference form: its signature decides.
    Token(Token<'a>),
    /// A token's shape with a nonce that is not 32 digits: refused.
    Malformed,
    /// An ordinary password.
    Password,
}

/// Splits and checks the shape. The length bounds come first, so a long
/// password is rejected without being scanned.
fn parse(password: &str) -> Shape<'_> {
    let bytes = password.as_bytes();
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&bytes.len()) {
        return Shape::Password;
    }
    let space = bytes.len() - SIGNATURE_B64_LEN - 1;
    if bytes[space] != b' ' {
        return Shape::Password;
    }
    let (otp, nonce) = bytes[..space].split_at(DIGITS);
    if !otp.iter().all(u8::is_ascii_digit) || !nonce.iter().all(u8::is_ascii_alphanumeric) {
        return Shape::Password;
    }
    // Standard alphabet with its single `=`, canonical trailing bits: what
    // Python's b64encode gives for 32 bytes, and nothing else.
    let mut signature = [0u8; 32];
    match STANDARD.decode_slice(&bytes[space + 1..], &mut signature) {
        Ok(32) => {}
        _ => return Shape::Password,
    }
    if nonce.len() != NONCE_LEN || !nonce.iter().all(u8::is_ascii_digit) {
        return Shape::Malformed;
    }
    Shape::Token(Token {
        // Everything before the space is ASCII, so this is a char boundary.
        word: &password[..space],
        signature,
    })
}

/// The 8-digit RFC 6238 TOTP (RFC 4226 HOTP of the step, HMAC-SHA1) of
/// `key` for time step `step`, as ASCII digits.
fn totp(key: &[u8], step: u64) -> [u8; DIGITS] {
    #[cfg(test)]
    tests::count_hash();
    let mut m = match Hmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(&step.to_be_bytes());
    let h = m.finalize().into_bytes();
    // Dynamic truncation (RFC 4226 section 5.3).
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin =
        u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]]) & 0x7fff_ffff;
    let mut code = bin % 10u32.pow(DIGITS as u32);
    let mut out = [b'0'; DIGITS];
    for d in out.iter_mut().rev() {
        // `code % 10` is below 10, so the cast cannot truncate.
        *d = b'0' + (code % 10) as u8;
        code /= 10;
    }
    out
}

/// RFC 4648 base32 decoding, as lenient as pyotp: case-insensitive, spaces
/// ignored anywhere, `=` padding optional (but only at the end), unused
/// trailing bits discarded. A character count that cannot encode whole bytes
/// is refused, as Python's `b32decode` refuses it.
fn base32_decode(text: &str) -> Result<Vec<u8>, TotpKeyError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let mut chars = 0usize;
    let mut padding = false;
    for (position, c) in text.chars().enumerate() {
        let value = match c {
            ' ' => continue,
            '=' => {
                padding = true;
                continue;
            }
            'A'..='Z' => c as u8 - b'A',
            'a'..='z' => c as u8 - b'a',
            '2'..='7' => c as u8 - b'2' + 26,
            _ => return Err(TotpKeyError::BadSeedCharacter { position }),
        };
        if padding {
            return Err(TotpKeyError::BadSeedCharacter { position });
        }
        chars += 1;
        acc = (acc << 5) | u64::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // The low byte after the shift: truncation is the intent.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if matches!(chars % 8, 1 | 3 | 6) {
        return Err(TotpKeyError::BadSeedLength { chars });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::cell::Cell;

    thread_local! {
        static HASHES: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts HMAC computations on this thread, to show which paths hash.
    pub(super) fn count_hash() {
        HASHES.with(|h| h.set(h.get() + 1));
    }

    fn hashes() -> usize {
        HASHES.with(Cell::get)
    }

    /// A nonce of the reference form: 32 digits.
    const NONCE: &str = "01234567890123456789012345678901";

    #[derive(Deserialize)]
    struct Vectors {
        digits: usize,
        interval: u64,
        skew_steps: u64,
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        otp_seed: String,
        token_secret: String,
        user: String,
        domain: String,
        minted_at: u64,
        token: String,
        checks: Vec<Check>,
        wrong: Vec<Wrong>,
    }

    #[derive(Deserialize)]
    struct Check {
        now: u64,
        valid: bool,
    }

    #[derive(Deserialize)]
    struct Wrong {
        why: String,
        user: String,
        domain: String,
        token: String,
    }

    fn vectors() -> Vectors {
        let text = include_str!("../../../tests/data/totp-vectors.json");
        serde_json::from_str(text).unwrap()
    }

    fn key(case: &Case) -> TotpKey {
        TotpKey::new(&case.otp_seed, case.token_secret.as_bytes()).unwrap()
    }

    #[test]
    fn vector_parameters_match_the_module() {
        let v = vectors();
        assert_eq!(v.digits, DIGITS);
        assert_eq!(v.interval, INTERVAL);
        assert_eq!(v.skew_steps, SKEW_STEPS);
    }

    #[test]
    fn every_vector_check() {
        let v = vectors();
        assert!(v.cases.len() >= 12, "vector file looks truncated");
        for case in &v.cases {
            let k = key(case);
            let word = case.token.split(' ').next().unwrap();
            for check in &case.checks {
                let verdict = k.verify(&case.user, &case.domain, &case.token, check.now);
                assert_eq!(
                    matches!(verdict, TotpVerdict::Valid { .. }),
                    check.valid,
                    "{}@{} at {}: {:?}",
                    case.user,
                    case.domain,
                    check.now,
                    verdict
                );
                if check.valid {
                    assert_eq!(
                        verdict,
                        TotpVerdict::Valid {
                            replay_key: word.to_string(),
                            step: case.minted_at / INTERVAL,
                        }
                    );
                } else {
                    // The signature is right; only the time is wrong.
                    assert_eq!(verdict, TotpVerdict::BadOtp, "at {}", check.now);
                }
            }
        }
    }

    #[test]
    fn every_vector_wrong_variant_is_refused() {
        let mut seen = std::collections::BTreeSet::new();
        for case in &vectors().cases {
            let k = key(case);
            for w in &case.wrong {
                let verdict = k.verify(&w.user, &w.domain, &w.token, case.minted_at);
                assert!(
                    !matches!(verdict, TotpVerdict::Valid { .. }),
                    "{}: accepted",
                    w.why
                );
                let expected = match w.why.as_str() {
                    "other user"
                    | "other domain"
                    | "other token secret"
                    | "flipped signature byte" => TotpVerdict::BadSignature,
                    // Signed with the right secret over another seed's OTP.
                    "other otp seed" => TotpVerdict::BadOtp,
                    "no space" | "short otp" => TotpVerdict::NotAToken,
                    other => panic!("unknown wrong kind {other}"),
                };
                assert_eq!(verdict, expected, "{} for {}", w.why, case.user);
                seen.insert(w.why.clone());
            }
        }
        assert_eq!(seen.len(), 7, "kinds seen: {seen:?}");
    }

    #[test]
    fn mint_reproduces_the_vectors() {
        for case in &vectors().cases {
            let k = key(case);
            let word = case.token.split(' ').next().unwrap();
            let nonce = &word[DIGITS..];
            let minted = k.mint(&case.user, &case.domain, case.minted_at, nonce);
            assert_eq!(minted, case.token);
            assert!(matches!(
                k.verify(&case.user, &case.domain, &minted, case.minted_at),
                TotpVerdict::Valid { .. }
            ));
        }
    }

    #[test]
    fn minted_token_verifies_and_its_window_is_one_step_each_side() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7").unwrap();
        let now = 1_700_000_015; // in step 56_666_667
        let t = k.mint(
            "alice",
            "example.org",
            now,
            "01234567890123456789012345678901",
        );
        assert!(looks_like_token(&t));
        let step = now / INTERVAL;
        let start = step * INTERVAL;
        for at in [start - INTERVAL, start, now, start + 2 * INTERVAL - 1] {
            assert_eq!(
                k.verify("alice", "example.org", &t, at),
                TotpVerdict::Valid {
                    replay_key: t[..t.find(' ').unwrap()].to_string(),
                    step
                },
                "at {at}"
            );
        }
        for at in [start - INTERVAL - 1, start + 2 * INTERVAL] {
            assert_eq!(
                k.verify("alice", "example.org", &t, at),
                TotpVerdict::BadOtp,
                "at {at}"
            );
        }
    }

    #[test]
    fn signature_is_checked_before_the_otp() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"secret").unwrap();
        let t = k.mint("alice", "example.org", 1000, NONCE);
        // Long expired and for another user: the answer says nothing of the OTP.
        assert_eq!(
            k.verify("mallory", "example.org", &t, 1_000_000),
            TotpVerdict::BadSignature
        );
        assert_eq!(
            k.verify("alice", "example.org", &t, 1_000_000),
            TotpVerdict::BadOtp
        );
    }

    #[test]
    fn non_ascii_jid_uses_all_bytes() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"secret").unwrap();
        let t = k.mint("jürgen", "例え.jp", 5000, NONCE);
        assert!(matches!(
            k.verify("jürgen", "例え.jp", &t, 5000),
            TotpVerdict::Valid { .. }
        ));
        // Differs only in a non-ASCII character.
        assert_eq!(
            k.verify("jörgen", "例え.jp", &t, 5000),
            TotpVerdict::BadSignature
        );
        assert_eq!(
            k.verify("jürgen", "例え.jq", &t, 5000),
            TotpVerdict::BadSignature
        );
    }

    #[test]
    fn huge_nonce_is_not_a_token_and_is_not_hashed() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"secret").unwrap();
        let nonce = "7".repeat(10_000);
        // Correctly signed, so only the shape test can refuse it.
        let t = k.mint("alice", "example.org", 5000, &nonce);
        assert!(!looks_like_token(&t));
        let before = hashes();
        assert_eq!(
            k.verify("alice", "example.org", &t, 5000),
            TotpVerdict::NotAToken
        );
        assert_eq!(hashes(), before, "a 10 kB password was hashed");
    }

    #[test]
    fn ordinary_passwords_are_not_tokens_and_are_not_hashed() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"secret").unwrap();
        let before = hashes();
        for p in [
            "",
            "hunter2",
            "correct horse battery staple",
            &"x".repeat(100),
        ] {
            assert!(!looks_like_token(p), "{p}");
            assert_eq!(k.verify("a", "b", p, 1), TotpVerdict::NotAToken);
        }
        assert_eq!(hashes(), before);
    }

    #[test]
    fn shape_boundaries() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"secret").unwrap();
        let sig = STANDARD.encode([0u8; 32]);
        let ok = |word: &str| looks_like_token(&format!("{word} {sig}"));
        let malformed = |word: &str| {
            let before = hashes();
            let verdict = k.verify("a", "b", &format!("{word} {sig}"), 1);
            assert_eq!(hashes(), before, "{word}: a malformed token was hashed");
            verdict == TotpVerdict::Malformed
        };
        // Read as tokens, but not in the reference form: refused unhashed.
        for word in [
            "12345678a".to_string(),
            format!("12345678{}", "aZ9".repeat(21) + "x"),
            format!("12345678{}", &NONCE[..31]),
            format!("12345678{NONCE}7"),
            format!("12345678{}a", &NONCE[..31]),
            format!("12345678{NONCE}{NONCE}"),
        ] {
            assert!(ok(&word), "{word}");
            assert!(malformed(&word), "{word}");
        }
        assert!(ok(&format!("12345678{NONCE}")));
        assert_eq!(
            k.verify("a", "b", &format!("12345678{NONCE} {sig}"), 1),
            TotpVerdict::BadSignature
        );
        // Nonce: 1 to 64 ASCII letters or digits.
        assert!(!ok("12345678"));
        assert!(!ok(&format!("12345678{}", "a".repeat(65))));
        assert!(!ok("12345678ab-c"));
        assert!(!ok("12345678abé"));
        // OTP: 8 ASCII digits.
        assert!(!ok("1234567a9"));
        assert!(!ok("１2345678a"));
        // Signature: exactly the padded standard base64 of 32 bytes.
        let word = &format!("12345678{NONCE}");
        assert!(!looks_like_token(&format!("{word} {}", &sig[..43])));
        assert!(!looks_like_token(&format!("{word} {sig}=")));
        assert!(!looks_like_token(&format!("{word}  {}", &sig[1..])));
        assert!(!looks_like_token(&format!(
            "{word} {}",
            sig.replace('A', "-")
        )));
        assert!(!looks_like_token(&format!(" {word} {sig}")));
        assert!(!looks_like_token(&format!("{word} {sig} ")));
        // Non-canonical trailing bits ('B' = 000001 in the last position).
        assert!(!looks_like_token(&format!("{word} {}B=", &sig[..42])));
        // A well-shaped forgery is a bad signature, not a password.
        assert_eq!(
            k.verify("a", "b", &format!("{word} {sig}"), 1),
            TotpVerdict::BadSignature
        );
    }

    #[derive(Deserialize)]
    struct Shifted {
        otp_seed: String,
        token_secret: String,
        now: u64,
        cases: Vec<ShiftedCase>,
    }

    #[derive(Deserialize)]
    struct ShiftedCase {
        why: String,
        minted_for: String,
        user: String,
        domain: String,
        token: String,
        valid: bool,
    }

    /// Correctly signed tokens that are not in the reference form, made by
    /// an independent generator (`tests/data/totp-shifted-vectors.py`):
    /// user-name letters moved into the nonce (`malice` → `alice`), nonce
    /// digits moved into the user name (`bob` → `506bob`), nonces of 31, 33
    /// and other lengths. The verifier before the fix admitted every one.
    #[test]
    fn shifted_and_odd_length_tokens_are_refused() {
        let text = include_str!("../../../tests/data/totp-shifted-vectors.json");
        let v: Shifted = serde_json::from_str(text).unwrap();
        let k = TotpKey::new(&v.otp_seed, v.token_secret.as_bytes()).unwrap();
        let mut refused = 0;
        for c in &v.cases {
            let verdict = k.verify(&c.user, &c.domain, &c.token, v.now);
            if c.valid {
                assert_eq!(format!("{}@{}", c.user, c.domain), c.minted_for);
                assert!(matches!(verdict, TotpVerdict::Valid { .. }), "{}", c.why);
            } else {
                assert_eq!(verdict, TotpVerdict::Malformed, "{} as {}", c.why, c.user);
                refused += 1;
            }
        }
        assert!(refused >= 12, "vector file looks truncated");
    }

    /// The format with `secret` and a fresh memory guard.
    fn format_with(secret: &[u8]) -> Totp {
        Totp {
            key: TotpKey::new("PUL3GGUVO4KFVN4R", secret).unwrap(),
            replay: Arc::new(super::super::MemoryReplayGuard::default()),
        }
    }

    /// The same through the format, as a login sees it: the shifted token
    /// is refused (not passed on as a password), the real one admitted once.
    #[test]
    fn a_token_minted_for_malice_does_not_log_in_alice() {
        let format = format_with(b"OHCMULRVFWI2SR5W2S22C2JMA63OC5SV");
        let now = 1_765_000_005;
        let t = format.mint("malice", "example.org", now, Duration::ZERO);
        let (word, sig) = t.split_once(' ').unwrap();
        let shifted = format!("{word}m {sig}");
        assert!(matches!(
            format.check("alice", "example.org", &shifted, now),
            TokenCheck::Refused(_)
        ));
        let digits = format!("{} {sig}", &word[..word.len() - 3]);
        let victim = format!("{}malice", &word[word.len() - 3..]);
        assert!(matches!(
            format.check(&victim, "example.org", &digits, now),
            TokenCheck::Refused(_)
        ));
        assert_eq!(
            format.check("malice", "example.org", &t, now),
            TokenCheck::Valid
        );
        assert_eq!(
            format.check("malice", "example.org", &t, now + 1),
            TokenCheck::Refused(REPLAYED)
        );
    }

    /// The second hole, with an injected clock: a used token, the
    /// clock an hour (then a year) forward with other logins sweeping the
    /// guard, then back: still refused.
    #[test]
    fn a_used_token_stays_refused_after_the_clock_goes_forward_and_back() {
        for jump in [3600, 2 * 3600, 365 * 24 * 3600] {
            let format = format_with(b"secret");
            let now = 1_765_000_005;
            let t = format.mint("alice", "example.org", now, Duration::ZERO);
            assert_eq!(
                format.check("alice", "example.org", &t, now),
                TokenCheck::Valid
            );
            // Many logins at the stepped clock: the guard sweeps.
            for i in 0..5000 {
                let user = format!("u{i}");
                let other = format.mint(&user, "example.org", now + jump, Duration::ZERO);
                assert_eq!(
                    format.check(&user, "example.org", &other, now + jump),
                    TokenCheck::Valid
                );
            }
            let again = format.check("alice", "example.org", &t, now + 10);
            assert!(
                again == TokenCheck::Refused(REPLAYED) || again == TokenCheck::Refused(FORGOTTEN),
                "jump {jump}: {again:?}"
            );
        }
    }

    #[test]
    fn first_steps_do_not_underflow() {
        let k = TotpKey::new("JBSWY3DPEHPK3PXP", b"secret").unwrap();
        let t = k.mint("a", "b", 0, NONCE);
        assert_eq!(
            k.verify("a", "b", &t, 0),
            TotpVerdict::Valid {
                replay_key: t[..40].to_string(),
                step: 0
            }
        );
        assert!(matches!(
            k.verify("a", "b", &t, 59),
            TotpVerdict::Valid { step: 0, .. }
        ));
        let far = k.mint("a", "b", u64::MAX, NONCE);
        assert!(matches!(
            k.verify("a", "b", &far, u64::MAX),
            TotpVerdict::Valid { .. }
        ));
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        let key = b"12345678901234567890";
        for (t, otp) in [
            (59u64, b"94287082"),
            (1_111_111_109, b"07081804"),
            (1_111_111_111, b"14050471"),
            (1_234_567_890, b"89005924"),
            (2_000_000_000, b"69279037"),
            (20_000_000_000, b"65353130"),
        ] {
            assert_eq!(&totp(key, t / 30), otp, "T = {t}");
        }
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(
                base32_decode(encoded).unwrap(),
                plain.as_bytes(),
                "{encoded}"
            );
            // Without padding, lowercase, with spaces: as pyotp accepts them.
            let bare = encoded.trim_end_matches('=');
            assert_eq!(base32_decode(bare).unwrap(), plain.as_bytes());
            let lower = encoded.to_ascii_lowercase();
            assert_eq!(base32_decode(&lower).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("MZXW 6YTB OI").unwrap(), b"foobar");
        assert_eq!(base32_decode("mZxW6yTbOi=").unwrap(), b"foobar");
    }

    #[test]
    fn base32_full_alphabet_and_seed_lengths() {
        // 32 characters = 20 bytes: every symbol once, all bits in order.
        let all = base32_decode("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").unwrap();
        assert_eq!(hex::encode(all), "00443214c74254b635cf84653a56d7c675be77df");
        assert_eq!(base32_decode("XVGR73KMZH2M4XMY").unwrap().len(), 10);
    }

    #[test]
    fn base32_rejections() {
        for (text, err) in [
            ("MZXW1YTB", TotpKeyError::BadSeedCharacter { position: 4 }),
            ("MZXW0YTB", TotpKeyError::BadSeedCharacter { position: 4 }),
            ("MZXW8YTB", TotpKeyError::BadSeedCharacter { position: 4 }),
            ("MZ\tXW6YTB", TotpKeyError::BadSeedCharacter { position: 2 }),
            ("MY==MY", TotpKeyError::BadSeedCharacter { position: 4 }),
            ("MZXW6YTBé", TotpKeyError::BadSeedCharacter { position: 8 }),
            ("M", TotpKeyError::BadSeedLength { chars: 1 }),
            ("MZX", TotpKeyError::BadSeedLength { chars: 3 }),
            ("MZXW6Y", TotpKeyError::BadSeedLength { chars: 6 }),
            ("MZXW6YTBO", TotpKeyError::BadSeedLength { chars: 9 }),
        ] {
            assert_eq!(base32_decode(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn key_errors() {
        assert_eq!(
            TotpKey::new("JBSWY3DPEHPK3PXP", b"").unwrap_err(),
            TotpKeyError::EmptySecret
        );
        for seed in ["", "  ", "===="] {
            assert_eq!(
                TotpKey::new(seed, b"s").unwrap_err(),
                TotpKeyError::EmptySeed
            );
        }
        let e = TotpKey::new("JBSWY3DP!HPK3PXP", b"s").unwrap_err();
        assert_eq!(e, TotpKeyError::BadSeedCharacter { position: 8 });
        assert!(!e.to_string().contains('!'));
    }

    #[test]
    fn seed_spelling_does_not_change_the_key() {
        let upper = TotpKey::new("XVGR73KMZH2M4XMY", b"s").unwrap();
        let lower = TotpKey::new("xvgr 73km zh2m 4xmy==", b"s").unwrap();
        let t = upper.mint("a", "b", 1_000_000, NONCE);
        assert_eq!(lower.mint("a", "b", 1_000_000, NONCE), t);
    }

    #[test]
    fn token_secret_is_used_as_text_not_decoded() {
        let text = TotpKey::new("XVGR73KMZH2M4XMY", b"MZXW6YTBOI").unwrap();
        let decoded = TotpKey::new("XVGR73KMZH2M4XMY", b"foobar").unwrap();
        let t = text.mint("a", "b", 1_000_000, NONCE);
        assert_eq!(
            decoded.verify("a", "b", &t, 1_000_000),
            TotpVerdict::BadSignature
        );
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let k = TotpKey::new("XVGR73KMZH2M4XMY", b"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7").unwrap();
        let shown = format!("{k:?}");
        assert_eq!(shown, "TotpKey(<redacted>)");
    }
}
