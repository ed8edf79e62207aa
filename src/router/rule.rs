//! Validation of a route's path, methods and headers, into the forms lookups compare against.

use super::guard::HeaderCondition;
use crate::http::path::{normalize, PathError};
use crate::http::token::{is_field_value, is_token};

/// The path of a configured `path` / `path_prefix`, as the table key it is stored under.
///
/// Requests are matched after [`normalize`], so the configured path is normalised the same
/// way: `/%7Euser` and `/~user` name the same route. A prefix loses one trailing slash (`/api/`
/// behaves as `/api`), and the root prefix becomes the empty key.
pub(crate) fn path_key(raw: &str, is_prefix: bool) -> Result<Box<[u8]>, String> {
    if !raw.starts_with('/') {
        return Err("path must start with '/'".into());
    }
    if let Some(bad) = raw.bytes().find(|&b| !is_path_byte(b)) {
        return Err(match bad {
            b'?' | b'#' => "path must not contain a query or fragment".into(),
            b if b >= 0x80 => "non-ASCII characters must be percent-encoded".into(),
            b => format!("invalid character {:?} in path", char::from(b)),
        });
    }
    let mut key = Vec::with_capacity(raw.len());
    normalize(raw.as_bytes(), &mut key).map_err(|err| match err {
        PathError::AboveRoot => "path climbs above the root with '..'".to_string(),
        PathError::BadPercentEncoding => "'%' must be followed by two hex digits".into(),
        PathError::NotAbsolute => "path must start with '/'".into(),
    })?;
    if is_prefix && key.last() == Some(&b'/') {
        key.pop();
    }
    Ok(key.into_boxed_slice())
}

/// `pchar` and `/` from RFC 3986 §3.3: what an origin-form path may hold.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b)
}

/// A method is an RFC 9110 §9.1 token, compared case-sensitively.
pub(crate) fn method(raw: &str) -> Result<Box<[u8]>, String> {
    if raw.is_empty() {
        return Err("method must not be empty".into());
    }
    if !is_token(raw.as_bytes()) {
        return Err(format!("{raw:?} is not a valid HTTP method token"));
    }
    Ok(raw.as_bytes().into())
}

/// A header condition: the name (a token, stored lowercase) and the exact value to compare.
pub(crate) fn header(name: &str, value: &str) -> Result<HeaderCondition, String> {
    if !is_token(name.as_bytes()) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    // RFC 9110 §5.5: field-content is VCHAR / obs-text with inner SP and HTAB.
    if !is_field_value(value.as_bytes()) {
        return Err("header value contains a control character".into());
    }
    // Parsers strip surrounding whitespace from field values, so such a rule could never match.
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("header value must not start or end with whitespace".into());
    }
    Ok((name.to_ascii_lowercase().into(), value.as_bytes().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str, is_prefix: bool) -> Result<Vec<u8>, String> {
        path_key(raw, is_prefix).map(Vec::from)
    }

    #[test]
    fn exact_paths_are_normalised_and_keep_trailing_slash() {
        assert_eq!(key("/", false), Ok(b"/".to_vec()));
        assert_eq!(key("/api", false), Ok(b"/api".to_vec()));
        assert_eq!(key("/api/", false), Ok(b"/api/".to_vec()));
        assert_eq!(key("/%7euser/./x", false), Ok(b"/~user/x".to_vec()));
        assert_eq!(key("/a%2fb", false), Ok(b"/a%2Fb".to_vec()));
    }

    #[test]
    fn prefixes_lose_one_trailing_slash() {
        assert_eq!(key("/", true), Ok(b"".to_vec()));
        assert_eq!(key("/api", true), Ok(b"/api".to_vec()));
        assert_eq!(key("/api/", true), Ok(b"/api".to_vec()));
        assert_eq!(key("/api/v1/", true), Ok(b"/api/v1".to_vec()));
        assert_eq!(key("/api/x/..", true), Ok(b"/api".to_vec()));
    }

    #[test]
    fn invalid_paths_are_rejected() {
        for bad in [
            "", "api", "*", "/a b", "/a?b=1", "/a#f", "/..", "/a/../..", "/%zz", "/%4", "/é",
            "/a\t", "/a\"b", "/<x>", "/a\\b",
        ] {
            assert!(key(bad, false).is_err(), "{bad:?} should be rejected");
            assert!(
                key(bad, true).is_err(),
                "{bad:?} should be rejected as a prefix"
            );
        }
    }

    #[test]
    fn methods_are_tokens() {
        assert_eq!(method("GET").as_deref(), Ok(&b"GET"[..]));
        assert_eq!(method("PURGE").as_deref(), Ok(&b"PURGE"[..]));
        assert_eq!(method("get").as_deref(), Ok(&b"get"[..]));
        for bad in ["", "GE T", "GET\r", "(GET)", "GÉT", "GET/1"] {
            assert!(method(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn header_names_are_lowercased_tokens() {
        let (name, value) = header("X-Canary", "1").unwrap();
        assert_eq!(&*name, "x-canary");
        assert_eq!(&*value, b"1");
        assert!(header("", "1").is_err());
        assert!(header("x canary", "1").is_err());
        assert!(header("x-canary:", "1").is_err());
    }

    #[test]
    fn header_values_are_field_content() {
        assert!(header("x", "").is_ok());
        assert!(header("x", "a b\tc").is_ok());
        assert!(header("x", "caf\u{e9}").is_ok());
        for bad in ["a\r\nb", "a\0", " a", "a ", "\ta", "a\x7f"] {
            assert!(header("x", bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
