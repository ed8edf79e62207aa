//! The method and header conditions of a route, checked after host and path have matched.
//! A route whose guard refuses the request lets the lookup fall through to the next candidate.

use super::HeaderLookup;

/// A header name (lowercase) and the exact value it must carry.
pub(crate) type HeaderCondition = (Box<str>, Box<[u8]>);

#[derive(Debug, Clone, Default)]
pub(crate) struct Guard {
    /// Empty means any method.
    pub(crate) methods: Box<[Box<[u8]>]>,
    /// Every one must be present.
    pub(crate) headers: Box<[HeaderCondition]>,
}

impl Guard {
    pub(crate) fn admits(&self, method: &[u8], headers: &dyn HeaderLookup) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| **m == *method))
            && self
                .headers
                .iter()
                .all(|(name, value)| headers.contains(name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fields(&'static [(&'static str, &'static [u8])]);

    impl HeaderLookup for Fields {
        fn contains(&self, name: &str, value: &[u8]) -> bool {
            self.0
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && *v == value)
        }
    }

    fn guard(methods: &[&str], headers: &[(&str, &str)]) -> Guard {
        Guard {
            methods: methods.iter().map(|m| m.as_bytes().into()).collect(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), v.as_bytes().into()))
                .collect(),
        }
    }

    #[test]
    fn no_conditions_admit_everything() {
        assert!(guard(&[], &[]).admits(b"DELETE", &Fields(&[])));
        assert!(guard(&[], &[]).admits(b"", &Fields(&[])));
    }

    #[test]
    fn methods_are_case_sensitive() {
        let g = guard(&["GET", "POST"], &[]);
        assert!(g.admits(b"GET", &Fields(&[])));
        assert!(g.admits(b"POST", &Fields(&[])));
        assert!(!g.admits(b"get", &Fields(&[])));
        assert!(!g.admits(b"PUT", &Fields(&[])));
        assert!(!g.admits(b"GETX", &Fields(&[])));
    }

    #[test]
    fn every_header_must_be_present_with_its_exact_value() {
        let g = guard(&[], &[("x-canary", "1"), ("x-tenant", "acme")]);
        assert!(g.admits(
            b"GET",
            &Fields(&[("X-Canary", b"1"), ("x-tenant", b"acme")])
        ));
        assert!(!g.admits(b"GET", &Fields(&[("x-canary", b"1")])));
        assert!(!g.admits(
            b"GET",
            &Fields(&[("x-canary", b"1"), ("x-tenant", b"ACME")])
        ));
        assert!(!g.admits(
            b"GET",
            &Fields(&[("x-canary", b"1 "), ("x-tenant", b"acme")])
        ));
    }

    #[test]
    fn methods_and_headers_both_apply() {
        let g = guard(&["POST"], &[("x-canary", "1")]);
        assert!(g.admits(b"POST", &Fields(&[("x-canary", b"1")])));
        assert!(!g.admits(b"GET", &Fields(&[("x-canary", b"1")])));
        assert!(!g.admits(b"POST", &Fields(&[])));
    }
}
