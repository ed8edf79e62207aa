//! Escaping client-supplied bytes for a log line. Almost every byte of a target or user agent
//! needs nothing, so both escapers skip eight bytes at a time with word arithmetic and only
//! look at single bytes around the rare one that does: this halves the JSON line's cost
//! (`cargo bench --bench access_log`).

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

const HEX: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// A JSON string (RFC 8259 §7), quotes included: `"` and `\` escaped, control characters as
/// `\u00XX`, valid UTF-8 copied as is, and each byte of an invalid sequence as `\u00XX` (read
/// as Latin-1), so the line stays valid JSON whatever a client sent.
pub(super) fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        i = skip_plain(s, i, |w| {
            any_below(w, 0x20) | any_equal(w, b'"') | any_equal(w, b'\\')
        });
        let Some(&b) = s.get(i) else { break };
        if b < 0x80 {
            if b < 0x20 || b == b'"' || b == b'\\' {
                out.extend_from_slice(&s[copied..i]);
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    _ => unicode_escape(b, out),
                }
                copied = i + 1;
            }
            i += 1;
        } else if let Some(len) = utf8_char_len(&s[i..]) {
            i += len;
        } else {
            // The continuation bytes of a broken sequence fail here in turn, one by one.
            out.extend_from_slice(&s[copied..i]);
            unicode_escape(b, out);
            i += 1;
            copied = i;
        }
    }
    out.extend_from_slice(&s[copied..]);
    out.push(b'"');
}

/// A field inside `"..."` in the combined format: `-` when empty, and escaped as nginx's
/// `escape=default` does: `"`, `\`, control characters and every byte from 0x7f up as `\xXX`.
pub(super) fn quoted_field(s: &[u8], out: &mut Vec<u8>) {
    nginx_escaped(s, out, 0x20);
}

/// An unquoted field (client, `route=`, `id=`): as [`quoted_field`], and a space too, since
/// a space would end the field for every parser of the line.
pub(super) fn bare_field(s: &[u8], out: &mut Vec<u8>) {
    nginx_escaped(s, out, 0x21);
}

/// Escapes bytes below `lowest`, from 0x7f up, `"` and `\`.
fn nginx_escaped(s: &[u8], out: &mut Vec<u8>, lowest: u8) {
    if s.is_empty() {
        out.push(b'-');
        return;
    }
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        i = skip_plain(s, i, |w| {
            any_below(w, lowest) | any_equal(w, b'"') | any_equal(w, b'\\') | any_equal(w, 0x7f)
        });
        let Some(&b) = s.get(i) else { break };
        if b < lowest || b >= 0x7f || b == b'"' || b == b'\\' {
            out.extend_from_slice(&s[copied..i]);
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0xf)],
            ]);
            copied = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&s[copied..]);
}

/// The first index from `i` where an eight-byte word holds a byte that is non-ASCII or that
/// `special` flags; the word there, or the tail shorter than a word, is left to the caller
/// byte by byte.
#[inline(always)]
fn skip_plain(s: &[u8], mut i: usize, special: impl Fn(u64) -> u64) -> usize {
    while let Some(word) = s.get(i..i + 8) {
        let w = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
        if (w & HIGH) | special(w) != 0 {
            break;
        }
        i += 8;
    }
    i
}

/// Non-zero if a byte of `w` is below `n`, for ASCII `w` and `n <= 0x80` (the "haszero"
/// family from Bit Twiddling Hacks: exact as a whole, though not per byte).
#[inline(always)]
fn any_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
}

#[inline(always)]
fn any_equal(w: u64, b: u8) -> u64 {
    any_below(w ^ (ONES * u64::from(b)), 1)
}

/// The length of the UTF-8 character `s` starts with, or `None` if it does not start with a
/// valid one. The standard library does the validating: overlong forms, surrogates and
/// values past U+10FFFF are all refused.
fn utf8_char_len(s: &[u8]) -> Option<usize> {
    let len = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let char = s.get(..len)?;
    std::str::from_utf8(char).ok().map(|_| len)
}

fn unicode_escape(b: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xf)],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &[u8]) -> String {
        let mut out = Vec::new();
        json_string(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn quoted(s: &[u8]) -> String {
        let mut out = Vec::new();
        quoted_field(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn bare(s: &[u8]) -> String {
        let mut out = Vec::new();
        bare_field(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_escaping() {
        assert_eq!(json(b"plain"), r#""plain""#);
        assert_eq!(json(br#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            json(b"\n\r\t\x00\x1f\x7f"),
            "\"\\u000a\\u000d\\u0009\\u0000\\u001f\x7f\""
        );
        // Valid UTF-8 stays; lone continuation bytes, a truncated sequence, an overlong
        // encoding and an encoded surrogate are escaped byte by byte.
        assert_eq!(json("ünï ✓ 𝄞".as_bytes()), "\"ünï ✓ 𝄞\"");
        assert_eq!(json(b"a\x80b"), r#""a\u0080b""#);
        assert_eq!(json(b"\xc3\xbc\xff\xfe"), r#""ü\u00ff\u00fe""#);
        assert_eq!(json(b"x\xe2\x9c"), r#""x\u00e2\u009c""#);
        assert_eq!(json(b"x\xe2\x9cy"), r#""x\u00e2\u009cy""#);
        assert_eq!(json(b"\xc0\xaf"), r#""\u00c0\u00af""#);
        assert_eq!(json(b"\xed\xa0\x80"), r#""\u00ed\u00a0\u0080""#);
        assert_eq!(json(b""), r#""""#);
    }

    #[test]
    fn nginx_escaping() {
        assert_eq!(quoted(b""), "-");
        assert_eq!(quoted(b"a b"), "a b");
        assert_eq!(bare(b"a b"), r"a\x20b");
        assert_eq!(quoted(b"\"\\\x7f\x1f\xff"), r"\x22\x5C\x7F\x1F\xFF");
        assert_eq!(quoted("ü".as_bytes()), r"\xC3\xBC");
    }

    /// Every byte value at every offset of a word, against a byte-at-a-time reference: the
    /// word skipping must never hide a byte that needs escaping.
    #[test]
    fn word_skipping_agrees_with_byte_by_byte() {
        fn json_reference(s: &[u8]) -> String {
            let mut out = String::from("\"");
            for chunk in s.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c => out.push(c),
                    }
                }
                for &b in chunk.invalid() {
                    out.push_str(&format!("\\u{b:04x}"));
                }
            }
            out + "\""
        }
        fn nginx_reference(s: &[u8], lowest: u8) -> String {
            if s.is_empty() {
                return "-".into();
            }
            s.iter()
                .map(|&b| {
                    if b < lowest || b >= 0x7f || b == b'"' || b == b'\\' {
                        format!("\\x{b:02X}")
                    } else {
                        char::from(b).to_string()
                    }
                })
                .collect()
        }
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    assert_eq!(json(&s), json_reference(&s), "{s:?}");
                    assert_eq!(quoted(&s), nginx_reference(&s, 0x20), "{s:?}");
                    assert_eq!(bare(&s), nginx_reference(&s, 0x21), "{s:?}");
                }
            }
        }
        let all: Vec<u8> = (0..=255).chain(0..=255).collect();
        assert_eq!(json(&all), json_reference(&all));
        let text = "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" ü ✓ 𝄞 end\\".as_bytes();
        assert_eq!(json(text), json_reference(text));
        assert_eq!(quoted(text), nginx_reference(text, 0x20));
    }
}
