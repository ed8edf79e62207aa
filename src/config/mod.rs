//! Configuration: the TOML file ([`mod@file`]) is validated into typed, resolved values
//! ([`validate`]). Every problem is reported with its key path, all at once, like `nginx -t`.

pub mod file;
mod resolve;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::token::is_token;
use crate::router::Router;

pub use validate::{validate, MAX_HEADERS_CEILING};

/// A config that parsed and validated: everything a snapshot is built from. Cloned when the
/// resolver brings new addresses for a name, to build a snapshot that differs only in those.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub router: Router,
    /// Absent: no admin listener.
    pub admin: Option<Admin>,
    /// Absent: no access log.
    pub access_log: Option<AccessLog>,
    /// The file as parsed, for `GET /config`.
    pub source: file::File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    pub path: AccessLogPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// The NCSA combined format, as nginx and Apache write it.
    Combined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogPath {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    /// 0 means one shard per CPU in the process's affinity set.
    pub workers: usize,
    pub driver: Driver,
    pub via: bool,
    /// How long a graceful shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring where the kernel allows it, epoll otherwise.
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub send_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub balancer: Balancer,
    /// The addresses to balance over, in `targets[]` order: a literal `ip:port` as written,
    /// a `name:port` as its addresses now (see [`Upstream::set_addresses`]).
    pub targets: Vec<Target>,
    /// Which targets are names and how they are resolved.
    pub resolve: crate::discovery::Resolve,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub host_header: HostHeader,
    pub pool: Pool,
    pub circuit_breaker: CircuitBreaker,
    /// What `consistent_hash` hashes.
    pub hash_on: HashOn,
    pub panic_mode: PanicMode,
    /// Active checks; None when the upstream has no `[health_check]`.
    pub health_check: Option<crate::health::CheckConfig>,
    /// Passive health; None when the upstream has no `[outlier]`.
    pub outlier: Option<Outlier>,
    /// None when the upstream has no `[retry]`; routes start from it.
    pub retry: Option<Retry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlier {
    pub consecutive_failures: u32,
    pub base_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

/// Process-wide caps for one upstream (`u32::MAX` = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Open connections to each target, pooled ones included.
    pub max_connections: u32,
    /// Requests waiting for a connection while a target is at `max_connections`.
    pub max_pending: u32,
    /// Requests in flight to the upstream.
    pub max_requests: u32,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            max_connections: u32::MAX,
            max_pending: u32::MAX,
            max_requests: u32::MAX,
        }
    }
}

pub use crate::balancer::Algorithm as Balancer;
pub use crate::upstream::retry::{Policy as Retry, RetryOn};

/// What to do when every target of an upstream is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicMode {
    /// Send to the targets anyway: a health check that is wrong should not take a service down.
    FailOpen,
    /// Answer 503.
    FailClosed,
}

/// What a `consistent_hash` upstream hashes to keep a key on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client address.
    Ip,
    /// A request header (name stored lowercase).
    Header(String),
    /// A cookie, by exact name.
    Cookie(String),
    /// The normalised path, without the query.
    Path,
}

impl HashOn {
    pub fn parse(s: &str) -> Result<HashOn, String> {
        match s.split_once(':') {
            None if s == "ip" => Ok(HashOn::Ip),
            None if s == "path" => Ok(HashOn::Path),
            Some(("header", name)) if is_token(name.as_bytes()) => Ok(HashOn::Header(name.to_ascii_lowercase())),
            Some(("cookie", name)) if is_token(name.as_bytes()) => Ok(HashOn::Cookie(name.to_string())),
            _ => Err(format!(
                "{s:?} is not a hash key; expected \"ip\", \"path\", \"header:NAME\" or \"cookie:NAME\""
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Index of the `targets[]` entry it comes from.
    pub entry: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// Forward the client's Host unchanged.
    Preserve,
    /// Use the target as written: `name:port` for a DNS target, else its `ip:port`.
    Target,
    Literal(String),
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub max_idle_per_target: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub action: Action,
    /// The whole upstream exchange, from routing to the last response byte.
    pub timeout: Option<Duration>,
    /// The route's `[retry]` over its upstream's; None when a request gets one try.
    pub retry: Option<Retry>,
}

#[derive(Debug, Clone)]
pub enum Action {
    Proxy {
        /// Index into [`Config::upstreams`].
        upstream: usize,
        /// `(matched prefix, replacement)` applied to the path before forwarding.
        rewrite: Option<(String, String)>,
    },
    Direct {
        status: u16,
        body: bytes::Bytes,
        content_type: String,
    },
}

/// Everything wrong with a config file, each entry `key.path: reason`.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub errors: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", self.file.display(), e)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates the file, and hashes its bytes (FNV-1a, 16 hex digits:
    /// enough to tell two configs apart in metrics and logs). Blocking (file I/O, and DNS for
    /// target names, each within its upstream's `resolve_timeout`): never call it from a shard.
    pub fn load_with_hash(path: &Path) -> Result<(Config, String), ConfigError> {
        let fail = |e: String| ConfigError {
            file: path.to_path_buf(),
            errors: vec![e],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let config = Config::parse(&text).map_err(|errors| ConfigError {
            file: path.to_path_buf(),
            errors,
        })?;
        Ok((config, format!("{hash:016x}")))
    }

    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let de = toml::Deserializer::new(text);
        let raw: file::File = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let mut msg = inner.message().trim().to_string();
            if let Some(span) = inner.span() {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                msg = format!("{msg} (line {line})");
            }
            if key == "." || key.is_empty() {
                vec![msg]
            } else {
                vec![format!("{key}: {msg}")]
            }
        })?;
        validate(raw)
    }
}
