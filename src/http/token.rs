//! The character classes of RFC 9110 and RFC 5234 that parsers, the router and the config
//! checks share: one definition of a token or a field value, not one per caller.

/// HEXDIG (RFC 5234 B.1), which is case-insensitive like every ABNF literal.
pub fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// tchar (RFC 9110 §5.6.2): the characters of a token, hence of a field name.
pub fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

/// A token (RFC 9110 §5.6.2): a method, a field name, a coding.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// field-content (RFC 9110 §5.5): VCHAR and obs-text, with SP and HTAB between.
pub fn is_field_value(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_token(b"X-Custom_1.0~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(is_field_value(b"text/plain; charset=\"\xC3\xBC\"\t x"));
        assert!(!is_field_value(b"a\rb"));
        assert!(!is_field_value(b"\x7f"));
        assert_eq!(hex_value(b'F'), Some(15));
        assert_eq!(hex_value(b'g'), None);
    }
}
