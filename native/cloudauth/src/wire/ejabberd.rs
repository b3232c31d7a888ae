//! ejabberd's extauth framing: a 2-byte big-endian length, then the payload;
//! replies are exactly `00 02 00 01` or `00 02 00 00`.

use std::io;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{
    Answers, BadInput, FrameProblem, Incoming, Reply, WireEntry, WireProtocol, MAX_REQUEST,
};
use crate::request::{self, Request};

/// Codec for `-t ejabberd`.
#[derive(Debug, Default)]
pub struct EjabberdCodec {
    /// Bytes of an oversized frame still to be thrown away, and its full size.
    skipping: Option<(usize, usize)>,
}

/// ejabberd's extauth in the registry.
pub static ENTRY: WireEntry = WireEntry {
    name: "ejabberd",
    aliases: &[],
    answers: Answers::NONE,
    codec: || Box::new(EjabberdCodec::default()),
};

impl WireProtocol for EjabberdCodec {
    fn parse(&self, frame: Incoming) -> Result<Request, BadInput> {
        super::parse_payload(frame, ENTRY.name, request::parse)
    }
}

impl Decoder for EjabberdCodec {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        if let Some((left, total)) = self.skipping {
            let n = left.min(src.len());
            src.advance(n);
            if n < left {
                self.skipping = Some((left - n, total));
                return Ok(None);
            }
            self.skipping = None;
            return Ok(Some(Incoming::Bad(FrameProblem::Oversized(total))));
        }
        if src.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([src[0], src[1]]));
        if len > MAX_REQUEST {
            src.advance(2);
            self.skipping = Some((len, len));
            return self.decode(src);
        }
        if src.len() < 2 + len {
            src.reserve(2 + len - src.len());
            return Ok(None);
        }
        src.advance(2);
        Ok(Some(Incoming::Payload(src.split_to(len).freeze())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        if let Some((left, total)) = self.skipping.take() {
            return Ok(Some(Incoming::Bad(FrameProblem::Truncated {
                got: total - left,
                want: total,
            })));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let want = if src.len() >= 2 {
            usize::from(u16::from_be_bytes([src[0], src[1]]))
        } else {
            2
        };
        let got = src.len().saturating_sub(2);
        src.clear();
        Ok(Some(Incoming::Bad(FrameProblem::Truncated { got, want })))
    }
}

impl Encoder<Reply> for EjabberdCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), io::Error> {
        // Anything but 0 or 1 is an "unexpected response" to ejabberd's
        // extauth: the call fails with db_failure, and nothing is cached.
        let v = match item {
            Reply::Yes => 1,
            Reply::No | Reply::Roster(_) | Reply::Hello { .. } | Reply::Departed(_) => 0,
            Reply::TempFail => 2,
        };
        dst.extend_from_slice(&[0, 2, 0, v]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(p: &[u8]) -> Vec<u8> {
        let mut v = (p.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(p);
        v
    }

    fn decode_all(input: &[u8]) -> Vec<Incoming> {
        crate::wire::decode_chunks(EjabberdCodec::default(), &[input])
    }

    #[test]
    fn two_frames_in_one_read() {
        let mut input = frame(b"isuser:a:b");
        input.extend(frame(b"auth:a:b:c"));
        assert_eq!(
            decode_all(&input),
            vec![
                Incoming::Payload("isuser:a:b".into()),
                Incoming::Payload("auth:a:b:c".into())
            ]
        );
    }

    #[test]
    fn byte_by_byte() {
        let input = frame(b"auth:a:b:c");
        let mut c = EjabberdCodec::default();
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in input {
            buf.extend_from_slice(&[b]);
            if let Some(i) = c.decode(&mut buf).unwrap() {
                got.push(i);
            }
        }
        assert_eq!(got, vec![Incoming::Payload("auth:a:b:c".into())]);
    }

    #[test]
    fn zero_length_frame_is_an_empty_payload() {
        assert_eq!(decode_all(&[0, 0]), vec![Incoming::Payload("".into())]);
    }

    #[test]
    fn oversized_frame_is_skipped_and_stream_resyncs() {
        let big = vec![b'x'; MAX_REQUEST + 1];
        let mut input = frame(&big);
        input.extend(frame(b"isuser:a:b"));
        assert_eq!(
            decode_all(&input),
            vec![
                Incoming::Bad(FrameProblem::Oversized(MAX_REQUEST + 1)),
                Incoming::Payload("isuser:a:b".into())
            ]
        );
    }

    #[test]
    fn truncated_at_eof() {
        let mut input = frame(b"auth:a:b:c");
        input.truncate(6);
        assert_eq!(
            decode_all(&input),
            vec![Incoming::Bad(FrameProblem::Truncated { got: 4, want: 10 })]
        );
        assert_eq!(
            decode_all(&[0]),
            vec![Incoming::Bad(FrameProblem::Truncated { got: 0, want: 2 })]
        );
        let mut big = frame(&vec![b'x'; MAX_REQUEST + 10]);
        big.truncate(100);
        assert_eq!(
            decode_all(&big),
            vec![Incoming::Bad(FrameProblem::Truncated {
                got: 98,
                want: MAX_REQUEST + 10
            })]
        );
    }

    #[test]
    fn replies_are_exact() {
        let mut c = EjabberdCodec::default();
        let mut out = BytesMut::new();
        c.encode(Reply::Yes, &mut out).unwrap();
        c.encode(Reply::No, &mut out).unwrap();
        c.encode(Reply::TempFail, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 2, 0, 1, 0, 2, 0, 0, 0, 2, 0, 2]);
    }
}
