//! Raw file structs → typed [`Config`]. Collects every error with its key path instead of
//! stopping at the first, so one `--check` run shows the operator the whole list.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::file::{
    CircuitBreakerFile, File, HealthCheckFile, LimitsFile, OutlierFile, RetryFile, RouteFile,
    UpstreamFile,
};
use super::{
    AccessLog, AccessLogFormat, AccessLogPath, Action, Admin, Balancer, CircuitBreaker, Config,
    Driver, HashOn, HostHeader, Limits, Outlier, PanicMode, Pool, Retry, RetryOn, Route, Server,
    Upstream,
};
use crate::discovery::Nameserver;
use crate::router::{PathRule, RouteRule, Router};
use crate::upstream::retry::MAX_ATTEMPTS;

/// httparse needs a fixed header array; this bounds what `max_headers` may ask for.
pub const MAX_HEADERS_CEILING: usize = 1024;

#[derive(Default)]
pub(super) struct Errors(Vec<String>);

impl Errors {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn push(&mut self, key: impl std::fmt::Display, reason: impl std::fmt::Display) {
        self.0.push(format!("{key}: {reason}"));
    }

    pub(super) fn duration(&mut self, key: &str, value: &str) -> Duration {
        self.duration_from(key, value, Duration::from_nanos(1))
    }

    /// A duration that may be zero, e.g. "no wait".
    fn duration_or_zero(&mut self, key: &str, value: &str) -> Duration {
        self.duration_from(key, value, Duration::ZERO)
    }

    fn duration_from(&mut self, key: &str, value: &str, least: Duration) -> Duration {
        match humantime::parse_duration(value.trim()) {
            Ok(d) if d < least => {
                self.push(key, "must be greater than 0");
                Duration::from_secs(1)
            }
            Ok(d) => d,
            Err(e) => {
                self.push(
                    key,
                    format_args!(
                        "invalid duration {value:?} ({e}); use e.g. \"250ms\", \"30s\", \"5m\""
                    ),
                );
                Duration::from_secs(1)
            }
        }
    }
}

pub fn validate(raw: File) -> Result<Config, Vec<String>> {
    let mut errs = Errors(Vec::new());
    let server = server(&raw, &mut errs);
    let nameserver = super::resolve::nameserver(
        "server.resolver",
        raw.server.resolver.as_deref(),
        Nameserver::System,
        &mut errs,
    );
    let answers = super::resolve::lookup_all(&raw.upstreams, nameserver);
    let upstreams: Vec<Upstream> = raw
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| upstream(i, u, nameserver, &answers, &mut errs))
        .collect();

    let mut by_name = HashMap::new();
    for (i, u) in upstreams.iter().enumerate() {
        if by_name.insert(u.name.as_str(), i).is_some() {
            errs.push(
                format_args!("upstreams[{i}].name"),
                format_args!("duplicate upstream name {:?}", u.name),
            );
        }
    }

    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut rules = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let (route, rule) = route(i, r, &by_name, &upstreams, &mut errs);
        routes.push(route);
        rules.push(rule);
    }
    let mut names = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        if let Some(first) = names.insert(r.name.as_str(), i) {
            errs.push(
                format_args!("routes[{i}].name"),
                format_args!("{:?} is already the name of routes[{first}]", r.name),
            );
        }
    }

    let router = match Router::build(&rules) {
        Ok(r) => Some(r),
        Err(rule_errors) => {
            for e in rule_errors {
                errs.push(format_args!("routes[{}].{}", e.route, e.field), e.reason);
            }
            None
        }
    };
    let admin = raw.admin.as_ref().and_then(|a| match a.listen.parse() {
        Ok(listen) => Some(Admin { listen }),
        Err(_) => {
            errs.push(
                "admin.listen",
                format_args!("{:?} is not an ip:port address", a.listen),
            );
            None
        }
    });
    if let Some(a) = &admin {
        if server.listen.contains(&a.listen) {
            errs.push("admin.listen", "must not be one of server.listen");
        }
    }
    let access_log = raw.access_log.as_ref().map(|l| AccessLog {
        format: match l.format.as_str() {
            "json" => AccessLogFormat::Json,
            "combined" => AccessLogFormat::Combined,
            other => {
                errs.push(
                    "access_log.format",
                    format_args!("unknown format {other:?}; expected \"json\" or \"combined\""),
                );
                AccessLogFormat::Json
            }
        },
        path: match l.path.as_str() {
            "-" => AccessLogPath::Stdout,
            "" => {
                errs.push("access_log.path", "must be a file path or \"-\" for stdout");
                AccessLogPath::Stdout
            }
            p => AccessLogPath::File(p.into()),
        },
    });
    match router {
        Some(router) if errs.0.is_empty() => Ok(Config {
            server,
            upstreams,
            routes,
            router,
            admin,
            access_log,
            source: raw,
        }),
        _ => Err(errs.0),
    }
}

fn server(raw: &File, errs: &mut Errors) -> Server {
    let s = &raw.server;
    if s.listen.is_empty() {
        errs.push("server.listen", "at least one address is required");
    }
    let mut listen = Vec::with_capacity(s.listen.len());
    for (i, a) in s.listen.iter().enumerate() {
        match resolve(a) {
            Ok(addrs) => {
                for addr in addrs {
                    if listen.contains(&addr) {
                        errs.push(
                            format_args!("server.listen[{i}]"),
                            format_args!("{addr} is listed twice"),
                        );
                    } else {
                        listen.push(addr);
                    }
                }
            }
            Err(e) => errs.push(format_args!("server.listen[{i}]"), e),
        }
    }
    let driver = match s.driver.as_str() {
        "auto" => Driver::Auto,
        "io_uring" => Driver::IoUring,
        "epoll" => Driver::Epoll,
        other => {
            errs.push(
                "server.driver",
                format_args!(
                    "unknown driver {other:?}; expected \"auto\", \"io_uring\" or \"epoll\""
                ),
            );
            Driver::Auto
        }
    };
    Server {
        listen,
        workers: s.workers,
        driver,
        via: s.via,
        drain_timeout: errs.duration("server.drain_timeout", &s.drain_timeout),
        limits: limits(&s.limits, errs),
    }
}

fn limits(l: &LimitsFile, errs: &mut Errors) -> Limits {
    if l.max_headers == 0 || l.max_headers > MAX_HEADERS_CEILING {
        errs.push(
            "server.limits.max_headers",
            format_args!("must be between 1 and {MAX_HEADERS_CEILING}"),
        );
    }
    if l.max_header_bytes < 256 {
        errs.push("server.limits.max_header_bytes", "must be at least 256");
    }
    if l.max_uri_bytes < 16 {
        errs.push("server.limits.max_uri_bytes", "must be at least 16");
    }
    if l.max_connections == 0 {
        errs.push("server.limits.max_connections", "must be at least 1");
    }
    Limits {
        max_headers: l.max_headers.clamp(1, MAX_HEADERS_CEILING),
        max_header_bytes: l.max_header_bytes,
        max_uri_bytes: l.max_uri_bytes,
        max_body_bytes: l.max_body_bytes,
        header_read_timeout: errs
            .duration("server.limits.header_read_timeout", &l.header_read_timeout),
        body_read_timeout: errs.duration("server.limits.body_read_timeout", &l.body_read_timeout),
        send_timeout: errs.duration("server.limits.send_timeout", &l.send_timeout),
        keepalive_timeout: errs.duration("server.limits.keepalive_timeout", &l.keepalive_timeout),
        max_connections: l.max_connections,
    }
}

fn upstream(
    i: usize,
    u: &UpstreamFile,
    nameserver: Nameserver,
    answers: &super::resolve::Answers,
    errs: &mut Errors,
) -> Upstream {
    let key = |field: &str| format!("upstreams[{i}].{field}");
    if u.name.is_empty() {
        errs.push(key("name"), "must not be empty");
    }
    let balancer = Balancer::parse(&u.balancer).unwrap_or_else(|| {
        errs.push(
            key("balancer"),
            format_args!(
                "unknown balancer {:?}; expected \"round_robin\", \"least_conn\", \"random\", \"p2c\", \"ewma\" or \"consistent_hash\"",
                u.balancer
            ),
        );
        Balancer::RoundRobin
    });
    let hash_on = match (&u.hash_on, balancer) {
        (None, _) => HashOn::Ip,
        (Some(h), Balancer::ConsistentHash) => HashOn::parse(h).unwrap_or_else(|e| {
            errs.push(key("hash_on"), e);
            HashOn::Ip
        }),
        (Some(_), _) => {
            errs.push(
                key("hash_on"),
                "applies only to balancer = \"consistent_hash\"",
            );
            HashOn::Ip
        }
    };
    let panic_mode = match u.panic_mode.as_deref() {
        None | Some("fail_open") => PanicMode::FailOpen,
        Some("fail_closed") => PanicMode::FailClosed,
        Some(other) => {
            errs.push(
                key("panic_mode"),
                format_args!("unknown mode {other:?}; expected \"fail_open\" or \"fail_closed\""),
            );
            PanicMode::FailOpen
        }
    };
    let health_check = u
        .health_check
        .as_ref()
        .map(|h| health_check(&key("health_check"), h, errs));
    if u.targets.is_empty() {
        errs.push(key("targets"), "at least one target is required");
    }
    let (targets, resolve) = super::resolve::targets(&key, u, nameserver, answers, errs);
    let host_header = match u.host_header.as_str() {
        "preserve" => HostHeader::Preserve,
        "target" => HostHeader::Target,
        literal if is_valid_host(literal) => HostHeader::Literal(literal.to_string()),
        other => {
            errs.push(
                key("host_header"),
                format_args!("{other:?} is neither \"preserve\", \"target\" nor a valid host"),
            );
            HostHeader::Preserve
        }
    };
    Upstream {
        name: u.name.clone(),
        balancer,
        targets,
        resolve,
        connect_timeout: errs.duration(&key("connect_timeout"), &u.connect_timeout),
        read_timeout: errs.duration(&key("read_timeout"), &u.read_timeout),
        write_timeout: errs.duration(&key("write_timeout"), &u.write_timeout),
        host_header,
        pool: Pool {
            max_idle_per_target: u.pool.max_idle_per_target,
            idle_timeout: errs.duration(&key("pool.idle_timeout"), &u.pool.idle_timeout),
        },
        circuit_breaker: circuit_breaker(&key("circuit_breaker"), u.circuit_breaker.as_ref(), errs),
        hash_on,
        panic_mode,
        health_check,
        outlier: u
            .outlier
            .as_ref()
            .map(|o| outlier(&key("outlier"), o, errs)),
        retry: u
            .retry
            .as_ref()
            .map(|r| retry(&key("retry"), Retry::default(), r, errs)),
    }
}

/// The keys `file` sets, laid over `base` (the defaults, or a route's upstream's policy).
fn retry(key: &str, base: Retry, file: &RetryFile, errs: &mut Errors) -> Retry {
    let mut r = base;
    let at = |name: &str| format!("{key}.{name}");
    if let Some(n) = file.attempts {
        if (1..=MAX_ATTEMPTS).contains(&n) {
            r.attempts = n;
        } else {
            errs.push(
                at("attempts"),
                format_args!("must be between 1 and {MAX_ATTEMPTS} (1 turns retries off)"),
            );
        }
    }
    if let Some(on) = &file.on {
        match RetryOn::parse(on) {
            Ok(_) if on.is_empty() => errs.push(
                at("on"),
                "lists no condition; set attempts = 1 to turn retries off",
            ),
            Ok(set) => r.on = set,
            Err(e) => errs.push(at("on"), e),
        }
    }
    if let Some(t) = &file.per_try_timeout {
        r.per_try_timeout = Some(errs.duration(&at("per_try_timeout"), t));
    }
    if let Some(t) = &file.backoff_base {
        r.backoff_base = errs.duration_or_zero(&at("backoff_base"), t);
    }
    if let Some(t) = &file.backoff_max {
        r.backoff_max = errs.duration_or_zero(&at("backoff_max"), t);
    }
    if r.backoff_max < r.backoff_base {
        errs.push(
            at("backoff_max"),
            format_args!(
                "{:?} is shorter than backoff_base ({:?})",
                r.backoff_max, r.backoff_base
            ),
        );
    }
    if let Some(p) = file.budget_percent {
        if (0.0..=100.0).contains(&p) {
            r.budget_percent = p;
        } else {
            errs.push(at("budget_percent"), "must be between 0 and 100");
        }
    }
    if let Some(n) = file.min_retry_concurrency {
        r.min_retry_concurrency = n;
    }
    if let Some(n) = file.max_replay_body {
        r.max_replay_body = n;
    }
    if let Some(b) = file.retry_non_idempotent {
        r.retry_non_idempotent = b;
    }
    r
}

fn outlier(key: &str, o: &OutlierFile, errs: &mut Errors) -> Outlier {
    if o.consecutive_failures == 0 {
        errs.push(
            format_args!("{key}.consecutive_failures"),
            "must be at least 1",
        );
    }
    if o.max_ejection_percent > 100 {
        errs.push(
            format_args!("{key}.max_ejection_percent"),
            "must be between 0 and 100",
        );
    }
    Outlier {
        consecutive_failures: o.consecutive_failures.max(1),
        base_ejection_time: errs
            .duration(&format!("{key}.base_ejection_time"), &o.base_ejection_time),
        max_ejection_percent: o.max_ejection_percent.min(100),
    }
}

fn health_check(key: &str, h: &HealthCheckFile, errs: &mut Errors) -> crate::health::CheckConfig {
    let expected_statuses = crate::health::CheckConfig::parse_statuses(&h.expected_statuses)
        .unwrap_or_else(|e| {
            errs.push(format_args!("{key}.expected_statuses"), e);
            vec![200..=399]
        });
    let config = crate::health::CheckConfig {
        path: h.path.clone(),
        host: h.host.clone(),
        interval: errs.duration(&format!("{key}.interval"), &h.interval),
        timeout: errs.duration(&format!("{key}.timeout"), &h.timeout),
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        expected_statuses,
    };
    if let Err(e) = config.validate() {
        errs.push(key, e);
    }
    config
}

fn circuit_breaker(
    key: &str,
    cb: Option<&CircuitBreakerFile>,
    errs: &mut Errors,
) -> CircuitBreaker {
    let Some(cb) = cb else {
        return CircuitBreaker::default();
    };
    let mut limit = |name: &str, v: Option<u32>, zero_ok: bool| match v {
        Some(0) if !zero_ok => {
            errs.push(
                format_args!("{key}.{name}"),
                "must be at least 1 (leave it out for no limit)",
            );
            u32::MAX
        }
        Some(n) => n,
        None => u32::MAX,
    };
    CircuitBreaker {
        max_connections: limit("max_connections", cb.max_connections, false),
        // 0 is meaningful: never wait for a connection, answer 503 at once.
        max_pending: limit("max_pending", cb.max_pending, true),
        max_requests: limit("max_requests", cb.max_requests, false),
    }
}

fn route(
    i: usize,
    r: &RouteFile,
    by_name: &HashMap<&str, usize>,
    upstreams: &[Upstream],
    errs: &mut Errors,
) -> (Route, RouteRule) {
    let key = |field: &str| format!("routes[{i}].{field}");
    let name = r.name.clone().unwrap_or_else(|| format!("routes[{i}]"));
    let path = match (&r.path, &r.path_prefix) {
        (Some(_), Some(_)) => {
            errs.push(key("path"), "set either path or path_prefix, not both");
            PathRule::Any
        }
        (Some(p), None) => PathRule::Exact(p.clone()),
        (None, Some(p)) => PathRule::Prefix(p.clone()),
        (None, None) => PathRule::Any,
    };
    let rewrite = match (&path, r.strip_prefix, &r.rewrite_prefix) {
        (_, true, Some(_)) => {
            errs.push(
                key("rewrite_prefix"),
                "set either strip_prefix or rewrite_prefix, not both",
            );
            None
        }
        (PathRule::Prefix(p), true, None) => Some((matched_prefix(p), "/".to_string())),
        (PathRule::Prefix(p), false, Some(to)) => {
            if !to.starts_with('/') {
                errs.push(key("rewrite_prefix"), "must start with '/'");
            }
            Some((matched_prefix(p), to.clone()))
        }
        (_, true, None) => {
            errs.push(key("strip_prefix"), "needs path_prefix");
            None
        }
        (_, false, Some(_)) => {
            errs.push(key("rewrite_prefix"), "needs path_prefix");
            None
        }
        (_, false, None) => None,
    };
    let action = match (&r.upstream, &r.direct) {
        (Some(_), Some(_)) => {
            errs.push(key("direct"), "set either upstream or direct, not both");
            None
        }
        (None, None) => {
            errs.push(
                name_or_index(i, r),
                "needs either upstream = \"NAME\" or direct = { status, body }",
            );
            None
        }
        (Some(u), None) => match by_name.get(u.as_str()) {
            Some(&upstream) => Some(Action::Proxy { upstream, rewrite }),
            None => {
                errs.push(key("upstream"), format_args!("no upstream named {u:?}"));
                None
            }
        },
        (None, Some(d)) => {
            if !(200..=599).contains(&d.status) {
                errs.push(key("direct.status"), "must be between 200 and 599");
            }
            if matches!(d.status, 204 | 304) && !d.body.is_empty() {
                errs.push(
                    key("direct.body"),
                    format_args!("a {} response has no body", d.status),
                );
            }
            if r.strip_prefix || r.rewrite_prefix.is_some() {
                errs.push(
                    key("direct"),
                    "strip_prefix and rewrite_prefix apply only to upstream routes",
                );
            }
            if !crate::http::token::is_field_value(d.content_type.as_bytes()) {
                errs.push(key("direct.content_type"), "is not a valid header value");
            }
            Some(Action::Direct {
                status: d.status,
                body: bytes::Bytes::from(d.body.clone().into_bytes()),
                content_type: d.content_type.clone(),
            })
        }
    };
    let timeout = r
        .timeout
        .as_deref()
        .map(|t| errs.duration(&key("timeout"), t));
    if timeout.is_some() && r.direct.is_some() {
        errs.push(key("timeout"), "applies only to routes with an upstream");
    }
    let retry = route_retry(i, r, &action, upstreams, errs);
    let route = Route {
        name,
        timeout,
        retry,
        action: action.unwrap_or(Action::Direct {
            status: 500,
            body: bytes::Bytes::new(),
            content_type: String::new(),
        }),
    };
    let rule = RouteRule {
        hosts: r.hosts.clone(),
        path,
        methods: r.methods.clone(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    (route, rule)
}

/// A `path_prefix` as requests are matched against it (normalised: `/%7Euser` is `/~user`),
/// which is what a rewrite must take off. One that does not normalise is reported by the
/// router and kept as written here.
fn matched_prefix(prefix: &str) -> String {
    crate::router::path_key(prefix, true)
        .ok()
        .and_then(|key| String::from_utf8(key.into_vec()).ok())
        .unwrap_or_else(|| prefix.to_string())
}

/// The route's retry policy: its `[retry]` keys over its upstream's policy.
fn route_retry(
    i: usize,
    r: &RouteFile,
    action: &Option<Action>,
    upstreams: &[Upstream],
    errs: &mut Errors,
) -> Option<Retry> {
    let key = |field: &str| format!("routes[{i}].{field}");
    let upstream = match action {
        Some(Action::Proxy { upstream, .. }) => upstreams.get(*upstream),
        _ => None,
    };
    if r.direct.is_some() {
        for (set, field) in [
            (r.retry.is_some(), "retry"),
            (r.retry_non_idempotent.is_some(), "retry_non_idempotent"),
        ] {
            if set {
                errs.push(key(field), "applies only to routes with an upstream");
            }
        }
        return None;
    }
    let base = upstream.and_then(|u| u.retry.clone());
    let mut policy = match &r.retry {
        Some(file) => Some(retry(&key("retry"), base.unwrap_or_default(), file, errs)),
        None => base,
    };
    if let Some(allow) = r.retry_non_idempotent {
        if r.retry
            .as_ref()
            .is_some_and(|f| f.retry_non_idempotent.is_some())
        {
            errs.push(
                key("retry_non_idempotent"),
                format_args!("is also set in routes[{i}].retry; set it in one place"),
            );
        }
        if let Some(p) = &mut policy {
            p.retry_non_idempotent = allow;
        }
    }
    policy.filter(|p| p.attempts > 1)
}

fn name_or_index(i: usize, r: &RouteFile) -> String {
    match &r.name {
        Some(n) => format!("routes[{i}] ({n:?})"),
        None => format!("routes[{i}]"),
    }
}

/// A listen address: `ip:port` or `name:port`, resolved now. Blocking: load time only.
fn resolve(spec: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if !spec.contains(':') {
        return Err(format!("{spec:?} needs a port, as in \"{spec}:80\""));
    }
    match spec.to_socket_addrs() {
        Ok(addrs) => {
            let mut out: Vec<SocketAddr> = Vec::new();
            for a in addrs {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            if out.is_empty() {
                Err(format!("{spec:?} resolves to no address"))
            } else {
                Ok(out)
            }
        }
        Err(e) => Err(format!("cannot resolve {spec:?}: {e}")),
    }
}

fn is_valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}
