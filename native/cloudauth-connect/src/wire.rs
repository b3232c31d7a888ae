//! ejabberd's extauth framing: requests are a 2-byte big-endian length and
//! the payload; replies are exactly `00 02 00 0X`.

use std::io::{self, Read};

/// One reply as it goes over the wire.
pub type Reply = [u8; 4];

/// "no".
pub const REPLY_NO: Reply = [0, 2, 0, 0];
/// "backend trouble": ejabberd fails the operation and caches nothing.
pub const REPLY_TEMPFAIL: Reply = [0, 2, 0, 2];

/// Whether `r` is a reply: `00 02 00 00` (no), `00 02 00 01` (yes) or [`REPLY_TEMPFAIL`].
pub fn is_valid(r: &Reply) -> bool {
    matches!(r, [0, 2, 0, 0..=2])
}

/// Reads one whole frame, length prefix included, into `buf` (replacing its
/// contents). `Ok(false)` when the input ends, also in the middle of a frame
/// (an incomplete frame is never forwarded).
pub fn read_frame<R: Read>(input: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    buf.resize(2, 0);
    if !fill(input, buf)? {
        return Ok(false);
    }
    let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    buf.resize(2 + len, 0);
    fill(input, &mut buf[2..])
}

/// `read_exact`, with the end of input as `Ok(false)`.
fn fill<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_replies() {
        assert!(is_valid(&REPLY_NO) && is_valid(&[0, 2, 0, 1]) && is_valid(&REPLY_TEMPFAIL));
        for bad in [
            [0, 2, 0, 3],
            [0, 2, 1, 0],
            [0, 3, 0, 1],
            [1, 2, 0, 1],
            [0, 0, 0, 0],
        ] {
            assert!(!is_valid(&bad), "{bad:?}");
        }
    }

    #[test]
    fn frames_in_sequence() {
        let mut input: &[u8] = &[0, 3, b'a', b'b', b'c', 0, 0, 0, 1, b'x'];
        let mut buf = Vec::new();
        assert!(read_frame(&mut input, &mut buf).unwrap());
        assert_eq!(buf, [0, 3, b'a', b'b', b'c']);
        assert!(read_frame(&mut input, &mut buf).unwrap());
        assert_eq!(buf, [0, 0]);
        assert!(read_frame(&mut input, &mut buf).unwrap());
        assert_eq!(buf, [0, 1, b'x']);
        assert!(!read_frame(&mut input, &mut buf).unwrap());
    }

    #[test]
    fn end_inside_a_frame() {
        let mut buf = Vec::new();
        for partial in [&[0u8][..], &[0, 5, b'a', b'b'][..]] {
            let mut input = partial;
            assert!(!read_frame(&mut input, &mut buf).unwrap());
        }
    }

    #[test]
    fn largest_frame() {
        let mut data = vec![0xff, 0xff];
        data.extend(std::iter::repeat_n(b'p', 65535));
        let mut input = &data[..];
        let mut buf = Vec::new();
        assert!(read_frame(&mut input, &mut buf).unwrap());
        assert_eq!(buf.len(), 65537);
    }
}
