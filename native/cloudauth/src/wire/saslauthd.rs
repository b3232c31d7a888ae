//! The saslauthd protocol (`-t saslauthd`): a request is four fields, each a
//! 2-byte big-endian length and its bytes (login, password, service, realm);
//! the reply is one such field, `OK …` or `NO …`.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Answers, BadInput, FrameProblem, Incoming, Reply, WireEntry, WireProtocol};
use crate::request::{self, Request};

/// Fields in one request.
pub const FIELDS: usize = 4;
/// Largest field accepted; a request with a longer one is skipped and answered `NO`.
pub const MAX_FIELD: usize = 1024;

/// Codec for `-t saslauthd`.
#[derive(Debug, Default)]
pub struct SaslauthdCodec {
    fields: Vec<Bytes>,
    /// Fields consumed for the current request, skipped ones included.
    count: usize,
    /// Bytes of an oversized field still to skip.
    skip_left: usize,
    /// Length of an oversized field seen in the current request.
    oversized: Option<usize>,
}

impl SaslauthdCodec {
    fn field_done(&mut self) -> Option<Incoming> {
        self.count += 1;
        if self.count < FIELDS {
            return None;
        }
        self.count = 0;
        let fields = std::mem::take(&mut self.fields);
        Some(match self.oversized.take() {
            Some(len) => Incoming::Bad(FrameProblem::Oversized(len)),
            None => Incoming::Fields(fields),
        })
    }
}

/// saslauthd's protocol in the registry.
pub static ENTRY: WireEntry = WireEntry {
    name: "saslauthd",
    aliases: &[],
    answers: Answers::NONE,
    codec: || Box::new(SaslauthdCodec::default()),
};

impl WireProtocol for SaslauthdCodec {
    fn parse(&self, frame: Incoming) -> Result<Request, BadInput> {
        match frame {
            Incoming::Fields(f) => Ok(request::parse_saslauthd(&f)?),
            _ => Err(BadInput::Shape(ENTRY.name)),
        }
    }
}

impl Decoder for SaslauthdCodec {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        loop {
            if self.skip_left > 0 {
                let n = self.skip_left.min(src.len());
                src.advance(n);
                self.skip_left -= n;
                if self.skip_left > 0 {
                    return Ok(None);
                }
                if let Some(item) = self.field_done() {
                    return Ok(Some(item));
                }
                continue;
            }
            if src.len() < 2 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([src[0], src[1]]));
            if len > MAX_FIELD {
                src.advance(2);
                self.skip_left = len;
                self.oversized = Some(len);
                continue;
            }
            if src.len() < 2 + len {
                src.reserve(2 + len - src.len());
                return Ok(None);
            }
            src.advance(2);
            self.fields.push(src.split_to(len).freeze());
            if let Some(item) = self.field_done() {
                return Ok(Some(item));
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        if self.count == 0 && self.skip_left == 0 && src.is_empty() {
            return Ok(None);
        }
        let got = self.count;
        *self = SaslauthdCodec::default();
        src.clear();
        Ok(Some(Incoming::Bad(FrameProblem::IncompleteFields(got))))
    }
}

impl Encoder<Reply> for SaslauthdCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), io::Error> {
        let text: &[u8] = match item {
            Reply::Yes => b"OK",
            Reply::No | Reply::Roster(_) | Reply::Hello { .. } | Reply::Departed(_) => {
                b"NO authentication failed"
            }
            Reply::TempFail => b"NO temporary failure: the cloud could not be asked",
        };
        dst.put_u16(text.len() as u16);
        dst.extend_from_slice(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(p: &[u8]) -> Vec<u8> {
        let mut v = (p.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(p);
        v
    }

    fn request(fields: [&[u8]; 4]) -> Vec<u8> {
        fields.iter().flat_map(|f| field(f)).collect()
    }

    fn decode_all(input: &[u8]) -> Vec<Incoming> {
        crate::wire::decode_chunks(SaslauthdCodec::default(), &[input])
    }

    #[test]
    fn two_requests() {
        let mut input = request([b"alice", b"pw", b"smtp", b"example.org"]);
        input.extend(request([b"bob", b"", b"imap", b""]));
        let out = decode_all(&input);
        assert_eq!(
            out,
            vec![
                Incoming::Fields(vec![
                    "alice".into(),
                    "pw".into(),
                    "smtp".into(),
                    "example.org".into()
                ]),
                Incoming::Fields(vec!["bob".into(), "".into(), "imap".into(), "".into()]),
            ]
        );
    }

    #[test]
    fn oversized_field_spoils_only_its_request() {
        let big = vec![b'x'; MAX_FIELD + 1];
        let mut input = request([b"alice", &big, b"smtp", b"example.org"]);
        input.extend(request([b"bob", b"pw", b"imap", b"r"]));
        let out = decode_all(&input);
        assert_eq!(
            out[0],
            Incoming::Bad(FrameProblem::Oversized(MAX_FIELD + 1))
        );
        assert!(matches!(&out[1], Incoming::Fields(f) if f[0] == "bob"));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn incomplete_at_eof() {
        let input = [field(b"alice"), field(b"pw")].concat();
        assert_eq!(
            decode_all(&input),
            vec![Incoming::Bad(FrameProblem::IncompleteFields(2))]
        );
        assert_eq!(
            decode_all(&[0]),
            vec![Incoming::Bad(FrameProblem::IncompleteFields(0))]
        );
    }

    #[test]
    fn replies() {
        let mut c = SaslauthdCodec::default();
        let mut out = BytesMut::new();
        c.encode(Reply::Yes, &mut out).unwrap();
        assert_eq!(&out[..], b"\x00\x02OK");
        out.clear();
        c.encode(Reply::No, &mut out).unwrap();
        assert!(out[2..].starts_with(b"NO "));
    }
}
