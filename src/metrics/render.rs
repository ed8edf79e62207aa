//! The scrape: every family in a fixed order, every series sorted by its labels, so two
//! scrapes diff line by line.

use std::sync::atomic::Ordering::Relaxed;
use std::time::UNIX_EPOCH;

use super::histogram::HistogramTotals;
use super::route::{RouteTotals, CLASSES};
use super::target::{TargetTotals, TimeoutPhase, UpstreamErrorKind};
use super::text::{family, sample};
use super::{Metrics, ProcessInfo};

impl Metrics {
    /// Writes the whole exposition into `out` (cleared first). Runs on the admin listener;
    /// allocates, and reads the shards' counters without stopping them.
    pub fn render(&self, out: &mut String, info: &ProcessInfo<'_>) {
        out.clear();
        self.render_process(out, info);
        self.render_routes(out);
        self.render_targets(out);
        self.render_shards(out);

        let name = "shardgate_access_log_dropped_total";
        family(
            out,
            name,
            "counter",
            "Access log lines dropped because the writer fell behind.",
        );
        sample(out, name, "", &[], info.access_log_dropped);

        let name = "shardgate_draining";
        family(
            out,
            name,
            "gauge",
            "1 while a graceful shutdown is in progress, else 0.",
        );
        sample(out, name, "", &[], u8::from(info.draining));
    }

    fn render_process(&self, out: &mut String, info: &ProcessInfo<'_>) {
        let name = "shardgate_build_info";
        family(
            out,
            name,
            "gauge",
            "Shardgate build; the value is always 1.",
        );
        sample(out, name, "", &[("version", info.version)], 1);

        let name = "shardgate_config_info";
        family(
            out,
            name,
            "gauge",
            "Hash of the config file in use; the value is always 1.",
        );
        sample(out, name, "", &[("hash", info.config_hash)], 1);

        let name = "shardgate_config_loaded_timestamp_seconds";
        family(
            out,
            name,
            "gauge",
            "Unix time at which the config in use was loaded.",
        );
        let millis = info
            .config_loaded_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        sample(out, name, "", &[], millis as f64 / 1e3);

        let name = "shardgate_reloads_total";
        family(out, name, "counter", "Config reloads, by result.");
        let succeeded = self.reloads_succeeded.load(Relaxed);
        let failed = self.reloads_failed.load(Relaxed);
        sample(out, name, "", &[("result", "failure")], failed);
        sample(out, name, "", &[("result", "success")], succeeded);
    }

    fn render_routes(&self, out: &mut String) {
        let routes: Vec<(String, RouteTotals)> = self
            .routes()
            .iter()
            .map(|r| (r.name().to_string(), r.totals()))
            .collect();

        let name = "shardgate_requests_total";
        family(
            out,
            name,
            "counter",
            "Requests answered, by route and status class.",
        );
        for (route, t) in &routes {
            for (class, n) in CLASSES.iter().zip(t.requests) {
                sample(out, name, "", &[("route", route), ("class", class)], n);
            }
        }

        let name = "shardgate_request_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Time from a request's first byte to its response's last byte, by route.",
        );
        for (route, t) in &routes {
            histogram(out, name, &[("route", route)], &t.duration);
        }

        let name = "shardgate_bytes_received_total";
        family(
            out,
            name,
            "counter",
            "Request bytes received from clients (head and body), by route.",
        );
        for (route, t) in &routes {
            sample(out, name, "", &[("route", route)], t.bytes_received);
        }

        let name = "shardgate_bytes_sent_total";
        family(
            out,
            name,
            "counter",
            "Response bytes sent to clients (head and body), by route.",
        );
        for (route, t) in &routes {
            sample(out, name, "", &[("route", route)], t.bytes_sent);
        }

        let name = "shardgate_route_timeouts_total";
        family(
            out,
            name,
            "counter",
            "Exchanges cut short by their route's timeout, by route.",
        );
        for (route, t) in &routes {
            sample(out, name, "", &[("route", route)], t.timeouts);
        }
    }

    fn render_targets(&self, out: &mut String) {
        let targets: Vec<(String, String, TargetTotals)> = self
            .targets()
            .iter()
            .map(|t| (t.upstream().to_string(), t.addr().to_string(), t.totals()))
            .collect();

        per_target(
            out,
            &targets,
            "shardgate_upstream_requests_total",
            "counter",
            "Exchanges completed with upstream targets.",
            |t| Some(t.duration.count()),
        );

        let name = "shardgate_upstream_request_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Time from sending a request to a target to its response's last byte.",
        );
        for (upstream, target, t) in &targets {
            let labels = [("upstream", upstream.as_str()), ("target", target.as_str())];
            histogram(out, name, &labels, &t.duration);
        }

        let name = "shardgate_upstream_errors_total";
        family(
            out,
            name,
            "counter",
            "Failed exchanges with upstream targets, by kind.",
        );
        for (upstream, target, t) in &targets {
            // Sorted by label value: bad_response, connect, reset, timeout.
            let mut kinds = UpstreamErrorKind::ALL;
            kinds.sort_by_key(|k| k.label());
            for kind in kinds {
                let labels = [
                    ("upstream", upstream.as_str()),
                    ("target", target.as_str()),
                    ("kind", kind.label()),
                ];
                sample(out, name, "", &labels, t.errors[kind as usize]);
            }
        }

        let name = "shardgate_upstream_timeouts_total";
        family(
            out,
            name,
            "counter",
            "Timeouts that fired on exchanges with upstream targets, by phase.",
        );
        for (upstream, target, t) in &targets {
            for (phase, n) in TimeoutPhase::ALL.iter().zip(t.timeouts) {
                let labels = [
                    ("upstream", upstream.as_str()),
                    ("target", target.as_str()),
                    ("phase", phase.label()),
                ];
                sample(out, name, "", &labels, n);
            }
        }

        per_target(
            out,
            &targets,
            "shardgate_upstream_retries_total",
            "counter",
            "Failed tries at an upstream target that were made again.",
            |t| Some(t.retries),
        );

        per_target(
            out,
            &targets,
            "shardgate_upstream_retries_over_budget_total",
            "counter",
            "Failed tries at an upstream target not made again because the retry budget was spent.",
            |t| Some(t.retries_over_budget),
        );

        per_target(
            out,
            &targets,
            "shardgate_upstream_ejections_total",
            "counter",
            "Outlier ejections of upstream targets.",
            |t| Some(t.ejections),
        );

        per_target(
            out,
            &targets,
            "shardgate_upstream_ejected",
            "gauge",
            "1 while an upstream target is ejected as an outlier.",
            |t| Some(u64::from(t.ejected)),
        );

        // Only targets with active checks have a health to show.
        per_target(
            out,
            &targets,
            "shardgate_upstream_healthy",
            "gauge",
            "1 while an upstream target passes its active health checks.",
            |t| t.health.map(|(healthy, _, _)| u64::from(healthy)),
        );

        let name = "shardgate_upstream_health_checks_total";
        family(
            out,
            name,
            "counter",
            "Active health checks of upstream targets, by result.",
        );
        for (upstream, target, t) in &targets {
            if let Some((_, passed, failed)) = t.health {
                for (result, n) in [("failed", failed), ("passed", passed)] {
                    let labels = [
                        ("upstream", upstream.as_str()),
                        ("target", target.as_str()),
                        ("result", result),
                    ];
                    sample(out, name, "", &labels, n);
                }
            }
        }

        per_target(
            out,
            &targets,
            "shardgate_upstream_pool_idle_connections",
            "gauge",
            "Idle pooled connections to a target, over all shards.",
            |t| Some(t.pool_idle),
        );

        per_target(
            out,
            &targets,
            "shardgate_upstream_pool_active_connections",
            "gauge",
            "Connections to a target carrying a request, over all shards.",
            |t| Some(t.pool_active),
        );
    }

    fn render_shards(&self, out: &mut String) {
        let mut id = itoa::Buffer::new();

        let name = "shardgate_connections_active";
        family(out, name, "gauge", "Open client connections, by shard.");
        for (shard, s) in self.shards.iter().enumerate() {
            sample(
                out,
                name,
                "",
                &[("shard", id.format(shard))],
                s.active.get(),
            );
        }

        let name = "shardgate_connections_total";
        family(
            out,
            name,
            "counter",
            "Client connections accepted, by shard.",
        );
        for (shard, s) in self.shards.iter().enumerate() {
            sample(out, name, "", &[("shard", id.format(shard))], s.total.get());
        }
    }
}

/// `_bucket` for every bound (cumulative, ending with `+Inf`), then `_sum` and `_count`.
/// A family with one series per target, labelled by upstream and target; `value` leaves a
/// target out by returning None.
fn per_target<V: std::fmt::Display>(
    out: &mut String,
    targets: &[(String, String, TargetTotals)],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&TargetTotals) -> Option<V>,
) {
    family(out, name, kind, help);
    for (upstream, target, t) in targets {
        if let Some(v) = value(t) {
            let labels = [("upstream", upstream.as_str()), ("target", target.as_str())];
            sample(out, name, "", &labels, v);
        }
    }
}

fn histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &HistogramTotals) {
    let mut with_le: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
    for (le, n) in h.cumulative() {
        with_le.clear();
        with_le.extend_from_slice(labels);
        with_le.push(("le", le));
        sample(out, name, "_bucket", &with_le, n);
    }
    sample(out, name, "_sum", labels, h.sum_seconds());
    sample(out, name, "_count", labels, h.count());
}
