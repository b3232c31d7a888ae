//! Postfix `tcp_table` (`-t postfix`): `get KEY` lines (KEY `%XX`-encoded),
//! replies `200 VALUE` (found), `500 TEXT` (not found), `400 TEXT`
//! (temporary failure). Line framing is [`super::lines`].

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::lines::Lines;
use super::{Answers, BadInput, Incoming, Reply, WireEntry, WireProtocol};
use crate::request::{self, Request};

/// Codec for `-t postfix`.
#[derive(Debug, Default)]
pub struct PostfixCodec {
    lines: Lines,
}

/// The Postfix protocol in the registry.
pub static ENTRY: WireEntry = WireEntry {
    name: "postfix",
    aliases: &[],
    answers: Answers::NONE,
    codec: || Box::new(PostfixCodec::default()),
};

impl WireProtocol for PostfixCodec {
    fn parse(&self, frame: Incoming) -> Result<Request, BadInput> {
        super::parse_payload(frame, ENTRY.name, request::parse_postfix)
    }
}

impl Decoder for PostfixCodec {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        self.lines.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        self.lines.decode_eof(src)
    }
}

impl Encoder<Reply> for PostfixCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), io::Error> {
        dst.extend_from_slice(match item {
            Reply::Yes => b"200 OK\n",
            Reply::No | Reply::Roster(_) | Reply::Hello { .. } | Reply::Departed(_) => {
                b"500 no such user\n"
            }
            Reply::TempFail => b"400 temporary failure: the cloud could not be asked\n",
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let mut c = PostfixCodec::default();
        let mut out = BytesMut::new();
        for r in [Reply::Yes, Reply::No, Reply::TempFail] {
            c.encode(r, &mut out).unwrap();
        }
        let text = String::from_utf8(out.to_vec()).unwrap();
        let codes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
        assert_eq!(codes, ["200", "500", "400"]);
    }
}
