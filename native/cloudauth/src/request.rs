//! Requests of the ejabberd/generic line protocols: `cmd:user:domain[:password]`.
//!
//! Split on the first three colons only, so a password may contain `:`.
//!
//! The generic protocol also has `authfrom:ADDR:USER:DOMAIN:PASSWORD`
//! (once `hello:client-address` was granted): ADDR is the client's IPv4
//! address (`192.0.2.7`) or its IPv6 address in brackets (`[2001:db8::7]`,
//! as in URLs, since it contains colons); the rest is `auth`'s.

use std::net::IpAddr;

use cloudauth_core::roster::{BadVersion, RosterVersion};
use thiserror::Error;

/// A request the XMPP server sent, read from one frame.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// `auth:USER:DOMAIN:PASSWORD`, or `authfrom:ADDR:USER:DOMAIN:PASSWORD`.
    Auth {
        /// Local part.
        user: String,
        /// XMPP domain.
        domain: String,
        /// Password or token; never logged.
        password: String,
        /// The client's address (`authfrom`); `None` for `auth`.
        client: Option<IpAddr>,
    },
    /// `isuser:USER:DOMAIN`.
    IsUser {
        /// Local part.
        user: String,
        /// XMPP domain.
        domain: String,
    },
    /// `roster:USER:DOMAIN:VERSION`: what changed in the user's shared
    /// roster since `VERSION`, the one the client holds (`-` for none).
    Roster {
        /// Local part.
        user: String,
        /// XMPP domain.
        domain: String,
        /// The version the client holds; `None` for none.
        known: Option<RosterVersion>,
    },
    /// `hello:FEATURE,...` (generic protocol): the features the client
    /// speaks; unknown ones are ignored.
    Hello {
        /// The client asks for a third answer, "cannot tell" (`tristate`).
        tristate: bool,
        /// The client asks to send its users' addresses (`client-address`):
        /// `authfrom` requests.
        client_address: bool,
        /// The client polls for departed accounts (`departed`).
        departed: bool,
    },
    /// `departed:DOMAIN:VERSION` (generic protocol): the accounts of DOMAIN
    /// the sweep found gone since VERSION (`-`: none, only the version now).
    Departed {
        /// XMPP domain.
        domain: String,
        /// The version the client holds.
        since: Option<u64>,
    },
    /// `quit` / `exit`: end the session.
    Quit,
    /// A command this program refuses (`setpass`, `tryregister`, `removeuser`, …).
    Unsupported {
        /// The command word, shortened for the log.
        command: String,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written: a password must never reach a log line.
        match self {
            Request::Auth {
                user,
                domain,
                client: None,
                ..
            } => write!(f, "auth({user}@{domain})"),
            Request::Auth {
                user,
                domain,
                client: Some(ip),
                ..
            } => write!(f, "auth({user}@{domain} from {ip})"),
            Request::IsUser { user, domain } => write!(f, "isuser({user}@{domain})"),
            Request::Roster { user, domain, .. } => write!(f, "roster({user}@{domain})"),
            Request::Hello {
                tristate,
                client_address,
                departed,
            } => write!(
                f,
                "hello(tristate: {tristate}, client-address: {client_address}, departed: {departed})"
            ),
            Request::Departed { domain, .. } => write!(f, "departed({domain})"),
            Request::Quit => f.write_str("quit"),
            Request::Unsupported { command } => write!(f, "unsupported({command})"),
        }
    }
}

/// Why a frame is not a request. Carries no request content, so it is safe to log.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RequestError {
    /// The frame had no bytes.
    #[error("empty request")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("request is not valid UTF-8 ({len} bytes)")]
    NotUtf8 {
        /// Frame length.
        len: usize,
    },
    /// A NUL byte, which no JID or password may contain here.
    #[error("request contains a NUL byte")]
    NulByte,
    /// Too few (or too many) colon-separated fields for the command.
    #[error("malformed {command} request: expected {expected}")]
    Fields {
        /// The command word.
        command: &'static str,
        /// What the command needs.
        expected: &'static str,
    },
    /// An `authfrom` request whose address is not an IP address literal.
    #[error("malformed authfrom request: the client address is not an IPv4 address or a bracketed IPv6 address")]
    ClientAddress,
    /// A roster request whose version is not one cloudauth gives out.
    #[error("malformed roster request: {0}")]
    RosterVersion(#[from] BadVersion),
}

/// Commands answered "no" without any check (registration and changes
/// belong to the cloud, certificates are not supported).
const REFUSED: [&str; 5] = [
    "setpass",
    "tryregister",
    "removeuser",
    "removeuser3",
    "certauth",
];

fn utf8(b: &[u8]) -> Result<&str, RequestError> {
    if b.contains(&0) {
        return Err(RequestError::NulByte);
    }
    std::str::from_utf8(b).map_err(|_| RequestError::NotUtf8 { len: b.len() })
}

/// Splits `user@domain` at the last `@`.
fn split_jid(jid: &str) -> Option<(&str, &str)> {
    let (u, d) = jid.rsplit_once('@')?;
    (!u.is_empty() && !d.is_empty()).then_some((u, d))
}

fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Reads a Postfix tcp_table line: `get user@domain` → an `isuser` request.
pub fn parse_postfix(line: &[u8]) -> Result<Request, RequestError> {
    if line.is_empty() {
        return Err(RequestError::Empty);
    }
    let Some(key) = line.strip_prefix(b"get ") else {
        // Not even the first word is logged: it could be a password typed into the wrong place.
        let verb = if line.starts_with(b"put ") {
            "put"
        } else {
            "a request"
        };
        return Ok(Request::Unsupported {
            command: format!(
                "postfix {verb} of {} bytes (only get is supported)",
                line.len()
            ),
        });
    };
    let malformed = RequestError::Fields {
        command: "get",
        expected: "get USER@DOMAIN (%XX-encoded)",
    };
    let key = percent_decode(key).ok_or(malformed.clone())?;
    let key = utf8(&key)?;
    let (user, domain) = split_jid(key).ok_or(malformed)?;
    Ok(Request::IsUser {
        user: user.to_string(),
        domain: domain.to_string(),
    })
}

/// Reads saslauthd fields (login, password, service, realm) → an `auth`
/// request. A domain in the login (`user@domain`) wins over the realm.
pub fn parse_saslauthd(fields: &[bytes::Bytes]) -> Result<Request, RequestError> {
    let malformed = RequestError::Fields {
        command: "saslauthd",
        expected: "login, password, service, realm",
    };
    let [login, password, _service, realm] = fields else {
        return Err(malformed);
    };
    let (login, password, realm) = (utf8(login)?, utf8(password)?, utf8(realm)?);
    let (user, domain) = match split_jid(login) {
        Some((u, d)) => (u, d),
        None if !login.is_empty() && !realm.is_empty() && !login.contains('@') => (login, realm),
        None => {
            return Err(RequestError::Fields {
                command: "saslauthd",
                expected: "login user@domain, or a realm",
            })
        }
    };
    Ok(Request::Auth {
        user: user.to_string(),
        domain: domain.to_string(),
        password: password.to_string(),
        client: None,
    })
}

/// Splits `ADDR:REST` of an `authfrom` request: `[IPv6]:REST` or `IPv4:REST`.
fn split_client(text: &str) -> Result<(IpAddr, &str), RequestError> {
    let (addr, rest) = match text.strip_prefix('[') {
        Some(inner) => {
            let (addr, rest) = inner.split_once(']').ok_or(RequestError::ClientAddress)?;
            let rest = rest.strip_prefix(':').ok_or(RequestError::ClientAddress)?;
            let ip: std::net::Ipv6Addr = addr.parse().map_err(|_| RequestError::ClientAddress)?;
            (IpAddr::V6(ip), rest)
        }
        None => {
            let (addr, rest) = text.split_once(':').ok_or(RequestError::ClientAddress)?;
            let ip: std::net::Ipv4Addr = addr.parse().map_err(|_| RequestError::ClientAddress)?;
            (IpAddr::V4(ip), rest)
        }
    };
    Ok((addr, rest))
}

/// Reads `authfrom:ADDR:USER:DOMAIN:PASSWORD` (after `authfrom:`).
fn parse_authfrom(text: &str) -> Result<Request, RequestError> {
    let (client, rest) = split_client(text)?;
    let mut parts = rest.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(u), Some(d), Some(p)) => Ok(Request::Auth {
            user: u.to_string(),
            domain: d.to_string(),
            password: p.to_string(),
            client: Some(client),
        }),
        _ => Err(RequestError::Fields {
            command: "authfrom",
            expected: "authfrom:ADDR:USER:DOMAIN:PASSWORD",
        }),
    }
}

/// Reads one frame's payload as a request.
pub fn parse(payload: &[u8]) -> Result<Request, RequestError> {
    if payload.is_empty() {
        return Err(RequestError::Empty);
    }
    if payload.contains(&0) {
        return Err(RequestError::NulByte);
    }
    let text =
        std::str::from_utf8(payload).map_err(|_| RequestError::NotUtf8 { len: payload.len() })?;
    if text == "quit" || text == "exit" {
        return Ok(Request::Quit);
    }
    if let Some(features) = text.strip_prefix("hello:") {
        let asks = |name: &str| features.split(',').any(|f| f.trim() == name);
        return Ok(Request::Hello {
            tristate: asks("tristate"),
            client_address: asks("client-address"),
            departed: asks("departed"),
        });
    }
    if let Some(rest) = text.strip_prefix("authfrom:") {
        return parse_authfrom(rest);
    }
    let mut parts = text.splitn(4, ':');
    let command = parts.next().unwrap_or_default();
    let user = parts.next();
    let domain = parts.next();
    let rest = parts.next();
    match command {
        "auth" => match (user, domain, rest) {
            (Some(u), Some(d), Some(p)) => Ok(Request::Auth {
                user: u.to_string(),
                domain: d.to_string(),
                password: p.to_string(),
                client: None,
            }),
            _ => Err(RequestError::Fields {
                command: "auth",
                expected: "auth:USER:DOMAIN:PASSWORD",
            }),
        },
        "isuser" => match (user, domain, rest) {
            (Some(u), Some(d), None) => Ok(Request::IsUser {
                user: u.to_string(),
                domain: d.to_string(),
            }),
            _ => Err(RequestError::Fields {
                command: "isuser",
                expected: "isuser:USER:DOMAIN",
            }),
        },
        "roster" => match (user, domain, rest) {
            (Some(u), Some(d), Some(v)) if !u.is_empty() && !d.is_empty() => Ok(Request::Roster {
                user: u.to_string(),
                domain: d.to_string(),
                known: match v {
                    "-" => None,
                    v => Some(v.parse()?),
                },
            }),
            _ => Err(RequestError::Fields {
                command: "roster",
                expected: "roster:USER:DOMAIN:VERSION",
            }),
        },
        "departed" => match (user, domain, rest) {
            (Some(d), Some(v), None) if !d.is_empty() => Ok(Request::Departed {
                domain: d.to_string(),
                since: match v {
                    "-" => None,
                    v => Some(v.parse().map_err(|_| RequestError::Fields {
                        command: "departed",
                        expected: "departed:DOMAIN:VERSION (a number or -)",
                    })?),
                },
            }),
            _ => Err(RequestError::Fields {
                command: "departed",
                expected: "departed:DOMAIN:VERSION",
            }),
        },
        other => {
            let known = REFUSED.iter().find(|c| **c == other);
            // An unknown word is not logged: it could be a password sent in the wrong field.
            let command = match known {
                Some(c) => (*c).to_string(),
                None => format!("unknown command of {} bytes", other.len()),
            };
            Ok(Request::Unsupported { command })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudauth_core::roster::BUCKETS;

    fn auth(u: &str, d: &str, p: &str) -> Request {
        Request::Auth {
            user: u.into(),
            domain: d.into(),
            password: p.into(),
            client: None,
        }
    }

    fn authfrom(ip: &str, u: &str, d: &str, p: &str) -> Request {
        Request::Auth {
            user: u.into(),
            domain: d.into(),
            password: p.into(),
            client: Some(ip.parse().unwrap()),
        }
    }

    #[test]
    fn authfrom_carries_ipv4_and_bracketed_ipv6_addresses() {
        assert_eq!(
            parse(b"authfrom:192.0.2.7:bob:localhost:se:cret"),
            Ok(authfrom("192.0.2.7", "bob", "localhost", "se:cret"))
        );
        assert_eq!(
            parse(b"authfrom:[2001:db8::7]:bob:localhost:pw"),
            Ok(authfrom("2001:db8::7", "bob", "localhost", "pw"))
        );
        assert_eq!(
            parse(b"authfrom:[::ffff:192.0.2.7]:bob:localhost:"),
            Ok(authfrom("::ffff:192.0.2.7", "bob", "localhost", ""))
        );
        for bad in [
            &b"authfrom:2001:db8::7:bob:localhost:pw"[..],
            b"authfrom:[2001:db8::7:bob:localhost:pw",
            b"authfrom:[2001:db8::7]bob:localhost:pw",
            b"authfrom:[192.0.2.7]:bob:localhost:pw",
            b"authfrom:192.0.2.300:bob:localhost:pw",
            b"authfrom:host.example:bob:localhost:pw",
            b"authfrom::bob:localhost:pw",
            b"authfrom:192.0.2.7",
        ] {
            assert_eq!(
                parse(bad),
                Err(RequestError::ClientAddress),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &b"authfrom:192.0.2.7:bob"[..],
            b"authfrom:[::1]:bob:localhost",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(RequestError::Fields {
                        command: "authfrom",
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // The address is logged, the password never.
        let r = authfrom("2001:db8::7", "a", "b", "sekrit");
        let shown = format!("{r:?}");
        assert!(
            shown.contains("2001:db8::7") && !shown.contains("sekrit"),
            "{shown}"
        );
    }

    #[test]
    fn auth_splits_on_first_three_colons() {
        assert_eq!(
            parse(b"auth:bob:localhost:secret"),
            Ok(auth("bob", "localhost", "secret"))
        );
        assert_eq!(
            parse(b"auth:bob:localhost:a:b:c"),
            Ok(auth("bob", "localhost", "a:b:c"))
        );
        assert_eq!(
            parse(b"auth:bob:localhost:"),
            Ok(auth("bob", "localhost", ""))
        );
        assert_eq!(
            parse("auth:jürgen:例え.jp:pä:ss".as_bytes()),
            Ok(auth("jürgen", "例え.jp", "pä:ss"))
        );
    }

    #[test]
    fn isuser() {
        assert_eq!(
            parse(b"isuser:bob:localhost"),
            Ok(Request::IsUser {
                user: "bob".into(),
                domain: "localhost".into()
            })
        );
        assert!(matches!(
            parse(b"isuser:bob"),
            Err(RequestError::Fields { .. })
        ));
        assert!(matches!(
            parse(b"isuser:bob:localhost:x"),
            Err(RequestError::Fields { .. })
        ));
    }

    #[test]
    fn missing_fields() {
        for bad in [&b"auth"[..], b"auth:bob", b"auth:bob:localhost"] {
            assert!(matches!(
                parse(bad),
                Err(RequestError::Fields {
                    command: "auth",
                    ..
                })
            ));
        }
    }

    #[test]
    fn hello_lists_features_and_ignores_unknown_ones() {
        for (line, tristate, client_address, departed) in [
            ("hello:tristate", true, false, false),
            ("hello:client-address, tristate", true, true, false),
            ("hello:tristate,client-address", true, true, false),
            ("hello:client-address", false, true, false),
            ("hello:tristate,departed", true, false, true),
            ("hello:departed", false, false, true),
            ("hello:", false, false, false),
            (
                "hello:tristatex,future,client-addresses",
                false,
                false,
                false,
            ),
        ] {
            assert_eq!(
                parse(line.as_bytes()),
                Ok(Request::Hello {
                    tristate,
                    client_address,
                    departed,
                }),
                "{line}"
            );
        }
        // Only `hello:` with its colon: a bare word stays an unknown command.
        assert!(matches!(parse(b"hello"), Ok(Request::Unsupported { .. })));
    }

    #[test]
    fn departed_takes_a_domain_and_a_version() {
        assert_eq!(
            parse(b"departed:example.org:-"),
            Ok(Request::Departed {
                domain: "example.org".into(),
                since: None
            })
        );
        assert_eq!(
            parse(b"departed:example.org:1765000000123"),
            Ok(Request::Departed {
                domain: "example.org".into(),
                since: Some(1_765_000_000_123)
            })
        );
        for bad in [
            &b"departed:example.org"[..],
            b"departed::-",
            b"departed:x:abc",
            b"departed:x:1:2",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(RequestError::Fields {
                        command: "departed",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refused_and_unknown_commands() {
        for cmd in [
            "setpass:a:b:c",
            "tryregister:a:b:c",
            "removeuser:a:b",
            "removeuser3:a:b:c",
            "certauth:a:b",
        ] {
            assert!(
                matches!(parse(cmd.as_bytes()), Ok(Request::Unsupported { .. })),
                "{cmd}"
            );
        }
        let Ok(Request::Unsupported { command }) = parse(b"Sup3rSecret:a:b") else {
            panic!("not unsupported")
        };
        assert!(!command.contains("Sup3rSecret"), "{command}");
        assert!(command.contains("11 bytes"), "{command}");
        let Ok(Request::Unsupported { command }) = parse_postfix(b"Sup3rSecret") else {
            panic!("not unsupported")
        };
        assert!(!command.contains("Sup3rSecret"), "{command}");
    }

    #[test]
    fn roster_with_and_without_version() {
        assert_eq!(
            parse(b"roster:alice:localhost:-"),
            Ok(Request::Roster {
                user: "alice".into(),
                domain: "localhost".into(),
                known: None
            })
        );
        let version = format!("1.{}", ["0123456789abcdef"; BUCKETS].join("."));
        assert_eq!(
            parse(format!("roster:alice:localhost:{version}").as_bytes()),
            Ok(Request::Roster {
                user: "alice".into(),
                domain: "localhost".into(),
                known: Some(version.parse().unwrap())
            })
        );
        for bad in [
            &b"roster:alice:localhost:"[..],
            b"roster:alice:localhost:ab12",
        ] {
            assert_eq!(
                parse(bad),
                Err(RequestError::RosterVersion(BadVersion)),
                "{bad:?}"
            );
        }
        for bad in [
            &b"roster:alice:localhost"[..],
            b"roster:alice",
            b"roster::d:-",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(RequestError::Fields {
                        command: "roster",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quit_and_exit() {
        assert_eq!(parse(b"quit"), Ok(Request::Quit));
        assert_eq!(parse(b"exit"), Ok(Request::Quit));
    }

    #[test]
    fn bad_bytes() {
        assert_eq!(parse(b""), Err(RequestError::Empty));
        assert_eq!(
            parse(b"auth:a:b:\xff\xfe"),
            Err(RequestError::NotUtf8 { len: 11 })
        );
        assert_eq!(parse(b"auth:a\0:b:c"), Err(RequestError::NulByte));
    }

    #[test]
    fn postfix_get() {
        assert_eq!(
            parse_postfix(b"get alice@example.org"),
            Ok(Request::IsUser {
                user: "alice".into(),
                domain: "example.org".into()
            })
        );
        assert_eq!(
            parse_postfix(b"get j%C3%BCrgen%40xn--mnchen-3ya.de"),
            Ok(Request::IsUser {
                user: "jürgen".into(),
                domain: "xn--mnchen-3ya.de".into()
            })
        );
        assert!(matches!(
            parse_postfix(b"put a@b x"),
            Ok(Request::Unsupported { .. })
        ));
        for bad in [
            &b"get alice"[..],
            b"get @b",
            b"get a@",
            b"get a%4@b",
            b"get a%ZZ@b",
        ] {
            assert!(
                matches!(parse_postfix(bad), Err(RequestError::Fields { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_postfix(b"get a%ff@b"),
            Err(RequestError::NotUtf8 { len: 4 })
        );
        assert_eq!(parse_postfix(b"get a%00@b"), Err(RequestError::NulByte));
    }

    #[test]
    fn saslauthd_fields() {
        let f = |v: [&str; 4]| {
            v.iter()
                .map(|s| bytes::Bytes::copy_from_slice(s.as_bytes()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parse_saslauthd(&f(["alice", "pw", "smtp", "example.org"])),
            Ok(auth("alice", "example.org", "pw"))
        );
        assert_eq!(
            parse_saslauthd(&f(["alice@example.org", "p:w", "imap", ""])),
            Ok(auth("alice", "example.org", "p:w"))
        );
        assert_eq!(
            parse_saslauthd(&f(["alice@a.org", "pw", "imap", "b.org"])),
            Ok(auth("alice", "a.org", "pw"))
        );
        assert!(parse_saslauthd(&f(["alice", "pw", "smtp", ""])).is_err());
        assert!(parse_saslauthd(&f(["", "pw", "smtp", "r"])).is_err());
        assert!(parse_saslauthd(&f(["a", "b", "c", "d"])[..3]).is_err());
        let bad = vec![
            bytes::Bytes::from_static(b"\xff"),
            "pw".into(),
            "s".into(),
            "r".into(),
        ];
        assert!(parse_saslauthd(&bad).is_err());
    }

    #[test]
    fn debug_hides_password() {
        let r = auth("a", "b", "sekrit");
        assert!(!format!("{r:?}").contains("sekrit"));
    }
}
