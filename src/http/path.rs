//! Normalisation of the request path before routing (RFC 3986 §6.2.2).
//!
//! The router and every upstream see the same bytes: the normalised path is what gets matched
//! and what gets forwarded, so `/api/%2e%2e/admin` cannot reach a route that `/admin` would not.

/// Why a request path cannot be normalised. Every variant is answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Dot-segments would climb above `/` (`/../x`, `/a/../../x`).
    AboveRoot,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// The path does not start with `/` (origin-form requires it, RFC 9112 §3.2.1).
    NotAbsolute,
}

/// Clears `out` and writes the normalised form of `raw` (a path without its query) into it.
///
/// Percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2), every other escape is
/// kept with uppercase hex (§6.2.2.1), so `%2F` never turns into a segment separator. Dot-segments
/// are then removed as in §5.2.4, except that climbing above the root is an error instead of being
/// silently clamped: a client that sends `/../x` is either confused or probing. Empty segments
/// and a trailing slash are kept, since upstreams may give them meaning.
///
/// `out` never grows past `raw.len()`, so a buffer reused across requests allocates only once.
/// On error `out` is left empty, so no half-normalised path can be forwarded by mistake.
pub fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    let result = normalize_into(raw, out);
    if result.is_err() {
        out.clear();
    }
    result
}

fn normalize_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let rest = match raw.split_first() {
        Some((b'/', rest)) => rest,
        _ => return Err(PathError::NotAbsolute),
    };
    out.reserve(raw.len());
    if is_plain(raw) {
        out.extend_from_slice(raw);
        return Ok(());
    }
    // Splitting the raw bytes on '/' is the same as splitting the decoded ones, because a decoded
    // escape is never '/': only unreserved characters are decoded.
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        let start = out.len();
        out.push(b'/');
        decode_segment(segment, out)?;
        match &out[start + 1..] {
            b"." => out.truncate(start),
            b".." => {
                out.truncate(start);
                // An empty output means we are at the root: there is no segment left to pop.
                if out.is_empty() {
                    return Err(above_root_error(raw));
                }
                let parent = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(parent);
            }
            _ => continue,
        }
        // A dot-segment at the end names a directory: `/a/b/..` is `/a/`, not `/a`.
        if is_last {
            out.push(b'/');
        }
    }
    Ok(())
}

/// Decoding comes before dot-segment removal, so a malformed escape later in the path is the
/// error to report, whichever order the single pass met them in.
fn above_root_error(raw: &[u8]) -> PathError {
    let mut rest = raw;
    while let Some(pos) = rest.iter().position(|&b| b == b'%') {
        let digits = rest.get(pos + 1..pos + 3).unwrap_or_default();
        if digits.len() < 2 || digits.iter().any(|&d| hex_value(d).is_err()) {
            return PathError::BadPercentEncoding;
        }
        rest = &rest[pos + 3..];
    }
    PathError::AboveRoot
}

/// Most paths have no escape and no segment starting with '.', and are already normal: one
/// scan and one copy instead of the segment walk.
fn is_plain(raw: &[u8]) -> bool {
    let mut prev = 0;
    for &b in raw {
        if b == b'%' || (b == b'.' && prev == b'/') {
            return false;
        }
        prev = b;
    }
    true
}

/// Appends `segment` to `out`, decoding unreserved escapes and upper-casing the others.
fn decode_segment(segment: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut rest = segment;
    while let Some(pos) = rest.iter().position(|&b| b == b'%') {
        out.extend_from_slice(&rest[..pos]);
        let (hi, lo) = match rest.get(pos + 1..pos + 3) {
            Some(&[hi, lo]) => (hex_value(hi)?, hex_value(lo)?),
            _ => return Err(PathError::BadPercentEncoding),
        };
        let byte = hi << 4 | lo;
        if is_unreserved(byte) {
            out.push(byte);
        } else {
            out.extend_from_slice(&[b'%', HEX_UPPER[usize::from(hi)], HEX_UPPER[usize::from(lo)]]);
        }
        rest = &rest[pos + 3..];
    }
    out.extend_from_slice(rest);
    Ok(())
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(digit: u8) -> Result<u8, PathError> {
    super::token::hex_value(digit).ok_or(PathError::BadPercentEncoding)
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &[u8]) -> Result<Vec<u8>, PathError> {
        let mut out = Vec::new();
        normalize(raw, &mut out).map(|()| out)
    }

    fn ok(raw: &[u8], want: &[u8]) {
        assert_eq!(
            norm(raw).map(|v| String::from_utf8_lossy(&v).into_owned()),
            Ok(String::from_utf8_lossy(want).into_owned()),
            "normalising {:?}",
            String::from_utf8_lossy(raw)
        );
    }

    #[test]
    fn clean_paths_are_unchanged() {
        ok(b"/", b"/");
        ok(b"/a", b"/a");
        ok(b"/a/b/c", b"/a/b/c");
        ok(b"/api/v1/users", b"/api/v1/users");
        ok(b"/a.b/c..d/.e/f.", b"/a.b/c..d/.e/f.");
        ok(b"/...", b"/...");
    }

    #[test]
    fn must_be_absolute() {
        assert_eq!(norm(b""), Err(PathError::NotAbsolute));
        assert_eq!(norm(b"a/b"), Err(PathError::NotAbsolute));
        assert_eq!(norm(b"*"), Err(PathError::NotAbsolute));
        assert_eq!(norm(b"%2Fa"), Err(PathError::NotAbsolute));
        assert_eq!(norm(b"http://h/a"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn keeps_trailing_slash_and_empty_segments() {
        ok(b"/a/", b"/a/");
        ok(b"//", b"//");
        ok(b"/a//b", b"/a//b");
        ok(b"/a//", b"/a//");
        ok(b"///", b"///");
    }

    #[test]
    fn removes_single_dot_segments() {
        ok(b"/.", b"/");
        ok(b"/./", b"/");
        ok(b"/./a", b"/a");
        ok(b"/a/.", b"/a/");
        ok(b"/a/./b", b"/a/b");
        ok(b"/a/././b/.", b"/a/b/");
    }

    #[test]
    fn removes_double_dot_segments() {
        ok(b"/a/..", b"/");
        ok(b"/a/../", b"/");
        ok(b"/a/../b", b"/b");
        ok(b"/a/b/..", b"/a/");
        ok(b"/a/b/../", b"/a/");
        ok(b"/a/b/../c", b"/a/c");
        ok(b"/a/b/../../c", b"/c");
        ok(b"/a/b/c/./../../g", b"/a/g");
        // The empty segment between the slashes is a segment, and `..` pops it.
        ok(b"/a//../x", b"/a/x");
        ok(b"//..", b"/");
    }

    #[test]
    fn rfc3986_5_2_4_examples() {
        ok(b"/a/b/c/./../../g", b"/a/g");
        ok(b"/mid/content=5/../6", b"/mid/6");
    }

    #[test]
    fn climbing_above_root_is_rejected() {
        assert_eq!(norm(b"/.."), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/../"), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/../x"), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/a/../../x"), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/a/../.."), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/./../x"), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/%2e%2e/x"), Err(PathError::AboveRoot));
        assert_eq!(norm(b"/a/.%2E/%2e./x"), Err(PathError::AboveRoot));
    }

    #[test]
    fn bad_escape_wins_over_climbing_above_root() {
        // Decoding is the first step, so its error is reported even when `..` comes first.
        assert_eq!(norm(b"/../%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(norm(b"/a/../../b%"), Err(PathError::BadPercentEncoding));
    }

    #[test]
    fn decodes_unreserved_escapes() {
        ok(b"/%41%42%43", b"/ABC");
        ok(b"/%61%7a%30%39", b"/az09");
        ok(b"/%2D%2e%5F%7E", b"/-._~");
        ok(b"/%7euser", b"/~user");
    }

    #[test]
    fn decoded_dots_count_as_dot_segments() {
        ok(b"/a/%2e/b", b"/a/b");
        ok(b"/a/%2E%2E/b", b"/b");
        ok(b"/a/b/.%2e", b"/a/");
        ok(b"/a/%2e%2e", b"/");
    }

    #[test]
    fn other_escapes_stay_encoded_in_uppercase() {
        ok(b"/a%2fb", b"/a%2Fb");
        ok(b"/a%2Fb", b"/a%2Fb");
        ok(b"/%20", b"/%20");
        ok(b"/%3f%23", b"/%3F%23");
        ok(b"/%c3%a9", b"/%C3%A9");
        ok(b"/%00", b"/%00");
        ok(b"/%25", b"/%25");
        // An encoded '%' is not re-read as the start of an escape.
        ok(b"/%252e%252e", b"/%252e%252e");
    }

    #[test]
    fn encoded_slash_is_not_a_separator() {
        ok(b"/a%2F..%2Fb", b"/a%2F..%2Fb");
        ok(b"/a/..%2F", b"/a/..%2F");
        ok(b"/a/%2F../b", b"/a/%2F../b");
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        for raw in [
            &b"/%"[..],
            b"/%4",
            b"/a%",
            b"/%zz",
            b"/%4g",
            b"/%g4",
            b"/a/%/b",
            b"/%%41",
            b"/%4/",
            b"/%\xff\xff",
        ] {
            assert_eq!(norm(raw), Err(PathError::BadPercentEncoding), "{raw:?}");
        }
    }

    #[test]
    fn other_bytes_are_copied() {
        ok(b"/a:b@c!$&'()*+,;=", b"/a:b@c!$&'()*+,;=");
        ok(b"/caf\xc3\xa9", b"/caf\xc3\xa9");
    }

    #[test]
    fn output_is_cleared_and_never_longer_than_input() {
        let mut out = b"left over".to_vec();
        normalize(b"/x", &mut out).unwrap();
        assert_eq!(out, b"/x");
        normalize(b"nope", &mut out).unwrap_err();
        assert!(out.is_empty());
        for bad in [&b"/a/b/../../../x"[..], b"/a/b/%zz"] {
            normalize(bad, &mut out).unwrap_err();
            assert!(out.is_empty(), "{bad:?}");
        }
        for raw in [&b"/a/b/."[..], b"/a/..", b"/.", b"/%41/./", b"/a/b/../"] {
            normalize(raw, &mut out).unwrap();
            assert!(out.len() <= raw.len(), "{raw:?}");
        }
    }

    #[test]
    fn normalising_is_idempotent() {
        let mut once = Vec::new();
        let mut twice = Vec::new();
        for raw in [
            &b"/a/./b/../c/%2e%2e/d%2f%7e/"[..],
            b"/%2E/x//y/..",
            b"/a%20b/%41/.",
        ] {
            normalize(raw, &mut once).unwrap();
            normalize(&once, &mut twice).unwrap();
            assert_eq!(once, twice);
        }
    }
}
