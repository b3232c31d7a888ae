//! Entry points for the fuzz targets in `fuzz/` and the corpus replay test
//! (`tests/fuzz_corpus.rs`); see `cloudauth_core::fuzzing`. Not a public
//! API: hidden from the docs, no stability promised.

use bytes::{Bytes, BytesMut};
use cloudauth_core::jid;
use cloudauth_core::settings::schema;
use cloudauth_core::settings::values::{Layer, Origin};
use tokio_util::codec::{Decoder, Encoder};

use crate::config_file;
use crate::request::{self, Request};
use crate::wire::ejabberd::EjabberdCodec;
use crate::wire::generic::LineCodec;
use crate::wire::postfix::PostfixCodec;
use crate::wire::saslauthd::{SaslauthdCodec, FIELDS, MAX_FIELD};
use crate::wire::{FrameProblem, Incoming, Reply, WireProtocol, MAX_REQUEST};

// ---------------------------------------------------------------- frames

/// The protocols, as the first byte of a `frames` input selects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Ejabberd,
    Generic,
    Postfix,
    Saslauthd,
}

/// The `frames` target: every codec's decoder and its request parser.
///
/// The first byte picks the protocol (low two bits) and how the stream is
/// cut into reads (the other bits seed the read sizes); the rest is the
/// stream a client sent.
///
/// Invariants: a decoder never yields a payload or field longer than its
/// limit, nor more bytes than it was given; how the stream is cut into
/// reads changes nothing; a yielded frame, encoded again, decodes to
/// itself; replies decode as the protocol's framing says; every request
/// parses without panicking into something that, written out again,
/// parses to itself; the canonical JID of a request is canonical.
pub fn frames(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let proto = match selector & 3 {
        0 => Proto::Ejabberd,
        1 => Proto::Generic,
        2 => Proto::Postfix,
        _ => Proto::Saslauthd,
    };
    let whole = decode_stream(proto, stream, &[stream.len().max(1)]);
    // The same bytes cut into reads of 1 to 64 bytes, as the selector says.
    let seed = usize::from(selector >> 2);
    let sizes: Vec<usize> = (0..8).map(|i| 1 + (seed * 7 + i * 13) % 64).collect();
    let cut = decode_stream(proto, stream, &sizes);
    same_items(&whole, &cut, || format!("{proto:?}: reads of {sizes:?}"));
    // And byte by byte: every boundary is a read boundary once.
    let bytewise = decode_stream(proto, stream, &[1]);
    same_items(&whole, &bytewise, || {
        format!("{proto:?}: reads of one byte")
    });
    for item in &whole {
        check_item(proto, item);
        round_trip(proto, item);
        parse_request(proto, item);
    }
    replies_decode(proto);
}

/// Decodes `stream` fed in reads of the given sizes (cycled), then the end
/// of input, checking what every decoder call consumed.
fn decode_stream(proto: Proto, stream: &[u8], sizes: &[usize]) -> Vec<Incoming> {
    match proto {
        Proto::Ejabberd => run(EjabberdCodec::default(), stream, sizes),
        Proto::Generic => run(LineCodec::default(), stream, sizes),
        Proto::Postfix => run(PostfixCodec::default(), stream, sizes),
        Proto::Saslauthd => run(SaslauthdCodec::default(), stream, sizes),
    }
}

fn run<D>(mut codec: D, stream: &[u8], sizes: &[usize]) -> Vec<Incoming>
where
    D: Decoder<Item = Incoming, Error = std::io::Error>,
{
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut at = 0;
    let (mut consumed, mut yielded) = (0, 0);
    let mut reads = sizes.iter().cycle();
    loop {
        let eof = at == stream.len();
        if !eof {
            let n = reads.next().copied().unwrap_or(1).min(stream.len() - at);
            buf.extend_from_slice(&stream[at..at + n]);
            at += n;
        }
        loop {
            let before = buf.len();
            let item = if eof {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            }
            .expect("decoders report problems as items, never as errors");
            assert!(buf.len() <= before, "a decoder added bytes to its input");
            consumed += before - buf.len();
            let Some(item) = item else { break };
            yielded += item_bytes(&item);
            assert!(yielded <= consumed, "yielded more than it consumed");
            out.push(item);
            assert!(out.len() <= at + 1, "items out of nothing");
        }
        if eof {
            break;
        }
    }
    assert!(
        buf.is_empty(),
        "{} bytes left at the end of input",
        buf.len()
    );
    out
}

fn item_bytes(item: &Incoming) -> usize {
    match item {
        Incoming::Payload(p) => p.len(),
        Incoming::Fields(f) => f.iter().map(Bytes::len).sum(),
        Incoming::Bad(_) => 0,
    }
}

/// Asserts that two decodings of one stream gave the same items, the sizes
/// of skipped frames aside (a size only goes to the log, and it may depend
/// on where reads ended); the message is short (no 8 KiB payloads).
fn same_items(a: &[Incoming], b: &[Incoming], how: impl Fn() -> String) {
    let same = |x: &Incoming, y: &Incoming| match (x, y) {
        (Incoming::Bad(FrameProblem::Oversized(_)), Incoming::Bad(FrameProblem::Oversized(_))) => {
            true
        }
        _ => x == y,
    };
    let short = |i: Option<&Incoming>| match i {
        Some(Incoming::Payload(p)) => format!("payload of {} bytes", p.len()),
        Some(Incoming::Fields(f)) => format!(
            "fields of {:?} bytes",
            f.iter().map(Bytes::len).collect::<Vec<_>>()
        ),
        Some(Incoming::Bad(p)) => format!("{p:?}"),
        None => "nothing".into(),
    };
    let differs = |i: &usize| !matches!((a.get(*i), b.get(*i)), (Some(x), Some(y)) if same(x, y));
    if let Some(i) = (0..a.len().max(b.len())).find(differs) {
        panic!(
            "{} decode differently from one read: item {i} is {} instead of {}",
            how(),
            short(b.get(i)),
            short(a.get(i))
        );
    }
}

fn check_item(proto: Proto, item: &Incoming) {
    match (proto, item) {
        (Proto::Saslauthd, Incoming::Fields(f)) => {
            assert_eq!(f.len(), FIELDS);
            assert!(f.iter().all(|x| x.len() <= MAX_FIELD));
        }
        (Proto::Saslauthd, Incoming::Payload(_)) => panic!("saslauthd yielded a payload"),
        (_, Incoming::Fields(_)) => panic!("{proto:?} yielded fields"),
        (_, Incoming::Payload(p)) => {
            assert!(p.len() <= MAX_REQUEST, "payload of {} bytes", p.len());
            if proto != Proto::Ejabberd {
                assert!(!p.contains(&b'\n'), "a line with a newline");
            }
        }
        (_, Incoming::Bad(problem)) => {
            if let FrameProblem::Oversized(n) = problem {
                let limit = if proto == Proto::Saslauthd {
                    MAX_FIELD
                } else {
                    MAX_REQUEST
                };
                assert!(*n > limit, "{n} bytes called oversized");
            }
        }
    }
}

/// A yielded request, framed again, decodes to itself.
fn round_trip(proto: Proto, item: &Incoming) {
    let framed: Vec<u8> = match (proto, item) {
        (Proto::Ejabberd, Incoming::Payload(p)) => {
            let mut v = u16::try_from(p.len())
                .expect("checked against MAX_REQUEST")
                .to_be_bytes()
                .to_vec();
            v.extend_from_slice(p);
            v
        }
        (Proto::Generic | Proto::Postfix, Incoming::Payload(p)) => {
            if p.ends_with(b"\r") {
                return; // cannot be written as one line
            }
            [&p[..], b"\n"].concat()
        }
        (Proto::Saslauthd, Incoming::Fields(f)) => f
            .iter()
            .flat_map(|x| {
                let mut v = (x.len() as u16).to_be_bytes().to_vec();
                v.extend_from_slice(x);
                v
            })
            .collect(),
        _ => return,
    };
    let again = decode_stream(proto, &framed, &[framed.len().max(1)]);
    assert_eq!(
        again,
        std::slice::from_ref(item),
        "{proto:?}: re-framed request"
    );
}

/// What a protocol's replies look like to its client: the framing's own rules.
fn replies_decode(proto: Proto) {
    for reply in [Reply::Yes, Reply::No, Reply::TempFail] {
        let mut out = BytesMut::new();
        match proto {
            Proto::Ejabberd => {
                EjabberdCodec::default()
                    .encode(reply.clone(), &mut out)
                    .expect("encodes");
                let value = match reply {
                    Reply::Yes => 1,
                    Reply::No | Reply::Roster(_) | Reply::Hello { .. } | Reply::Departed(_) => 0,
                    Reply::TempFail => 2,
                };
                let items = decode_stream(proto, &out, &[out.len()]);
                assert_eq!(items, [Incoming::Payload(Bytes::from(vec![0, value]))]);
            }
            Proto::Generic => {
                LineCodec::default()
                    .encode(reply.clone(), &mut out)
                    .expect("encodes");
                let want: &[u8] = if reply == Reply::Yes { b"1\n" } else { b"0\n" };
                assert_eq!(&out[..], want);
            }
            Proto::Postfix => {
                PostfixCodec::default()
                    .encode(reply.clone(), &mut out)
                    .expect("encodes");
                assert!(out.ends_with(b"\n") && out.iter().filter(|b| **b == b'\n').count() == 1);
                let code = match reply {
                    Reply::Yes => b"200 ",
                    Reply::No | Reply::Roster(_) | Reply::Hello { .. } | Reply::Departed(_) => {
                        b"500 "
                    }
                    Reply::TempFail => b"400 ",
                };
                assert!(out.starts_with(code));
            }
            Proto::Saslauthd => {
                SaslauthdCodec::default()
                    .encode(reply.clone(), &mut out)
                    .expect("encodes");
                let len = usize::from(u16::from_be_bytes([out[0], out[1]]));
                assert_eq!(len, out.len() - 2);
                assert_eq!(out[2..].starts_with(b"OK"), reply == Reply::Yes);
            }
        }
    }
}

fn percent_encode_all(s: &str) -> Vec<u8> {
    let mut out = b"get ".to_vec();
    for b in s.bytes() {
        out.extend_from_slice(format!("%{b:02X}").as_bytes());
    }
    out
}

fn parse_request(proto: Proto, item: &Incoming) {
    if matches!(item, Incoming::Bad(_)) {
        return;
    }
    // Each protocol's own parse, as serving a connection calls it.
    let frame = item.clone();
    let parsed = match proto {
        Proto::Ejabberd => EjabberdCodec::default().parse(frame),
        Proto::Generic => LineCodec::default().parse(frame),
        Proto::Postfix => PostfixCodec::default().parse(frame),
        Proto::Saslauthd => SaslauthdCodec::default().parse(frame),
    };
    let req = match parsed {
        Ok(r) => r,
        Err(e) => {
            cloudauth_core::fuzzing::assert_printable("request error", &e.to_string());
            return;
        }
    };
    // What reaches the log: never the password (user and domain are
    // escaped by the log itself).
    let shown = format!("{req:?}");
    match &req {
        Request::Auth {
            user,
            domain,
            password,
            client,
        } => {
            match client {
                None => assert_eq!(shown, format!("auth({user}@{domain})")),
                Some(ip) => {
                    assert_eq!(shown, format!("auth({user}@{domain} from {ip})"));
                    assert!(matches!(proto, Proto::Ejabberd | Proto::Generic));
                    let addr = match ip {
                        std::net::IpAddr::V4(v4) => v4.to_string(),
                        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    };
                    let again = request::parse(
                        format!("authfrom:{addr}:{user}:{domain}:{password}").as_bytes(),
                    );
                    assert_eq!(
                        again.as_ref(),
                        Ok(&req),
                        "{proto:?} authfrom written out again"
                    );
                    return;
                }
            }
            check_jid(user, domain);
            let again = match proto {
                Proto::Saslauthd => {
                    assert!(!user.is_empty() && !domain.is_empty());
                    let login = format!("{user}@{domain}");
                    if domain.contains('@') {
                        return;
                    }
                    let fields: Vec<Bytes> = [login.as_str(), password, "imap", ""]
                        .iter()
                        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                        .collect();
                    request::parse_saslauthd(&fields)
                }
                _ => {
                    assert!(!user.contains(':') && !domain.contains(':'));
                    request::parse(format!("auth:{user}:{domain}:{password}").as_bytes())
                }
            };
            assert_eq!(again.as_ref(), Ok(&req), "{proto:?} auth written out again");
        }
        Request::IsUser { user, domain } => {
            check_jid(user, domain);
            let again = match proto {
                Proto::Postfix => {
                    assert!(!user.is_empty() && !domain.is_empty() && !domain.contains('@'));
                    request::parse_postfix(&percent_encode_all(&format!("{user}@{domain}")))
                }
                _ => {
                    assert!(!user.contains(':') && !domain.contains(':'));
                    request::parse(format!("isuser:{user}:{domain}").as_bytes())
                }
            };
            assert_eq!(
                again.as_ref(),
                Ok(&req),
                "{proto:?} isuser written out again"
            );
        }
        Request::Roster {
            user,
            domain,
            known,
        } => {
            assert_eq!(shown, format!("roster({user}@{domain})"));
            check_jid(user, domain);
            assert!(!user.contains(':') && !domain.contains(':'));
            let v = known.as_ref().map_or("-".to_string(), ToString::to_string);
            let again = request::parse(format!("roster:{user}:{domain}:{v}").as_bytes());
            assert_eq!(
                again.as_ref(),
                Ok(&req),
                "{proto:?} roster written out again"
            );
        }
        Request::Quit => assert!(matches!(proto, Proto::Ejabberd | Proto::Generic)),
        Request::Hello { .. } => assert!(matches!(proto, Proto::Ejabberd | Proto::Generic)),
        Request::Departed { domain, since } => {
            assert_eq!(shown, format!("departed({domain})"));
            assert!(!domain.is_empty() && !domain.contains(':'));
            let v = since.map_or("-".to_string(), |v| v.to_string());
            let again = request::parse(format!("departed:{domain}:{v}").as_bytes());
            assert_eq!(
                again.as_ref(),
                Ok(&req),
                "{proto:?} departed written out again"
            );
        }
        Request::Unsupported { command } => {
            cloudauth_core::fuzzing::assert_printable("unsupported command", command);
        }
    }
}

/// The canonical JID of a request is canonical: its domain mapped with
/// UTS 46 (`check_canonical_domain`), no character a JID cannot have, and
/// the same when canonicalised again.
fn check_jid(user: &str, domain: &str) {
    let Ok((u, d)) = jid::canonical(user, domain) else {
        return;
    };
    assert!(!d.ends_with('.') && !d.is_empty());
    assert!(!u.contains('@'));
    cloudauth_core::fuzzing::check_canonical_domain(&d);
    let again = jid::canonical(&u, &d).expect("a canonical JID is a JID");
    assert_eq!(
        (&again.0, &again.1),
        (&u, &d),
        "canonical form is not stable"
    );
}

// ---------------------------------------------------------------- xcauth.conf

/// The `xcauth_conf` target: the xcauth.conf reader (configargparse's
/// syntax) and the settings it gives.
///
/// Invariants: errors name an existing line and never its text; keys are
/// normalised option names; each value, written back as `key = "value"`,
/// reads back the same; resolving the settings never shows a secret.
pub fn xcauth_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    let settings = match config_file::parse(text) {
        Ok(s) => s,
        Err(e) => {
            assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
            assert_eq!(
                e.to_string(),
                format!(
                    "line {}: cannot read it as key=value, key: value, key value or a flag name",
                    e.line
                )
            );
            return;
        }
    };
    let mut layer = Layer::new(Origin::ConfigFile("xcauth.conf".into()));
    for (key, (value, line)) in &settings {
        assert!((1..=lines).contains(line));
        assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(&schema::normalise_key(key), key);
        assert!(!value.contains('\n'));
        if !value.contains('\r') {
            let again = config_file::parse(&format!("{key} = \"{value}\"\n"))
                .expect("a written-out setting reads");
            assert_eq!(again.get(key).map(|(v, _)| v), Some(value), "{key}");
        }
        layer.set(key.as_str(), value.as_str());
    }
    cloudauth_core::fuzzing::resolve_file_settings(&layer);
}
