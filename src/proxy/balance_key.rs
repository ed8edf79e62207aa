//! The request key that `consistent_hash` upstreams hash on (`hash_on`): the client address,
//! a header, a cookie or the path. A request without the key falls back to the upstream's
//! non-hashed pick, as Envoy and HAProxy do.

use crate::balancer::hash_key;
use crate::config::HashOn;
use crate::http::headers::{self, Field};

/// The hash of this request's key, or None when the request does not carry it.
pub fn request_key(
    hash_on: &HashOn,
    buf: &[u8],
    fields: &[Field],
    client_ip: &[u8],
    path: &[u8],
) -> Option<u64> {
    match hash_on {
        HashOn::Ip => Some(hash_key(client_ip)),
        HashOn::Path => Some(hash_key(path)),
        HashOn::Header(name) => fields
            .iter()
            .find(|f| f.name(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| hash_key(headers::trim(f.value(buf)))),
        HashOn::Cookie(name) => fields
            .iter()
            .filter(|f| f.name(buf).eq_ignore_ascii_case(b"cookie"))
            .find_map(|f| cookie(f.value(buf), name.as_bytes()))
            .map(hash_key),
    }
}

/// The value of cookie `name` in a Cookie field (`a=1; b=2`, RFC 6265 §5.4).
fn cookie<'b>(value: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    value.split(|&b| b == b';').find_map(|pair| {
        let pair = headers::trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_by_exact_name() {
        assert_eq!(
            cookie(b"a=1; session=xyz; b=2", b"session"),
            Some(&b"xyz"[..])
        );
        assert_eq!(cookie(b"session=xyz", b"session"), Some(&b"xyz"[..]));
        assert_eq!(cookie(b"xsession=1; sessionx=2", b"session"), None);
        assert_eq!(cookie(b"", b"session"), None);
        assert_eq!(cookie(b"session=", b"session"), Some(&b""[..]));
    }
}
