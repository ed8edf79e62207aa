//! `strip_prefix` and `rewrite_prefix`: replacing the matched prefix of the forwarded path.

/// Writes `path` with its leading `prefix` replaced by `replacement` into `out` (cleared first).
///
/// `path` is a normalised request path that matches `prefix` segment-aware (as the route that
/// selected it did). `strip_prefix` is the replacement `/`. Exactly one `/` sits at the seam
/// whether or not `replacement` ends in one, and an empty result becomes `/`, so the upstream
/// always receives an origin-form path:
///
/// | prefix | replacement | path     | out     |
/// |--------|-------------|----------|---------|
/// | `/api` | `/`         | `/api/x` | `/x`    |
/// | `/api` | `/`         | `/api`   | `/`     |
/// | `/api` | `/v2/`      | `/api`   | `/v2/`  |
/// | `/api` | `/v2`       | `/api/x` | `/v2/x` |
/// | `/api` | `/v2`       | `/api`   | `/v2`   |
///
/// Should `path` not match `prefix` after all, it is forwarded unchanged rather than cut at an
/// arbitrary byte.
pub fn rewrite_prefix(path: &[u8], prefix: &str, replacement: &str, out: &mut Vec<u8>) {
    out.clear();
    // A configured `/api/` behaves as `/api`, and `/` as the empty prefix, as in matching.
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix).as_bytes();
    let rest = match path.strip_prefix(prefix) {
        Some(rest) if rest.is_empty() || rest[0] == b'/' => rest,
        _ => {
            debug_assert!(false, "rewrite_prefix: {path:?} does not match {prefix:?}");
            out.extend_from_slice(path);
            return;
        }
    };
    let replacement = replacement.as_bytes();
    out.reserve(replacement.len() + rest.len());
    out.extend_from_slice(replacement);
    if replacement.last() == Some(&b'/') {
        out.extend_from_slice(rest.get(1..).unwrap_or_default());
    } else {
        out.extend_from_slice(rest);
    }
    if out.is_empty() {
        out.push(b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(path: &[u8], prefix: &str, replacement: &str) -> String {
        let mut out = b"stale".to_vec();
        rewrite_prefix(path, prefix, replacement, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strip_keeps_a_leading_slash() {
        assert_eq!(rewrite(b"/api/x", "/api", "/"), "/x");
        assert_eq!(rewrite(b"/api", "/api", "/"), "/");
        assert_eq!(rewrite(b"/api/", "/api", "/"), "/");
        assert_eq!(rewrite(b"/api/x/y/", "/api", "/"), "/x/y/");
        assert_eq!(rewrite(b"/api/v1/x", "/api/v1", "/"), "/x");
    }

    #[test]
    fn configured_trailing_slash_on_the_prefix_is_ignored() {
        assert_eq!(rewrite(b"/api/x", "/api/", "/"), "/x");
        assert_eq!(rewrite(b"/api", "/api/", "/"), "/");
        assert_eq!(rewrite(b"/api/x", "/api/", "/v2"), "/v2/x");
    }

    #[test]
    fn rewrite_with_trailing_slash() {
        assert_eq!(rewrite(b"/api/x", "/api", "/v2/"), "/v2/x");
        assert_eq!(rewrite(b"/api", "/api", "/v2/"), "/v2/");
        assert_eq!(rewrite(b"/api/", "/api", "/v2/"), "/v2/");
    }

    #[test]
    fn rewrite_without_trailing_slash() {
        assert_eq!(rewrite(b"/api/x", "/api", "/v2"), "/v2/x");
        assert_eq!(rewrite(b"/api", "/api", "/v2"), "/v2");
        assert_eq!(rewrite(b"/api/", "/api", "/v2"), "/v2/");
    }

    #[test]
    fn root_prefix() {
        assert_eq!(rewrite(b"/x", "/", "/v2"), "/v2/x");
        assert_eq!(rewrite(b"/x", "/", "/v2/"), "/v2/x");
        assert_eq!(rewrite(b"/", "/", "/v2"), "/v2/");
        assert_eq!(rewrite(b"/x", "/", "/"), "/x");
        assert_eq!(rewrite(b"/", "/", "/"), "/");
    }

    #[test]
    fn empty_segments_after_the_seam_are_kept() {
        assert_eq!(rewrite(b"/api//x", "/api", "/"), "//x");
        assert_eq!(rewrite(b"/api//x", "/api", "/v2"), "/v2//x");
    }

    #[test]
    fn empty_replacement_still_yields_a_path() {
        assert_eq!(rewrite(b"/api", "/api", ""), "/");
        assert_eq!(rewrite(b"/api/x", "/api", ""), "/x");
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn a_path_outside_the_prefix_is_forwarded_unchanged() {
        assert_eq!(rewrite(b"/apix", "/api", "/"), "/apix");
        assert_eq!(rewrite(b"/other", "/api", "/"), "/other");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not match")]
    fn a_path_outside_the_prefix_is_a_bug_in_debug_builds() {
        rewrite(b"/apix", "/api", "/");
    }
}
