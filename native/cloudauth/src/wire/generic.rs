//! The line protocol (`-t generic`, alias `prosody`): one request per line,
//! replies `1` or `0` on a line of their own.
//!
//! A client may ask first for a third answer, "cannot tell", with
//! `hello:tristate`: the reply `hello:tristate` says that from then on this
//! connection answers `?` where it would have said `0` for trouble with the
//! backend (`hello:` alone: not spoken). Clients that never ask get `1`/`0`
//! as before; a cloudauth that predates `hello` answers it `0` (an unknown
//! command), which a client takes as "not spoken".
//!
//! Features are comma-separated, and the reply names those granted:
//! `hello:tristate,client-address` is answered `hello:tristate,client-address`
//! by a cloudauth that speaks both. `client-address` lets the client send
//! `authfrom:ADDR:USER:DOMAIN:PASSWORD`, ADDR being the user's client's
//! address, IPv4 as is or IPv6 in brackets (`[2001:db8::7]`); a bad
//! address is bad input, answered `0`.
//!
//! A roster reply is `=` (unchanged), `!` (unknown: keep yours), or a header
//! line `+<TAB>LINES<TAB>OWN_BUCKET<TAB>VERSION<TAB>OWN_NAME` followed by
//! LINES lines: for each changed bucket `#<TAB>BUCKET`, then its contacts,
//! one line each, `JID<TAB>NAME<TAB>GROUP...`. VERSION (at most 546 bytes)
//! is what the client sends back once it applied every bucket. Every line is bounded by
//! [`MAX_ROSTER_FIELD`] and [`MAX_ROSTER_GROUPS`], so that no line grows
//! with the size of a group.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::lines::Lines;
use super::{Answers, BadInput, Incoming, Reply, RosterReply, WireEntry, WireProtocol};
use crate::request::{self, Request};

/// Longest name, JID or group label in a roster line, in bytes; longer ones
/// are cut at a character boundary.
pub const MAX_ROSTER_FIELD: usize = 256;

/// Most group labels on one roster line; further ones are left out.
pub const MAX_ROSTER_GROUPS: usize = 32;

/// `text` as one roster field: control characters (the separators among
/// them) become spaces, and it is cut to [`MAX_ROSTER_FIELD`] bytes.
fn push_field(dst: &mut BytesMut, text: &str) {
    let mut used = 0;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if used + c.len_utf8() > MAX_ROSTER_FIELD {
            break;
        }
        used += c.len_utf8();
        let mut b = [0; 4];
        dst.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }
}

fn encode_roster(reply: &RosterReply, dst: &mut BytesMut) {
    match reply {
        RosterReply::Unchanged => dst.extend_from_slice(b"=\n"),
        RosterReply::Unknown => dst.extend_from_slice(b"!\n"),
        RosterReply::Changes {
            own_bucket,
            own_name,
            version,
            buckets,
        } => {
            let lines: usize = buckets.iter().map(|b| 1 + b.items.len()).sum();
            dst.extend_from_slice(format!("+\t{lines}\t{own_bucket}\t{version}\t").as_bytes());
            push_field(dst, own_name);
            dst.extend_from_slice(b"\n");
            for b in buckets {
                dst.extend_from_slice(format!("#\t{}\n", b.bucket).as_bytes());
                for item in &b.items {
                    push_field(dst, &item.jid.to_string());
                    dst.extend_from_slice(b"\t");
                    push_field(dst, &item.name);
                    for g in item.groups.iter().take(MAX_ROSTER_GROUPS) {
                        dst.extend_from_slice(b"\t");
                        push_field(dst, g);
                    }
                    dst.extend_from_slice(b"\n");
                }
            }
        }
    }
}

/// Codec for `-t generic`.
#[derive(Debug, Default)]
pub struct LineCodec {
    lines: Lines,
    /// "Cannot tell" is answered `?` (negotiated by `hello:tristate`);
    /// set when the reply saying so is written, so that every answer
    /// before it keeps the old meaning.
    tristate: bool,
}

impl Decoder for LineCodec {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        self.lines.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        self.lines.decode_eof(src)
    }
}

/// The generic protocol in the registry.
pub static ENTRY: WireEntry = WireEntry {
    name: "generic",
    aliases: &["prosody"],
    answers: Answers {
        roster: true,
        hello: true,
        departed: true,
    },
    codec: || Box::new(LineCodec::default()),
};

impl WireProtocol for LineCodec {
    fn parse(&self, frame: Incoming) -> Result<Request, BadInput> {
        super::parse_payload(frame, ENTRY.name, request::parse)
    }
}

impl Encoder<Reply> for LineCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), io::Error> {
        match item {
            Reply::Yes => dst.extend_from_slice(b"1\n"),
            Reply::TempFail if self.tristate => dst.extend_from_slice(b"?\n"),
            Reply::No | Reply::TempFail => dst.extend_from_slice(b"0\n"),
            Reply::Roster(r) => encode_roster(&r, dst),
            Reply::Hello {
                tristate,
                client_address,
                departed,
            } => {
                self.tristate = tristate;
                let granted: Vec<&str> = [
                    (tristate, "tristate"),
                    (client_address, "client-address"),
                    (departed, "departed"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                dst.extend_from_slice(format!("hello:{}\n", granted.join(",")).as_bytes());
            }
            Reply::Departed(None) => dst.extend_from_slice(b"!\n"),
            Reply::Departed(Some(d)) => {
                let complete = if d.complete { 1 } else { 0 };
                dst.extend_from_slice(
                    format!("+\t{}\t{}\t{complete}\n", d.jids.len(), d.version).as_bytes(),
                );
                for jid in &d.jids {
                    push_field(dst, jid);
                    dst.extend_from_slice(b"\n");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FrameProblem, MAX_REQUEST};
    use cloudauth_core::roster::{BucketChange, Jid, PersonalItem, RosterVersion, BUCKETS};

    fn roster_bytes(r: RosterReply) -> String {
        let mut out = BytesMut::new();
        LineCodec::default()
            .encode(Reply::Roster(r), &mut out)
            .unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn roster_replies_are_bounded_lines() {
        assert_eq!(roster_bytes(RosterReply::Unchanged), "=\n");
        assert_eq!(roster_bytes(RosterReply::Unknown), "!\n");
        let item = |u: &str, name: &str, groups: &[&str]| PersonalItem {
            jid: Jid::new(u, "example.org"),
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        let long = "é".repeat(300);
        let many: Vec<String> = (0..40).map(|i| format!("g{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let version: RosterVersion = format!("1.{}", ["0123456789abcdef"; BUCKETS].join("."))
            .parse()
            .unwrap();
        let text = roster_bytes(RosterReply::Changes {
            own_bucket: 5,
            own_name: "Alice\tL\nx".into(),
            version: version.clone(),
            buckets: vec![
                BucketChange {
                    bucket: 3,
                    digest: "0123456789abcdef".into(),
                    items: vec![
                        item("bob", "Bob\nBuilder", &["Staff Team", "R\teaders"]),
                        item("carol", &long, &many),
                    ],
                },
                BucketChange {
                    bucket: 9,
                    digest: String::new(),
                    items: Vec::new(),
                },
            ],
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            5,
            "a header, one line per bucket and one per contact: {text:?}"
        );
        assert_eq!(lines[0], format!("+\t4\t5\t{version}\tAlice L x"));
        assert_eq!(lines[1], "#\t3");
        assert_eq!(
            lines[2],
            "bob@example.org\tBob Builder\tR eaders\tStaff Team"
        );
        let carol: Vec<&str> = lines[3].split('\t').collect();
        assert_eq!(carol[1], "é".repeat(128), "cut at a character boundary");
        assert_eq!(carol.len(), 2 + MAX_ROSTER_GROUPS);
        assert_eq!(lines[4], "#\t9", "an emptied bucket");
    }

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<Incoming> {
        crate::wire::decode_chunks(LineCodec::default(), chunks)
    }

    #[test]
    fn lines_crlf_and_last_line_without_newline() {
        assert_eq!(
            decode_chunks(&[b"isuser:a:b\nauth:a:b:c\r\n", b"auth:x:y:z"]),
            vec![
                Incoming::Payload("isuser:a:b".into()),
                Incoming::Payload("auth:a:b:c".into()),
                Incoming::Payload("auth:x:y:z".into()),
            ]
        );
    }

    #[test]
    fn split_across_reads() {
        assert_eq!(
            decode_chunks(&[b"isu", b"ser:a", b":b\n"]),
            vec![Incoming::Payload("isuser:a:b".into())]
        );
    }

    #[test]
    fn empty_line_is_an_empty_payload() {
        assert_eq!(decode_chunks(&[b"\n"]), vec![Incoming::Payload("".into())]);
    }

    #[test]
    fn overlong_line_is_skipped_then_resyncs() {
        let long = vec![b'x'; MAX_REQUEST * 2];
        let out = decode_chunks(&[
            &long[..MAX_REQUEST],
            &long[MAX_REQUEST..],
            b"\nisuser:a:b\n",
        ]);
        assert_eq!(out.len(), 2);
        assert!(
            matches!(out[0], Incoming::Bad(FrameProblem::Oversized(n)) if n == MAX_REQUEST * 2)
        );
        assert_eq!(out[1], Incoming::Payload("isuser:a:b".into()));
    }

    #[test]
    fn a_line_at_the_limit_with_crlf_is_accepted_however_it_is_read() {
        // Found by the frames fuzz target: read up to its `\r`, a line of
        // MAX_REQUEST bytes + CRLF was skipped; read in one piece, accepted.
        let line = vec![b'x'; MAX_REQUEST];
        let whole = [&line[..], b"\r\n"].concat();
        let want = vec![Incoming::Payload(line.clone().into())];
        assert_eq!(decode_chunks(&[&whole]), want);
        assert_eq!(decode_chunks(&[&whole[..MAX_REQUEST + 1], b"\n"]), want);
        // One byte more is too long, read either way, also at the end of input.
        let long = [&line[..], b"y\r\n"].concat();
        for chunks in [
            vec![&long[..]],
            vec![&long[..MAX_REQUEST + 1], &long[MAX_REQUEST + 1..]],
        ] {
            let out = decode_chunks(&chunks);
            assert!(
                matches!(out[..], [Incoming::Bad(FrameProblem::Oversized(_))]),
                "{out:?}"
            );
        }
        let out = decode_chunks(&[&long[..MAX_REQUEST + 1]]);
        assert!(
            matches!(out[..], [Incoming::Bad(FrameProblem::Oversized(_))]),
            "{out:?}"
        );
    }

    #[test]
    fn replies() {
        let mut c = LineCodec::default();
        let mut out = BytesMut::new();
        c.encode(Reply::Yes, &mut out).unwrap();
        c.encode(Reply::No, &mut out).unwrap();
        assert_eq!(&out[..], b"1\n0\n");
    }

    #[test]
    fn departed_replies_are_a_header_and_one_jid_a_line() {
        let mut c = LineCodec::default();
        let mut out = BytesMut::new();
        c.encode(
            Reply::Hello {
                tristate: true,
                client_address: false,
                departed: true,
            },
            &mut out,
        )
        .unwrap();
        c.encode(Reply::Departed(None), &mut out).unwrap();
        c.encode(
            Reply::Departed(Some(cloudauth_core::departures::Departed {
                jids: vec!["bob@example.org".into(), "eve\n1@example.org".into()],
                version: 17,
                complete: true,
            })),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            b"hello:tristate,departed\n!\n+\t2\t17\t1\nbob@example.org\neve 1@example.org\n"
        );
    }

    #[test]
    fn cannot_tell_is_its_own_answer_only_once_negotiated() {
        let mut c = LineCodec::default();
        let mut out = BytesMut::new();
        for reply in [
            Reply::TempFail,
            Reply::Hello {
                tristate: false,
                client_address: false,
                departed: false,
            },
            Reply::TempFail,
            Reply::Hello {
                tristate: true,
                client_address: false,
                departed: false,
            },
            Reply::TempFail,
            Reply::No,
            Reply::Yes,
        ] {
            c.encode(reply, &mut out).unwrap();
        }
        assert_eq!(&out[..], b"0\nhello:\n0\nhello:tristate\n?\n0\n1\n");
        // Per connection: a new one starts without it.
        let mut out = BytesMut::new();
        LineCodec::default()
            .encode(Reply::TempFail, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"0\n");
    }

    #[test]
    fn the_hello_reply_names_the_features_granted() {
        let mut out = BytesMut::new();
        let mut c = LineCodec::default();
        for (tristate, client_address) in [(true, true), (false, true), (false, false)] {
            c.encode(
                Reply::Hello {
                    tristate,
                    client_address,
                    departed: false,
                },
                &mut out,
            )
            .unwrap();
        }
        assert_eq!(
            &out[..],
            b"hello:tristate,client-address\nhello:client-address\nhello:\n"
        );
    }

    #[test]
    fn authfrom_lines_with_ipv6_addresses_are_one_request_each() {
        assert_eq!(
            decode_chunks(&[b"authfrom:[2001:db8::7]:a:b:c\r\nauthfrom:192.0.2.7:a:b:c:d\n"]),
            vec![
                Incoming::Payload("authfrom:[2001:db8::7]:a:b:c".into()),
                Incoming::Payload("authfrom:192.0.2.7:a:b:c:d".into()),
            ]
        );
    }

    #[test]
    fn an_oversized_hello_is_bad_input_and_negotiates_nothing() {
        let long = format!(
            "hello:tristate,{}\nhello:tristate\n",
            "x".repeat(MAX_REQUEST)
        );
        let out = decode_chunks(&[long.as_bytes()]);
        assert!(
            matches!(out[..], [Incoming::Bad(FrameProblem::Oversized(_)), Incoming::Payload(ref p)] if &p[..] == b"hello:tristate"),
            "{out:?}"
        );
        // Only the written hello reply switches the encoder: the bad line's
        // failure answer leaves `0` for trouble.
        let mut c = LineCodec::default();
        let mut buf = BytesMut::new();
        c.encode(Reply::No, &mut buf).unwrap();
        c.encode(Reply::TempFail, &mut buf).unwrap();
        assert_eq!(&buf[..], b"0\n0\n");
    }
}
