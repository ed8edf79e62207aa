//! The config file as written: raw `serde` structs, one per TOML table.
//!
//! Every struct denies unknown keys so a typo is an error, not a silently ignored setting.
//! Defaults live here, next to the key they belong to, and are repeated in `config.toml`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub server: ServerFile,
    #[serde(default)]
    pub upstreams: Vec<UpstreamFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    pub admin: Option<AdminFile>,
    pub access_log: Option<AccessLogFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    #[serde(default = "default_access_log_format")]
    pub format: String,
    #[serde(default = "default_access_log_path")]
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Vec<String>,
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "default_driver")]
    pub driver: String,
    #[serde(default = "default_true")]
    pub via: bool,
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: String,
    /// DNS server ("ip:port") for target names; absent or "system": getaddrinfo.
    pub resolver: Option<String>,
    #[serde(default)]
    pub limits: LimitsFile,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
    pub header_read_timeout: String,
    pub body_read_timeout: String,
    pub send_timeout: String,
    pub keepalive_timeout: String,
    pub max_connections: usize,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            max_headers: 100,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout: "10s".into(),
            body_read_timeout: "30s".into(),
            send_timeout: "30s".into(),
            keepalive_timeout: "60s".into(),
            max_connections: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub name: String,
    #[serde(default = "default_balancer")]
    pub balancer: String,
    pub targets: Vec<TargetFile>,
    /// Re-resolve `name:port` targets this often; absent: only when the config loads.
    pub resolve_interval: Option<String>,
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: String,
    /// Overrides `server.resolver` for this upstream's names.
    pub resolver: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "default_io_timeout")]
    pub read_timeout: String,
    #[serde(default = "default_io_timeout")]
    pub write_timeout: String,
    #[serde(default = "default_host_header")]
    pub host_header: String,
    #[serde(default)]
    pub pool: PoolFile,
    pub circuit_breaker: Option<CircuitBreakerFile>,
    /// For `consistent_hash`: "ip", "path", "header:NAME" or "cookie:NAME".
    pub hash_on: Option<String>,
    /// When every target is unhealthy: "fail_open" (send anyway) or "fail_closed" (503).
    pub panic_mode: Option<String>,
    pub health_check: Option<HealthCheckFile>,
    pub outlier: Option<OutlierFile>,
    pub retry: Option<RetryFile>,
}

/// `[upstreams.retry]` and `[routes.retry]`. Every key is optional: a route's table overrides
/// its upstream's key by key, and what neither sets takes the default in `upstream/retry.rs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub attempts: Option<u32>,
    pub on: Option<Vec<String>>,
    pub per_try_timeout: Option<String>,
    pub backoff_base: Option<String>,
    pub backoff_max: Option<String>,
    pub budget_percent: Option<f64>,
    pub min_retry_concurrency: Option<u32>,
    pub max_replay_body: Option<u64>,
    pub retry_non_idempotent: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierFile {
    pub consecutive_failures: u32,
    pub base_ejection_time: String,
    pub max_ejection_percent: u32,
}

impl Default for OutlierFile {
    fn default() -> Self {
        OutlierFile {
            consecutive_failures: 5,
            base_ejection_time: "30s".into(),
            max_ejection_percent: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckFile {
    pub path: String,
    pub host: Option<String>,
    pub interval: String,
    pub timeout: String,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expected_statuses: Vec<String>,
}

impl Default for HealthCheckFile {
    fn default() -> Self {
        HealthCheckFile {
            path: "/".into(),
            host: None,
            interval: "5s".into(),
            timeout: "2s".into(),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expected_statuses: vec!["200-399".into()],
        }
    }
}

/// Limits enforced across all shards; absent keys are unlimited.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerFile {
    pub max_connections: Option<u32>,
    pub max_pending: Option<u32>,
    pub max_requests: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub addr: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolFile {
    pub max_idle_per_target: usize,
    pub idle_timeout: String,
}

impl Default for PoolFile {
    fn default() -> Self {
        PoolFile {
            max_idle_per_target: 64,
            idle_timeout: "60s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub upstream: Option<String>,
    #[serde(default)]
    pub strip_prefix: bool,
    pub rewrite_prefix: Option<String>,
    pub direct: Option<DirectFile>,
    /// Bounds the whole exchange with the upstream, e.g. "15s". Absent: only the upstream's
    /// connect/read/write timeouts apply.
    pub timeout: Option<String>,
    /// Overrides the upstream's `[retry]` key by key.
    pub retry: Option<RetryFile>,
    /// The same as `retry.retry_non_idempotent`, where an operator may look for it first.
    pub retry_non_idempotent: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectFile {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_driver() -> String {
    "auto".into()
}
fn default_true() -> bool {
    true
}
fn default_balancer() -> String {
    "round_robin".into()
}
fn default_resolve_timeout() -> String {
    "5s".into()
}
fn default_connect_timeout() -> String {
    "1s".into()
}
fn default_io_timeout() -> String {
    "30s".into()
}
fn default_host_header() -> String {
    "preserve".into()
}
fn default_weight() -> u32 {
    1
}
fn default_content_type() -> String {
    "text/plain".into()
}
fn default_drain_timeout() -> String {
    "30s".into()
}
fn default_access_log_format() -> String {
    "json".into()
}
fn default_access_log_path() -> String {
    "-".into()
}
