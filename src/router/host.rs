//! Host names: validating the patterns in a route's `hosts`, and reducing a request's Host to
//! the form those patterns are stored in (lowercase, no port, no trailing dot).

/// Longest request host (after the port is removed) that exact and wildcard routes consider.
/// DNS names stop at 253 bytes; 255 leaves room for a bracketed IPv6 literal. A longer Host
/// cannot be any configured name, so it is only eligible for any-host routes.
pub(crate) const MAX_HOST_LEN: usize = 255;

/// A validated entry of a route's `hosts`, in canonical (lowercase, no trailing dot) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// `api.example.com`, `10.0.0.1` or `[::1]`.
    Exact(Box<[u8]>),
    /// `*.example.com`, stored as the suffix `example.com`.
    Wildcard(Box<[u8]>),
}

/// Validates one configured host pattern. The error is the reason, for a `RuleError`.
pub(crate) fn parse_pattern(raw: &str) -> Result<HostPattern, String> {
    if raw.is_empty() {
        return Err("host must not be empty".into());
    }
    let lower = raw.to_ascii_lowercase();
    // Accept the fully qualified spelling: a request's trailing dot is ignored too.
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name == "*" {
        return Err("`*` alone is not a host; leave `hosts` out to match any host".into());
    }
    if let Some(suffix) = name.strip_prefix("*.") {
        check_dns_name(suffix)?;
        return Ok(HostPattern::Wildcard(suffix.as_bytes().into()));
    }
    if name.contains('*') {
        return Err("`*` is only allowed as the whole first label, as in `*.example.com`".into());
    }
    if name.starts_with('[') {
        check_ipv6_literal(name)?;
    } else {
        check_dns_name(name)?;
    }
    Ok(HostPattern::Exact(name.as_bytes().into()))
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("host must not be empty".into());
    }
    if let Some(bad) = name.chars().find(|&c| !is_host_char(c)) {
        return Err(match bad {
            ':' => "host must not carry a port (ports are ignored when matching)".into(),
            c if c.is_whitespace() => "host must not contain whitespace".into(),
            c => format!("invalid character {c:?} in host"),
        });
    }
    if name.len() > 253 {
        return Err("host is longer than 253 bytes".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("host has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 bytes"));
        }
    }
    Ok(())
}

/// Letters, digits and hyphen (RFC 1123), plus underscore, which real service names use.
fn is_host_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == '_'
}

fn check_ipv6_literal(name: &str) -> Result<(), String> {
    let inner = name
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or("an IPv6 host must be written as `[address]`, without a port")?;
    let valid = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(format!("invalid IPv6 address {name:?}"))
    }
}

/// Reduces a request's Host (or absolute-form authority) to its canonical name in `buf`.
///
/// `None` when there is no name to match: empty, or longer than [`MAX_HOST_LEN`]. Syntax is
/// not checked here; a malformed name simply matches no pattern.
pub(crate) fn canonical<'b>(raw: &[u8], buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b [u8]> {
    let name = if raw.first() == Some(&b'[') {
        // `[v6]:port`: the colons inside the brackets are not the port separator.
        let close = raw.iter().position(|&b| b == b']')?;
        &raw[..=close]
    } else {
        let end = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
        &raw[..end]
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return None;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name);
    out.make_ascii_lowercase();
    Some(out)
}

/// The suffixes a wildcard could be stored under for `host`, longest first: for
/// `a.b.example.com` that is `b.example.com`, `example.com`, `com`. Something always stands in
/// front of the suffix, so `*.example.com` cannot match `.example.com`.
pub(crate) fn wildcard_suffixes(host: &[u8]) -> impl Iterator<Item = &[u8]> {
    host.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'.' && i > 0)
        .map(move |(i, _)| &host[i + 1..])
        .filter(|suffix| !suffix.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> HostPattern {
        HostPattern::Exact(s.as_bytes().into())
    }

    fn wildcard(s: &str) -> HostPattern {
        HostPattern::Wildcard(s.as_bytes().into())
    }

    #[test]
    fn patterns_are_canonicalised() {
        assert_eq!(parse_pattern("Example.COM"), Ok(exact("example.com")));
        assert_eq!(parse_pattern("example.com."), Ok(exact("example.com")));
        assert_eq!(parse_pattern("*.Example.com"), Ok(wildcard("example.com")));
        assert_eq!(parse_pattern("*.example.com."), Ok(wildcard("example.com")));
        assert_eq!(parse_pattern("*.com"), Ok(wildcard("com")));
        assert_eq!(parse_pattern("localhost"), Ok(exact("localhost")));
        assert_eq!(parse_pattern("10.0.0.1"), Ok(exact("10.0.0.1")));
        assert_eq!(parse_pattern("[::1]"), Ok(exact("[::1]")));
        assert_eq!(parse_pattern("[2001:DB8::1]"), Ok(exact("[2001:db8::1]")));
        assert_eq!(
            parse_pattern("my_svc.internal"),
            Ok(exact("my_svc.internal"))
        );
    }

    #[test]
    fn invalid_patterns_are_rejected() {
        for bad in [
            "",
            ".",
            "*",
            "*.",
            "*.*.example.com",
            "a.*.example.com",
            "*example.com",
            "ex*.com",
            "**.example.com",
            "example.com:8080",
            "exa mple.com",
            " example.com",
            "example..com",
            ".example.com",
            "example.com..",
            "ex@mple.com",
            "exämple.com",
            "[::1",
            "[]",
            "[::1]:80",
            "[::g]",
        ] {
            assert!(parse_pattern(bad).is_err(), "{bad:?} should be rejected");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(parse_pattern(&long_label).is_err());
        let long_name = ["abcdefghi"; 26].join(".");
        assert!(long_name.len() > 253);
        assert!(parse_pattern(&long_name).is_err());
    }

    #[test]
    fn reasons_name_the_problem() {
        let reason = parse_pattern("example.com:8080").unwrap_err();
        assert!(reason.contains("port"), "{reason}");
        let reason = parse_pattern("a.*.com").unwrap_err();
        assert!(reason.contains("first label"), "{reason}");
        let reason = parse_pattern("exa mple.com").unwrap_err();
        assert!(reason.contains("whitespace"), "{reason}");
    }

    fn canon(raw: &[u8]) -> Option<Vec<u8>> {
        let mut buf = [0u8; MAX_HOST_LEN];
        canonical(raw, &mut buf).map(<[u8]>::to_vec)
    }

    #[test]
    fn request_host_drops_port_case_and_trailing_dot() {
        assert_eq!(canon(b"Example.COM"), Some(b"example.com".to_vec()));
        assert_eq!(canon(b"example.com:8080"), Some(b"example.com".to_vec()));
        assert_eq!(canon(b"example.com:"), Some(b"example.com".to_vec()));
        assert_eq!(canon(b"example.com."), Some(b"example.com".to_vec()));
        assert_eq!(canon(b"example.com.:443"), Some(b"example.com".to_vec()));
        assert_eq!(canon(b"example.com.."), Some(b"example.com.".to_vec()));
        assert_eq!(canon(b"[::1]:8080"), Some(b"[::1]".to_vec()));
        assert_eq!(canon(b"[::1]"), Some(b"[::1]".to_vec()));
        assert_eq!(canon(b"[2001:DB8::1]:80"), Some(b"[2001:db8::1]".to_vec()));
        assert_eq!(canon(b"127.0.0.1:80"), Some(b"127.0.0.1".to_vec()));
    }

    #[test]
    fn request_host_without_a_name_is_none() {
        assert_eq!(canon(b""), None);
        assert_eq!(canon(b":8080"), None);
        assert_eq!(canon(b"."), None);
        assert_eq!(canon(b"[::1"), None);
    }

    #[test]
    fn request_host_length_limit() {
        let at_limit = vec![b'a'; MAX_HOST_LEN];
        assert_eq!(canon(&at_limit), Some(at_limit.clone()));
        let mut with_port = at_limit.clone();
        with_port.extend_from_slice(b".:8080");
        assert_eq!(canon(&with_port), Some(at_limit));
        assert_eq!(canon(&[b'a'; MAX_HOST_LEN + 1]), None);
    }

    fn suffixes(host: &[u8]) -> Vec<&[u8]> {
        wildcard_suffixes(host).collect()
    }

    #[test]
    fn suffixes_are_longest_first_and_need_a_label_in_front() {
        assert_eq!(
            suffixes(b"a.b.example.com"),
            [&b"b.example.com"[..], b"example.com", b"com"]
        );
        assert_eq!(suffixes(b"example.com"), [&b"com"[..]]);
        assert!(suffixes(b"localhost").is_empty());
        assert!(suffixes(b".example").is_empty());
        assert!(suffixes(b"example.").is_empty());
        assert_eq!(suffixes(b"a..com"), [&b".com"[..], b"com"]);
    }
}
