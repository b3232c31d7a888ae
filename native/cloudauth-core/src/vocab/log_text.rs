//! Log text that cannot forge a line: shared by every process that writes
//! the core's events (the `cloudauth` binary's log file, standard error and
//! journal; the NIF's events for ejabberd's log), since a user name or a
//! backend's error message reaches all of them.

/// One formatted event with every control character but its final newline
/// escaped (`\n`, `\r`, `\xNN`, C1 controls, the Unicode line and paragraph
/// separators and the bidi marks, embeddings, overrides and isolates as
/// `\u{..}`): a user name or a backend message with a line break cannot
/// forge a log line, nor make one read differently from what it holds.
pub fn sanitize(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    let is_c1 = |w: &[u8]| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]);
    let clean = !body.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        && !body.windows(2).any(is_c1)
        && !body.windows(3).any(|w| layout_char(w).is_some());
    if clean {
        return std::borrow::Cow::Borrowed(buf);
    }
    let mut out = Vec::with_capacity(buf.len() + 16);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            0xc2 if i + 1 < body.len() && is_c1(&body[i..i + 2]) => {
                out.extend_from_slice(format!("\\u{{{:x}}}", body[i + 1]).as_bytes());
                i += 1;
            }
            0xe2 => match body.get(i..i + 3).and_then(layout_char) {
                Some(c) => {
                    out.extend_from_slice(format!("\\u{{{c:x}}}").as_bytes());
                    i += 2;
                }
                None => out.push(b),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    if body.len() < buf.len() {
        out.push(b'\n');
    }
    std::borrow::Cow::Owned(out)
}

/// [`sanitize`] for text: what may go into a log line, as a string.
pub fn escape(text: &str) -> String {
    // Only ASCII escapes are put in, between whole characters: still UTF-8.
    String::from_utf8_lossy(&sanitize(text.as_bytes())).into_owned()
}

/// The code point of `w` (three UTF-8 bytes) when it is one a terminal or
/// viewer lays out instead of showing: U+2028/U+2029 (line and paragraph
/// separators, a line break to many viewers), U+200E/U+200F (direction
/// marks), U+202A–U+202E (embeddings and overrides), U+2066–U+2069 (isolates).
fn layout_char(w: &[u8]) -> Option<u32> {
    match w {
        [0xe2, 0x80, b @ (0x8e | 0x8f | 0xa8..=0xae)] => Some(0x2000 + u32::from(b - 0x80)),
        [0xe2, 0x81, b @ 0xa6..=0xa9] => Some(0x2040 + u32::from(b - 0x80)),
        _ => None,
    }
}

/// The first `max` characters of `bytes`, lossily decoded, control
/// characters replaced, so that it is safe to put in a log line.
pub fn printable_snippet(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_the_line_end_stays() {
        assert!(matches!(
            sanitize(b"plain line\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        let forged = b"auth mallory\n2026-01-01 INFO auth admin@x: yes\r@localhost: no\n";
        assert_eq!(
            &*sanitize(forged),
            &b"auth mallory\\n2026-01-01 INFO auth admin@x: yes\\r@localhost: no\n"[..]
        );
        assert_eq!(&*sanitize(b"a\x1b[31mb\x7f\n"), &b"a\\x1b[31mb\\x7f\n"[..]);
        assert_eq!(&*sanitize("x\u{85}y".as_bytes()), &b"x\\u{85}y"[..]);
        // Issue 24: line separators and bidi controls in a user name were written raw.
        assert_eq!(
            &*sanitize("auth a\u{2028}b\u{2029}c\u{202e}d\u{2066}e\u{2069}f\u{200f}\n".as_bytes()),
            &b"auth a\\u{2028}b\\u{2029}c\\u{202e}d\\u{2066}e\\u{2069}f\\u{200f}\n"[..]
        );
        assert_eq!(
            &*sanitize("\u{202a}\u{202b}\u{202c}\u{202d}\u{2067}\u{2068}\u{200e}".as_bytes()),
            &b"\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{2067}\\u{2068}\\u{200e}"[..]
        );
        assert_eq!(escape("a\nb\u{2028}c"), "a\\nb\\u{2028}c");
        // Neighbours of the escaped ones stay as they are.
        assert_eq!(
            &*sanitize("\u{2027}\u{202f}\u{2065}\u{206a}\u{2010}\n".as_bytes()),
            "\u{2027}\u{202f}\u{2065}\u{206a}\u{2010}\n".as_bytes()
        );
        assert_eq!(
            &*sanitize("jürgen\tok\n".as_bytes()),
            "jürgen\tok\n".as_bytes()
        );
    }

    #[test]
    fn snippets_are_printable_and_bounded() {
        let s = printable_snippet(b"a\nb\x00c\xffd", 100);
        assert!(!s.contains('\n') && !s.contains('\0'));
        assert_eq!(printable_snippet(b"abcdef", 3), "abc…");
    }
}
