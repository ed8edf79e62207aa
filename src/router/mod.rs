//! PLACEHOLDER: replaced by the compiled router from the `router` branch.
pub enum PathRule {
    Any,
    Exact(String),
    Prefix(String),
}
pub struct RouteRule {
    pub hosts: Vec<String>,
    pub path: PathRule,
    pub methods: Vec<String>,
    pub headers: Vec<(String, String)>,
}
#[derive(Debug)]
pub struct RuleError {
    pub route: usize,
    pub field: String,
    pub reason: String,
}
#[derive(Debug)]
pub struct Router {
    rules: Vec<(
        Vec<String>,
        Option<(bool, String)>,
        Vec<String>,
        Vec<(String, String)>,
    )>,
}
pub struct RouteRequest<'a> {
    pub host: &'a [u8],
    pub path: &'a [u8],
    pub method: &'a [u8],
    pub headers: &'a dyn HeaderLookup,
}
pub trait HeaderLookup {
    fn contains(&self, name: &str, value: &[u8]) -> bool;
}
impl Router {
    pub fn build(rules: &[RouteRule]) -> Result<Router, Vec<RuleError>> {
        Ok(Router {
            rules: rules
                .iter()
                .map(|r| {
                    let p = match &r.path {
                        PathRule::Any => None,
                        PathRule::Exact(p) => Some((true, p.clone())),
                        PathRule::Prefix(p) => Some((false, p.trim_end_matches('/').to_string())),
                    };
                    (r.hosts.clone(), p, r.methods.clone(), r.headers.clone())
                })
                .collect(),
        })
    }
    pub fn find(&self, req: &RouteRequest<'_>) -> Option<usize> {
        self.rules
            .iter()
            .position(|(hosts, path, methods, headers)| {
                let host = req.host.split(|&b| b == b':').next().unwrap_or(b"");
                (hosts.is_empty()
                    || hosts
                        .iter()
                        .any(|h| h.as_bytes().eq_ignore_ascii_case(host)))
                    && match path {
                        None => true,
                        Some((true, p)) => p.as_bytes() == req.path,
                        Some((false, p)) => {
                            req.path.starts_with(p.as_bytes())
                                && (req.path.len() == p.len()
                                    || req.path[p.len()] == b'/'
                                    || p.is_empty())
                        }
                    }
                    && (methods.is_empty() || methods.iter().any(|m| m.as_bytes() == req.method))
                    && headers
                        .iter()
                        .all(|(n, v)| req.headers.contains(n, v.as_bytes()))
            })
    }
}
pub fn rewrite_prefix(path: &[u8], prefix: &str, replacement: &str, out: &mut Vec<u8>) {
    out.clear();
    let rest = &path[prefix.trim_end_matches('/').len().min(path.len())..];
    out.extend_from_slice(replacement.trim_end_matches('/').as_bytes());
    if !rest.starts_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rest);
}
