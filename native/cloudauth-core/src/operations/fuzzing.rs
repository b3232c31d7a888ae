//! Entry points for the coverage-guided fuzz targets in `fuzz/` and for the
//! corpus replay test (`native/cloudauth/tests/fuzz_corpus.rs`): the same
//! functions are run by libFuzzer and by `cargo test`, so every input the
//! fuzzer ever found interesting is replayed without a fuzzing engine.
//!
//! Each function takes arbitrary bytes and panics when an invariant does
//! not hold (not only when the code under test panics). The first byte
//! selects the format or operation, so one target explores several parsers.
//! Not a public API: hidden from the docs, no stability promised.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value as Json;

use crate::backend::http::HttpReply;
use crate::backend::{self, json, jsxc, nextcloud, BackendError, DecodeError};
use crate::domains::{parse_domain_file, Builder};
use crate::jid;
use crate::roster::SharedRoster;
use crate::secret::Secret;
use crate::settings::schema::{self, Kind};
use crate::settings::values::{Layer, Origin, Values};
use crate::token::jsxc::{TokenKey, TokenVerdict};
use crate::token::totp::{looks_like_token, TotpKey, TotpVerdict};
use crate::Timeouts;

/// Splits `data` into `N` fields at 0xFF bytes (never in UTF-8 text), the
/// last field taking the rest; missing fields are empty.
fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut parts = data.splitn(N, |b| *b == 0xff);
    for slot in out.iter_mut() {
        match parts.next() {
            Some(p) => *slot = p,
            None => break,
        }
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that a message meant for a log line has no control character
/// (a forged log line needs one).
pub fn assert_printable(what: &str, message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "{what}: control character in {message:?}"
    );
}

// ---------------------------------------------------------------- tokens

/// The `tokens` target: JSXC (even first byte) or TOTP (odd) token parsing
/// and checking.
///
/// Layout after the first byte: 4 bytes of `now` (big-endian Unix seconds),
/// then fields separated by 0xFF. Bit 1 of the first byte mints a token
/// with the key and mutates it as the last field says, instead of taking
/// the password field as it is.
///
/// Invariants: a check says Valid only for exactly the bytes the key mints
/// for that user, domain and time; a token minted for one canonical JID is
/// never valid for another; an unmodified fresh token is valid; token
/// shapes and verdicts agree.
pub fn tokens(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 4 {
        return;
    }
    let now = u64::from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]));
    let rest = &rest[4..];
    if mode & 1 == 0 {
        jsxc_token(mode, now, rest);
    } else {
        totp_token(mode, now, rest);
    }
}

/// Applies `(position, xor)` byte pairs of `edits` to `token`.
fn mutate(token: &str, edits: &[u8]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if bytes.is_empty() {
        return String::new();
    }
    for pair in edits.chunks_exact(2) {
        let i = usize::from(pair[0]) % bytes.len();
        bytes[i] ^= pair[1];
    }
    text(&bytes)
}

/// What a canonical domain is (`jid::canonical_domain`): not empty, no
/// trailing dot, no ASCII capital, no full-width or ideographic full stop,
/// no punycode label left (decoded), nothing a domain cannot have, and its
/// punycode (ASCII) spelling is the same domain (issue 24: other spellings
/// fell through to the global settings).
pub fn check_canonical_domain(d: &str) {
    assert!(!d.is_empty() && !d.ends_with('.'), "{d:?}");
    assert!(
        !d.chars()
            .any(|c| c.is_ascii_uppercase() || matches!(c, '。' | '．' | '｡' | '@' | '/')),
        "{d:?} is not mapped"
    );
    assert!(
        !d.split('.')
            .any(|l| l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))),
        "{d:?} keeps a punycode label"
    );
    let ascii = idna::domain_to_ascii(d).expect("a canonical domain has an ASCII form");
    assert_eq!(
        jid::canonical_domain(&ascii).as_deref(),
        Ok(d),
        "its punycode spelling {ascii:?} is another domain"
    );
}

/// Whether a token minted for (u1, d1) may be valid for (u2, d2): only the
/// same pair, once both are canonical JIDs (what the decision layer passes).
fn same_canonical_jid(u1: &str, d1: &str, u2: &str, d2: &str) -> bool {
    match (jid::canonical(u1, d1), jid::canonical(u2, d2)) {
        (Ok(_), Ok(_)) => (u1, d1) == (u2, d2),
        // A pair the JID layer refuses never reaches a token check.
        _ => true,
    }
}

fn jsxc_token(mode: u8, now: u64, rest: &[u8]) {
    let [secret, user, domain, password, edits] = fields::<5>(rest);
    let secret = Secret::new(if secret.is_empty() { b"s" } else { secret });
    let key = TokenKey::new(&secret);
    let (user, domain) = (text(user), text(domain));
    let (password, minted_for) = if mode & 2 == 0 {
        (text(password), None)
    } else {
        // Minted for the JID in the password field (user@domain, or the
        // checked JID when it has no '@'), with an expiry from the edits.
        let for_jid = text(password);
        let (mu, md) = for_jid
            .rsplit_once('@')
            .map(|(u, d)| (u.to_string(), d.to_string()))
            .unwrap_or_else(|| (user.clone(), domain.clone()));
        let (delta, edits) = match edits {
            [a, b, rest @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (0, edits),
        };
        let expiry = now.saturating_add(delta);
        let token = key.mint(&mu, &md, expiry);
        assert_eq!(token.len(), crate::token::jsxc::ENCODED_LEN, "{token:?}");
        let fresh = key.verify(&mu, &md, &token, now);
        if expiry <= u64::from(u32::MAX) {
            assert_eq!(
                fresh,
                TokenVerdict::Valid { expiry },
                "a fresh token is not valid"
            );
        }
        (mutate(&token, edits), Some((mu, md)))
    };
    let verdict = key.verify(&user, &domain, &password, now);
    if let TokenVerdict::Valid { expiry } | TokenVerdict::Expired { expiry } = verdict {
        assert_eq!(
            key.mint(&user, &domain, expiry),
            password,
            "{verdict:?} for bytes the key does not mint"
        );
        assert_eq!(matches!(verdict, TokenVerdict::Valid { .. }), now <= expiry);
        if let Some((mu, md)) = &minted_for {
            assert!(
                same_canonical_jid(mu, md, &user, &domain),
                "token for {mu:?}@{md:?} accepted for {user:?}@{domain:?}"
            );
        }
    }
    // Another secret never accepts it (unless the password is its own token).
    let other = TokenKey::new(&Secret::new(b"another secret"));
    if let TokenVerdict::Valid { expiry } | TokenVerdict::Expired { expiry } =
        other.verify(&user, &domain, &password, now)
    {
        assert_eq!(other.mint(&user, &domain, expiry), password);
    }
}

fn totp_token(mode: u8, now: u64, rest: &[u8]) {
    let [seed, secret, user, domain, password, edits] = fields::<6>(rest);
    let seed = if seed.is_empty() {
        "JBSWY3DPEHPK3PXP".to_string()
    } else {
        text(seed)
    };
    let key = match TotpKey::new(&seed, secret) {
        Ok(k) => k,
        Err(e) => {
            assert_printable("totp key error", &e.to_string());
            return;
        }
    };
    let (user, domain) = (text(user), text(domain));
    let password = if mode & 2 == 0 {
        text(password)
    } else {
        let nonce = text(password);
        let (steps, edits) = match edits {
            [a, rest @ ..] => (i64::from(*a as i8), rest),
            _ => (0, edits),
        };
        let at = now.saturating_add_signed(steps.saturating_mul(30));
        let token = key.mint(&user, &domain, at, &nonce);
        let shape_ok =
            (1..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric());
        assert_eq!(looks_like_token(&token), shape_ok, "{token:?}");
        // Only the reference form (32 digits) is ever valid.
        let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_digit());
        if !nonce_ok {
            assert!(
                !matches!(
                    key.verify(&user, &domain, &token, now),
                    TotpVerdict::Valid { .. }
                ),
                "a token with nonce {nonce:?} is valid"
            );
        }
        if nonce_ok && at / 30 == now / 30 {
            assert!(
                matches!(
                    key.verify(&user, &domain, &token, now),
                    TotpVerdict::Valid { .. }
                ),
                "a fresh TOTP token is not valid"
            );
        }
        mutate(&token, edits)
    };
    let verdict = key.verify(&user, &domain, &password, now);
    assert_eq!(
        looks_like_token(&password),
        verdict != TotpVerdict::NotAToken,
        "shape and verdict disagree: {verdict:?}"
    );
    if let TotpVerdict::Valid { replay_key, step } = &verdict {
        let (word, _) = password.split_once(' ').unwrap_or_default();
        assert_eq!(replay_key, word);
        assert!(
            word.len() == 40 && word.bytes().all(|b| b.is_ascii_digit()),
            "Valid for a token not in the reference form: {word:?}"
        );
        assert!(step.abs_diff(now / 30) <= 1, "step {step} at {now}");
        assert_eq!(
            key.mint(&user, &domain, step * 30, &replay_key[8..]),
            password,
            "Valid for bytes the key does not mint"
        );
    }
}

// ---------------------------------------------------------------- replies

/// The `replies` target: decoding of backend replies (JSXC, JSON, OCS).
///
/// The first byte picks the operation, the second the HTTP status; for
/// Nextcloud's `auth` the user comes first, up to a 0xFF byte; the rest is
/// the body.
///
/// Invariants: "yes" (or "exists") only for a reply of exactly the
/// success shape, checked against an independent reading of the JSON;
/// "no" only for the refusal shape; errors are printable and never show
/// a form or JSON value of the body.
pub fn replies(data: &[u8]) {
    let [op, status, body @ ..] = data else {
        return;
    };
    let status = match status % 8 {
        0..=2 => 200,
        3 => 401,
        4 => 403,
        5 => 404,
        6 => 412,
        _ => 100 + u16::from(*status),
    };
    let reply = |body: &[u8]| HttpReply {
        status,
        content_type: "application/json".into(),
        body: body.to_vec(),
        elapsed: Duration::ZERO,
        date: None,
    };
    let parsed: Option<Json> = serde_json::from_slice(body).ok();
    let at = |p: &str| parsed.as_ref().and_then(|v| v.pointer(p));
    match op % 8 {
        0 => {
            let r = jsxc::auth_answer(&reply(body));
            let result = at("/result").and_then(Json::as_str);
            match &r {
                Ok(true) => assert!(status == 200 && result == Some("success"), "yes: {r:?}"),
                Ok(false) => assert!(status == 200 && result == Some("noauth"), "no: {r:?}"),
                Err(_) => assert!(status != 200 || !matches!(result, Some("success" | "noauth"))),
            }
            check_error(body, &r);
        }
        1 => {
            let r = jsxc::is_user_answer(&reply(body));
            if let Ok(b) = &r {
                assert_eq!(status, 200);
                assert_eq!(at("/result").and_then(Json::as_str), Some("success"));
                assert_eq!(at("/data/isUser").and_then(Json::as_bool), Some(*b));
            }
            check_error(body, &r);
        }
        2 => {
            let r = jsxc::decode_envelope(body).map_err(BackendError::from);
            if let Ok(jsxc::Envelope::Success(data)) = &r {
                if let Ok(roster) = jsxc::decode_shared_roster(data) {
                    check_roster(&roster, None);
                }
            }
            check_error(body, &r);
        }
        3 => {
            let r = json::answer(&reply(body));
            if let Ok(b) = &r {
                assert_eq!(status, 200);
                assert_eq!(at("/success").and_then(Json::as_bool), Some(*b));
            }
            check_error(body, &r);
        }
        4 => {
            let [user, body] = fields::<2>(body);
            let user = text(user);
            let parsed: Option<Json> = serde_json::from_slice(body).ok();
            let id = parsed
                .as_ref()
                .and_then(|v| v.pointer("/ocs/data/id"))
                .and_then(Json::as_str);
            let url = reqwest::Url::parse("http://127.0.0.1/").expect("a literal URL");
            let r = nextcloud::auth_answer(&reply(body), &url, &user).map(|a| a.accepted());
            match &r {
                Ok(true) => assert!(
                    status == 200
                        && id.is_some_and(|i| nextcloud::fold(i) == nextcloud::fold(&user)),
                    "yes: {r:?}"
                ),
                Ok(false) => assert!(
                    status == 401
                        || status == 200
                            && id.is_some_and(|i| nextcloud::fold(i) != nextcloud::fold(&user))
                ),
                Err(_) => assert!(
                    status != 401 && (status != 200 || id.is_none())
                        || nextcloud::is_blocked(&reply(body))
                ),
            }
            check_error(body, &r);
        }
        5 => {
            let url = reqwest::Url::parse("http://127.0.0.1/").expect("a literal URL");
            let r = nextcloud::is_user_answer(&reply(body), &url, "u", "svc");
            match &r {
                Ok(true) => {
                    assert_eq!(status, 200);
                    assert!(at("/ocs/data/id").is_some_and(Json::is_string));
                }
                // A disabled account, or an unknown one.
                Ok(false) => assert!(
                    status == 200 && at("/ocs/data/id").is_some_and(Json::is_string)
                        || status == 404 && nextcloud::ocs_statuscode(body) == Some(404)
                ),
                Err(_) => {}
            }
            check_error(body, &r);
        }
        6 => {
            let r = nextcloud::decode_user_groups(body).map_err(BackendError::from);
            if let Ok(groups) = &r {
                let listed = at("/ocs/data/groups").and_then(Json::as_array);
                assert_eq!(listed.map(Vec::len), Some(groups.len()));
            }
            check_error(body, &r);
        }
        _ => {
            let r = nextcloud::decode_group_members(body).map_err(BackendError::from);
            if let Ok(members) = &r {
                for m in members {
                    assert!(!m.name.is_empty() || m.uid.is_empty());
                }
                let groups = [("g".to_string(), members.clone())];
                let roster = nextcloud::build_shared_roster(&groups);
                check_roster(&roster, Some(members.len()));
            }
            check_error(body, &r);
        }
    }
}

fn check_roster(roster: &SharedRoster, most: Option<usize>) {
    if let Some(most) = most {
        assert!(roster.len() <= most);
        for m in roster.values() {
            assert_eq!(m.groups, ["g"]);
        }
    }
}

/// Values planted after `password=` (form) or `"password": "` (JSON), when
/// they occur once in the body: an error may describe the body, but must
/// not show them.
fn planted_values(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for marker in ["password=", "\"password\": \"", "\"password\":\""] {
        for (i, _) in text.match_indices(marker) {
            let value: String = text[i + marker.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if value.len() >= 4 && text.matches(value.as_str()).count() == 1 {
                out.push(value);
            }
        }
    }
    out
}

fn check_error<T>(body: &[u8], r: &Result<T, BackendError>) {
    let Err(e) = r else { return };
    let message = e.to_string();
    assert_printable("backend error", &message);
    // The body's own words are shown only through its shape.
    let shape = match e {
        BackendError::HttpStatus { snippet, .. }
        | BackendError::Decode(DecodeError::NotJson { snippet }) => Some(snippet),
        _ => None,
    };
    if let Some(shape) = shape {
        assert!(shape.starts_with(&backend::body_shape(body)), "{shape:?}");
        // Nothing of the body but a known message field is shown.
        let (_, shown) = shape.split_once(" bytes, ").unwrap_or_default();
        let shown = shown
            .split_once(", message ")
            .map_or(shown, |(kind, _)| kind);
        for v in planted_values(body) {
            assert!(!shown.contains(&v), "{v:?} shown in {shape:?}");
        }
    }
}

// ---------------------------------------------------------------- settings

/// `layer` without the settings whose value names a file to read (the
/// fuzzer must not make the harness read `/dev/zero`).
pub fn without_file_reads(layer: &Layer) -> Layer {
    let mut out = Layer::new(layer.origin.clone());
    for (k, v) in &layer.entries {
        let key = schema::normalise_key(k);
        if crate::catalogue::find(&key).is_some_and(|s| s.kind == Kind::SecretFile) {
            continue;
        }
        out.entries.push((k.clone(), v.clone()));
    }
    out
}

fn is_secret_text(key: &str) -> bool {
    crate::catalogue::find(&schema::normalise_key(key)).is_some_and(|s| s.kind == Kind::SecretText)
}

/// Secrets given as text in `layer`, long enough to be recognised in a message.
fn secret_texts(layer: &Layer) -> Vec<String> {
    layer
        .entries
        .iter()
        .filter(|(k, _)| is_secret_text(k))
        .map(|(_, v)| v.clone())
        .filter(|v| {
            v.len() >= 8
                && v.bytes().any(|b| b.is_ascii_digit())
                && v.bytes().any(|b| b.is_ascii_alphabetic())
        })
        .collect()
}

/// Asserts that no message about `layer` shows one of its secrets.
fn check_no_secret(layer: &Layer, messages: &[String]) {
    for secret in secret_texts(layer) {
        // A secret that is also some other part of the layer (a key, another
        // setting's value, the file or domain name) may be named as that.
        // Compared without case: a URL's scheme and host are shown lowercased.
        let lower = secret.to_lowercase();
        let has = |text: &str| text.to_lowercase().contains(&lower);
        let elsewhere = has(&layer.origin.to_string())
            || layer
                .entries
                .iter()
                .any(|(k, v)| has(k) || !is_secret_text(k) && has(v));
        if elsewhere {
            continue;
        }
        for m in messages {
            assert!(!m.contains(&secret), "a secret shown in {m:?}");
        }
    }
}

/// Resolves the settings of a config file (`layer`) as the program does,
/// and asserts that errors and warnings never show a secret.
pub fn resolve_file_settings(layer: &Layer) {
    let layer = without_file_reads(layer);
    match Values::resolve(std::slice::from_ref(&layer), |_| true) {
        Ok(r) => check_no_secret(&layer, &r.warnings),
        Err(e) => check_no_secret(&layer, &[e.to_string()]),
    }
}

fn global() -> &'static (Values, Builder) {
    static GLOBAL: OnceLock<(Values, Builder)> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let values = Values::from_pairs(&[
            (
                "url",
                "https://cloud.example.org/apps/ojsxc/ajax/externalApi.php",
            ),
            ("secret", "global secret"),
        ])
        .unwrap_or_default();
        let builder = Builder::new(Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_secs(1),
        });
        (values, builder)
    })
}

// ---------------------------------------------------------------- domains

/// The `domain_file` target: the per-domain file (`-p`), its lines and the
/// settings each row builds over global ones.
///
/// Invariants: errors name a line that exists and never its text; every
/// row has a domain in the canonical form requests are looked up with
/// (lowercase, no trailing dot, a JID's domain) and at least one setting;
/// building a row's settings never shows a secret.
pub fn domain_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("domains.txt");
    let lines = text.lines().count();
    let rows = match parse_domain_file(path, text) {
        Ok(rows) => rows,
        Err(e) => {
            let message = e.to_string();
            assert_printable("domain file error", &message);
            if let crate::domains::DomainSourceError::Line { line, .. } = e {
                assert!((1..=lines).contains(&line), "line {line} of {lines}");
                let expected = format!(
                    "per-domain file domains.txt line {line}: expected `domain secret url [authdomain] [key=value ...]`"
                );
                assert_eq!(message, expected);
            }
            return;
        }
    };
    assert!(rows.len() <= lines);
    let (global, builder) = global();
    for row in &rows {
        assert!(!row.layer.entries.is_empty());
        let canonical = jid::canonical("u", &row.domain).map(|(_, d)| d.into_owned());
        assert_eq!(
            canonical.as_deref(),
            Ok(row.domain.as_str()),
            "row domain {:?} is not how requests name it",
            row.domain
        );
        check_canonical_domain(&row.domain);
        assert_eq!(row.layer.origin, Origin::Domain(row.domain.clone()));
        let layer = without_file_reads(&row.layer);
        let messages = match global.overlay(&layer) {
            Ok(r) => {
                let mut m = r.warnings;
                match builder.build(&r.values) {
                    Ok(settings) => {
                        let d = settings.auth_domain(&row.domain);
                        assert!(!d.is_empty());
                    }
                    Err(e) => m.push(e.to_string()),
                }
                m
            }
            Err(e) => vec![e.to_string()],
        };
        check_no_secret(&layer, &messages);
    }
}
