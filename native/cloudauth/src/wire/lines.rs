//! Line framing, shared by the line protocols (`generic`, `postfix`): one
//! request per line (`\n`, an optional `\r` before it dropped), a last line
//! without its newline still a request, an overlong line skipped up to its
//! newline and answered as bad input.

use std::io;

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::{FrameProblem, Incoming, MAX_REQUEST};

/// The line decoder.
#[derive(Debug, Default)]
pub struct Lines {
    /// Inside an overlong line: bytes thrown away so far.
    skipping: Option<usize>,
    /// How far `src` has already been searched for a newline.
    scanned: usize,
}

fn strip_cr(mut line: BytesMut) -> BytesMut {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line
}

impl Decoder for Lines {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        let newline = src[self.scanned..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| i + self.scanned);
        match (newline, self.skipping) {
            (Some(i), Some(skipped)) => {
                src.advance(i + 1);
                self.skipping = None;
                self.scanned = 0;
                Ok(Some(Incoming::Bad(FrameProblem::Oversized(skipped + i))))
            }
            (Some(i), None) => {
                let mut line = src.split_to(i + 1);
                line.truncate(i);
                self.scanned = 0;
                let line = strip_cr(line);
                if line.len() > MAX_REQUEST {
                    return Ok(Some(Incoming::Bad(FrameProblem::Oversized(line.len()))));
                }
                Ok(Some(Incoming::Payload(line.freeze())))
            }
            (None, Some(skipped)) => {
                self.skipping = Some(skipped + src.len());
                src.clear();
                self.scanned = 0;
                Ok(None)
            }
            (None, None) => {
                // One byte more than the limit may still be the `\r` of a
                // CRLF: skipping already would refuse a line that one read
                // holding its `\n` too accepts.
                if src.len() > MAX_REQUEST + 1 {
                    self.skipping = Some(src.len());
                    src.clear();
                    self.scanned = 0;
                } else {
                    self.scanned = src.len();
                }
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        self.scanned = 0;
        if let Some(skipped) = self.skipping.take() {
            return Ok(Some(Incoming::Bad(FrameProblem::Oversized(skipped))));
        }
        if src.is_empty() {
            return Ok(None);
        }
        // A last line without its newline is still a request.
        let line = strip_cr(src.split());
        if line.len() > MAX_REQUEST {
            return Ok(Some(Incoming::Bad(FrameProblem::Oversized(line.len()))));
        }
        Ok(Some(Incoming::Payload(line.freeze())))
    }
}
