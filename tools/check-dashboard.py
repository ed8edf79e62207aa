#!/usr/bin/env python3
"""Checks tools/grafana-dashboard.json against the metrics Shardgate exports.

    tools/check-dashboard.py [DASHBOARD]

The dashboard must be valid JSON; every PromQL expression in it (panel targets, template
variable queries, annotations) may name only the metrics in METRICS below, which mirror what
the admin listener's /metrics serves; every panel and query uses the ${datasource} variable;
panel ids are unique. A renamed metric then fails here instead of leaving an empty panel.
When promtool is on PATH (Debian: the prometheus package), every expression is also parsed by
it, with Grafana's variables filled in. Exits 0 when all holds, 1 with one line per problem.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Metric names as exported (histograms by their series names).
METRICS = {
    "shardgate_build_info",
    "shardgate_config_info",
    "shardgate_config_loaded_timestamp_seconds",
    "shardgate_reloads_total",
    "shardgate_requests_total",
    "shardgate_request_duration_seconds_bucket",
    "shardgate_request_duration_seconds_sum",
    "shardgate_request_duration_seconds_count",
    "shardgate_bytes_received_total",
    "shardgate_bytes_sent_total",
    "shardgate_route_timeouts_total",
    "shardgate_upstream_requests_total",
    "shardgate_upstream_request_duration_seconds_bucket",
    "shardgate_upstream_errors_total",
    "shardgate_upstream_timeouts_total",
    "shardgate_upstream_retries_total",
    "shardgate_upstream_retries_over_budget_total",
    "shardgate_upstream_ejections_total",
    "shardgate_upstream_ejected",
    "shardgate_upstream_healthy",
    "shardgate_upstream_health_checks_total",
    "shardgate_upstream_pool_idle_connections",
    "shardgate_upstream_pool_active_connections",
    "shardgate_connections_active",
    "shardgate_connections_total",
    "shardgate_access_log_dropped_total",
    "shardgate_draining",
}

# Every other bare word an expression may hold: PromQL functions, aggregations and keywords.
PROMQL_WORDS = {
    "sum", "count", "max", "min", "avg", "topk", "bottomk", "quantile", "stddev", "group",
    "rate", "irate", "increase", "changes", "resets", "delta", "deriv", "time", "timestamp",
    "histogram_quantile", "clamp_min", "clamp_max", "abs", "vector", "scalar", "absent",
    "max_over_time", "min_over_time", "avg_over_time", "label_replace", "sort", "sort_desc",
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset",
}

DATASOURCE = "${datasource}"


def words(expr):
    """The bare words of a PromQL expression: metric names, functions, keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors, $__rate_interval
    # Label lists after grouping modifiers: `by (route, le)` names labels, not metrics.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    return re.findall(r"(?<![\w$.])[A-Za-z_:][\w:]*", expr)


def check_expr(where, expr, problems, exprs=None):
    if exprs is not None:
        exprs.append((where, expr))
    for word in words(expr):
        if word in METRICS or word in PROMQL_WORDS:
            continue
        if word.startswith("shardgate_"):
            problems.append(f"{where}: unknown metric {word}")
        else:
            problems.append(f"{where}: unexpected word {word!r} in {expr!r}")


def check_variable_query(where, query, problems, exprs):
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    if not m:
        problems.append(f"{where}: not a label_values(metric, label) query: {query!r}")
        return
    check_expr(where, m.group(1), problems, exprs)


def check_datasource(where, ds, problems):
    uid = ds.get("uid") if isinstance(ds, dict) else ds
    if uid != DATASOURCE:
        problems.append(f"{where}: datasource {ds!r}, want uid {DATASOURCE}")


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def check(dashboard):
    problems = []
    exprs = []
    names = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = names.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("templating: no `datasource` variable of Prometheus data sources")
    for name, var in names.items():
        if var.get("type") == "query":
            where = f"variable {name}"
            check_datasource(where, var.get("datasource"), problems)
            query = var.get("query")
            check_variable_query(
                where, query.get("query") if isinstance(query, dict) else query, problems, exprs
            )

    for ann in dashboard.get("annotations", {}).get("list", []):
        if "expr" in ann:
            where = f"annotation {ann.get('name')!r}"
            check_datasource(where, ann.get("datasource"), problems)
            check_expr(where, ann["expr"], problems, exprs)

    seen = set()
    for panel in all_panels(dashboard.get("panels", [])):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(panel.get("id"))
        if "gridPos" not in panel:
            problems.append(f"{where}: no gridPos")
        if panel.get("type") == "row":
            continue
        check_datasource(where, panel.get("datasource"), problems)
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{where}: no queries")
        for t in targets:
            check_datasource(f"{where} query {t.get('refId')}", t.get("datasource"), problems)
            check_expr(f"{where} query {t.get('refId')}", t.get("expr", ""), problems, exprs)

    used = {w for _, e in exprs for w in words(e)}
    for name in sorted(METRICS - used):
        print(f"note: no panel uses {name}")
    return problems, len(seen), exprs


def promtool_check(exprs, problems):
    """Parses every expression with promtool, as recording rules (the one offline parser)."""
    promtool = shutil.which("promtool")
    if not promtool:
        print("note: promtool not found, PromQL syntax not checked")
        return False
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_, expr) in enumerate(exprs):
        expr = expr.replace("$__rate_interval", "5m")
        expr = re.sub(r"\$\{?\w+\}?", ".*", expr)  # the rest sit in label regexes
        rules += [f"      - record: dashboard:expr{i:04}", f"        expr: {json.dumps(expr)}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        f.write("\n".join(rules) + "\n")
        f.flush()
        run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    if run.returncode != 0:
        out = (run.stdout + run.stderr).strip()
        # promtool names rules by position; map them back to panels.
        for i, (where, _) in enumerate(exprs):
            out = out.replace(f"dashboard:expr{i:04}", where)
        problems.append(f"promtool check rules failed:\n{out}")
    return True


def main():
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("grafana-dashboard.json"))
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"{path}: {e}")
        return 1
    problems, panels, exprs = check(dashboard)
    parsed = promtool_check(exprs, problems)
    for p in problems:
        print(f"{path}: {p}")
    if problems:
        return 1
    how = ", parsed by promtool" if parsed else ""
    print(f"{path}: ok ({panels} panels, {len(exprs)} expressions, only known metrics{how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
