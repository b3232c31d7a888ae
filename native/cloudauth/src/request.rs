//! Requests of the ejabberd/generic line protocols: `cmd:user:domain[:password]`.
//!
//! Split on the first three colons only, so a password may contain `:`.

use cloudauth_core::roster::{BadVersion, RosterVersion};
use thiserror::Error;

/// A request the XMPP server sent, read from one frame.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// `auth:USER:DOMAIN:PASSWORD`.
    Auth {
        /// Local part.
        user: String,
        /// XMPP domain.
        domain: String,
        /// Password or token; never logged.
        password: String,
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
            Request::Auth { user, domain, .. } => write!(f, "auth({user}@{domain})"),
            Request::IsUser { user, domain } => write!(f, "isuser({user}@{domain})"),
            Request::Roster { user, domain, .. } => write!(f, "roster({user}@{domain})"),
            Request::Hello { tristate } => write!(f, "hello(tristate: {tristate})"),
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
    })
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
        return Ok(Request::Hello {
            tristate: features.split(',').any(|f| f.trim() == "tristate"),
        });
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
        }
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
        for (line, tristate) in [
            ("hello:tristate", true),
            ("hello:client-address, tristate", true),
            ("hello:", false),
            ("hello:tristatex,future", false),
        ] {
            assert_eq!(
                parse(line.as_bytes()),
                Ok(Request::Hello { tristate }),
                "{line}"
            );
        }
        // Only `hello:` with its colon: a bare word stays an unknown command.
        assert!(matches!(parse(b"hello"), Ok(Request::Unsupported { .. })));
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
