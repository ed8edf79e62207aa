//! One host tier: the routes reachable under one exact host, one wildcard suffix, or any host,
//! indexed by path so that a lookup costs a few hash probes whatever the number of routes.

use std::collections::HashMap;

use super::lengths::LengthSet;

/// Where a route sits in a tier, from its `path` / `path_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathKey {
    /// Matches every path: no path rule, or the prefix `/`. The shortest prefix of all.
    Root,
    /// A normalised exact path.
    Exact(Box<[u8]>),
    /// A normalised prefix without trailing slash, never empty (that is `Root`).
    Prefix(Box<[u8]>),
}

/// A run of route indices in the router's shared candidate list, in config order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    start: usize,
    end: usize,
}

impl Span {
    pub(crate) fn of(self, candidates: &[usize]) -> &[usize] {
        candidates.get(self.start..self.end).unwrap_or_default()
    }
}

/// Collects a tier while the router is built.
#[derive(Debug, Default)]
pub(crate) struct TierBuilder {
    exact: HashMap<Box<[u8]>, Vec<usize>>,
    prefixes: HashMap<Box<[u8]>, Vec<usize>>,
    root: Vec<usize>,
}

impl TierBuilder {
    /// Routes must be added in config order; that order breaks every remaining tie.
    pub(crate) fn add(&mut self, path: &PathKey, route: usize) {
        let list = match path {
            PathKey::Root => &mut self.root,
            PathKey::Exact(key) => self.exact.entry(key.clone()).or_default(),
            PathKey::Prefix(key) => self.prefixes.entry(key.clone()).or_default(),
        };
        // A route that names the same host twice (`a.com`, `A.com`) is one candidate.
        if list.last() != Some(&route) {
            list.push(route);
        }
    }

    /// Moves the candidate lists into the router's shared list, leaving spans behind.
    pub(crate) fn finish(self, candidates: &mut Vec<usize>) -> Tier {
        let mut freeze = |list: Vec<usize>| {
            let start = candidates.len();
            candidates.extend(list);
            Span {
                start,
                end: candidates.len(),
            }
        };
        let mut tier = Tier::default();
        for (key, list) in self.exact {
            tier.exact_lengths.insert(key.len());
            tier.paths.entry(key).or_default().exact = freeze(list);
        }
        for (key, list) in self.prefixes {
            tier.prefix_lengths.insert(key.len());
            tier.longest_prefix = tier.longest_prefix.max(key.len());
            tier.paths.entry(key).or_default().prefix = freeze(list);
        }
        tier.root = freeze(self.root);
        tier
    }
}

/// The routes stored under one path key. An exact path and a prefix that are the same bytes
/// share an entry, so the full request path costs one probe for both.
#[derive(Debug, Clone, Copy, Default)]
struct PathSpans {
    exact: Span,
    prefix: Span,
}

/// A compiled tier. See [`Tier::first`] for the order in which it offers candidates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tier {
    paths: HashMap<Box<[u8]>, PathSpans>,
    exact_lengths: LengthSet,
    prefix_lengths: LengthSet,
    /// No prefix key is longer, so longer boundaries of the request path need no probe.
    longest_prefix: usize,
    root: Span,
}

impl Tier {
    /// Offers the spans of routes whose path matches `path`, in precedence order, to `admit`
    /// and returns its first `Some`: the exact path, then each prefix from longest to shortest
    /// (probing only the path's segment boundaries, so `/api` never sees `/apix`), then root.
    pub(crate) fn first(
        &self,
        path: &[u8],
        mut admit: impl FnMut(Span) -> Option<usize>,
    ) -> Option<usize> {
        // Most keys carry only one of their two spans; an empty one is not worth a call.
        let mut offer = |span: Span| (span.start != span.end).then(|| admit(span)).flatten();
        let full = path.len();
        if self.exact_lengths.may_contain(full) || self.prefix_lengths.may_contain(full) {
            if let Some(spans) = self.paths.get(path) {
                let found = offer(spans.exact).or_else(|| offer(spans.prefix));
                if found.is_some() {
                    return found;
                }
            }
        }
        // The other boundaries are the '/'s of the path: `/api/x` probes `/api`.
        let searched = full.min(self.longest_prefix.saturating_add(1));
        let mut boundary = last_slash(&path[..searched]);
        while let Some(len) = boundary.filter(|&len| len > 0) {
            if self.prefix_lengths.may_contain(len) {
                let found = self.paths.get(&path[..len]).and_then(|s| offer(s.prefix));
                if found.is_some() {
                    return found;
                }
            }
            boundary = last_slash(&path[..len]);
        }
        offer(self.root)
    }
}

fn last_slash(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(routes: &[PathKey]) -> (Tier, Vec<usize>) {
        let mut builder = TierBuilder::default();
        for (i, path) in routes.iter().enumerate() {
            builder.add(path, i);
        }
        let mut candidates = Vec::new();
        (builder.finish(&mut candidates), candidates)
    }

    /// Every candidate the tier offers for `path`, in order.
    fn offered(routes: &[PathKey], path: &[u8]) -> Vec<usize> {
        let (tier, candidates) = tier(routes);
        let mut seen = Vec::new();
        let none = tier.first(path, |span| {
            seen.extend_from_slice(span.of(&candidates));
            None
        });
        assert_eq!(none, None);
        seen
    }

    fn exact(p: &str) -> PathKey {
        PathKey::Exact(p.as_bytes().into())
    }

    fn prefix(p: &str) -> PathKey {
        PathKey::Prefix(p.as_bytes().into())
    }

    #[test]
    fn order_is_exact_then_longest_prefix_then_root_then_config_order() {
        let routes = [
            PathKey::Root,
            prefix("/api"),
            exact("/api/v1/users"),
            prefix("/api/v1"),
            prefix("/api"),
            exact("/api/v1/users"),
            PathKey::Root,
        ];
        assert_eq!(offered(&routes, b"/api/v1/users"), [2, 5, 3, 1, 4, 0, 6]);
        assert_eq!(offered(&routes, b"/api/v1"), [3, 1, 4, 0, 6]);
        assert_eq!(offered(&routes, b"/api/"), [1, 4, 0, 6]);
        assert_eq!(offered(&routes, b"/apix"), [0, 6]);
    }

    #[test]
    fn exact_path_and_prefix_with_the_same_bytes() {
        let routes = [prefix("/api"), exact("/api"), PathKey::Root];
        assert_eq!(offered(&routes, b"/api"), [1, 0, 2]);
        assert_eq!(offered(&routes, b"/api/x"), [0, 2]);
    }

    #[test]
    fn prefixes_are_segment_aware() {
        let routes = [prefix("/api")];
        assert_eq!(offered(&routes, b"/api"), [0]);
        assert_eq!(offered(&routes, b"/api/"), [0]);
        assert_eq!(offered(&routes, b"/api/x/y"), [0]);
        assert_eq!(offered(&routes, b"/api//x"), [0]);
        assert!(offered(&routes, b"/apix").is_empty());
        assert!(offered(&routes, b"/ap").is_empty());
        assert!(offered(&routes, b"/").is_empty());
        assert!(offered(&routes, b"/v1/api").is_empty());
    }

    #[test]
    fn exact_paths_compare_whole_bytes() {
        let routes = [exact("/api")];
        assert_eq!(offered(&routes, b"/api"), [0]);
        assert!(offered(&routes, b"/api/").is_empty());
        assert!(offered(&routes, b"/API").is_empty());
    }

    #[test]
    fn paths_longer_than_every_prefix_are_probed_from_the_right_boundary() {
        let routes = [prefix("/a"), prefix("/a/bb")];
        assert_eq!(offered(&routes, b"/a/bb/cccccccc"), [1, 0]);
        assert_eq!(offered(&routes, b"/a/bbbbbbbbb"), [0]);
        assert_eq!(offered(&routes, b"/a/bb"), [1, 0]);
        assert_eq!(offered(&routes, b"/aaaaaaaa/bb"), Vec::<usize>::new());
    }

    #[test]
    fn root_offers_to_odd_paths_too() {
        let routes = [prefix("/a"), PathKey::Root];
        assert_eq!(offered(&routes, b""), [1]);
        assert_eq!(offered(&routes, b"*"), [1]);
        assert_eq!(offered(&routes, b"/"), [1]);
    }

    #[test]
    fn stops_at_the_first_admitted_candidate() {
        let (tier, candidates) = tier(&[prefix("/a"), exact("/a/b"), PathKey::Root]);
        let mut calls = 0;
        let found = tier.first(b"/a/b", |span| {
            calls += 1;
            span.of(&candidates).iter().copied().find(|&i| i == 0)
        });
        assert_eq!((found, calls), (Some(0), 2));
    }

    #[test]
    fn a_route_added_twice_is_one_candidate() {
        let mut builder = TierBuilder::default();
        builder.add(&prefix("/a"), 0);
        builder.add(&prefix("/a"), 0);
        builder.add(&prefix("/a"), 1);
        let mut candidates = Vec::new();
        let tier = builder.finish(&mut candidates);
        let mut seen = Vec::new();
        tier.first(b"/a", |span| {
            seen.extend_from_slice(span.of(&candidates));
            None
        });
        assert_eq!(seen, [0, 1]);
    }
}
