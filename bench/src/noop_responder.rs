//! The floor for extauth benchmarks: reads ejabberd frames from stdin and
//! answers `00 02 00 01` to each, with nothing else going on. Exits on EOF.

use std::io::{self, BufReader, Read, Write};

fn main() -> io::Result<()> {
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = io::stdout().lock();
    let mut len = [0u8; 2];
    let mut payload = vec![0u8; 65_535];
    loop {
        if input.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let n = usize::from(u16::from_be_bytes(len));
        if input.read_exact(&mut payload[..n]).is_err() {
            return Ok(());
        }
        output.write_all(&[0, 2, 0, 1])?;
        output.flush()?;
    }
}
