#!/usr/bin/env python3
"""Checks what promtool cannot: that permd's alerts and dashboard ask for
metrics permd exports, and that every alert is tested both ways.

- Every metric name in an alert's expr (helm/permd/files/prometheus-rules.yaml)
  and in the dashboard's queries (deploy/grafana/permd.json: panels and
  template variables) is one permd exports: a name in src/telemetry/ (the
  `pub const` names of metrics.rs, and the `permd_*` / `process_*` names
  written out in the other files there), or one of NEW below. `_bucket`,
  `_sum` and `_count` only on a histogram, and a histogram never bare.
- Every alert has a severity (critical or warning), a `for`, and summary,
  description and runbook annotations; names are unique.
- deploy/prometheus/tests.yaml loads the chart's rule file, and every alert
  has a test case where it fires (exp_alerts not empty) and one where it
  does not (exp_alerts empty).
- The dashboard is JSON with a prometheus `datasource` variable that every
  panel and query uses, `job` and `pod` variables, and unique panel ids; its
  queries, with Grafana's variables filled in, are valid PromQL
  (`promtool check rules` on them as recording rules).

Run by deploy/prometheus/check.sh; needs PyYAML (tests/helm/requirements.txt).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "helm" / "permd" / "files" / "prometheus-rules.yaml"
TESTS = REPO / "deploy" / "prometheus" / "tests.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "permd.json"
TELEMETRY = REPO / "src" / "telemetry"

# Names being added to the server together with these files (process
# metrics, build info, decision log, relay snapshot time): known here until
# they are in src/telemetry/, after which listing them here changes nothing.
NEW = {
    "permd_build_info": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "permd_process_peak_resident_bytes": "gauge",
    "permd_decision_log_lines_total": "counter",
    "permd_relay_snapshot_timestamp_seconds": "gauge",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook"}

# PromQL words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset", "inf", "nan"}

problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)


def known_metrics() -> tuple[set[str], set[str]]:
    """(every metric name permd exports, the histograms among them)."""
    metrics_rs = (TELEMETRY / "metrics.rs").read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "(\w+)";', metrics_rs))
    names = set(consts.values())
    histograms = set()
    for const in re.findall(r"describe_histogram!\(\s*(\w+)", metrics_rs):
        if const in consts:
            histograms.add(consts[const])
    for path in sorted(TELEMETRY.glob("*.rs")):
        names |= set(re.findall(r'"((?:permd|process)_[a-z0-9_]+)"', path.read_text()))
    missing = sorted(set(NEW) - names)
    if missing:
        print(f"note: not in src/telemetry/ yet, known from lint.py's NEW: {', '.join(missing)}")
    return names | set(NEW), histograms


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        word = m.group(0)
        if word.lower() in KEYWORDS:
            continue
        if re.match(r"\s*\(", text[m.end():]):  # a function or an aggregation
            continue
        names.add(word)
    return names


def check_names(where: str, expr: str, known: set[str], histograms: set[str]) -> int:
    names = metric_names(expr)
    if not names:
        problem(f"{where}: no metric in {expr!r}")
    for name in sorted(names):
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base in histograms:
            continue
        if name in histograms:
            problem(f"{where}: histogram {name} used bare (use {name}_bucket, _sum or _count)")
        elif name not in known:
            problem(f"{where}: {name} is not a metric permd exports")
    return len(names)


def check_rules(known: set[str], histograms: set[str]) -> set[str]:
    doc = yaml.safe_load(RULES.read_text())
    alerts: set[str] = set()
    count = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                problem(f"{RULES.name}: group {group['name']}: a recording rule; only alerts belong here")
                continue
            if name in alerts:
                problem(f"{RULES.name}: alert {name} defined twice")
            alerts.add(name)
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problem(f"{RULES.name}: {name}: severity must be one of {sorted(SEVERITIES)}")
            if "for" not in rule:
                problem(f"{RULES.name}: {name}: no `for` (one bad scrape would fire it)")
            missing = ANNOTATIONS - set(rule.get("annotations", {}))
            if missing:
                problem(f"{RULES.name}: {name}: annotations missing: {sorted(missing)}")
            count += check_names(f"{RULES.name}: {name}", rule["expr"], known, histograms)
    print(f"{RULES.relative_to(REPO)}: {len(alerts)} alerts, {count} metric names checked")
    return alerts


def check_tests(alerts: set[str]) -> None:
    doc = yaml.safe_load(TESTS.read_text())
    files = [(TESTS.parent / f).resolve() for f in doc.get("rule_files", [])]
    if files != [RULES]:
        problem(f"{TESTS.name}: rule_files must be exactly the chart's {RULES.relative_to(REPO)}, got {doc.get('rule_files')}")
    fires: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    for name in sorted(alerts - fires):
        problem(f"{TESTS.name}: no case where {name} fires")
    for name in sorted(alerts - silent):
        problem(f"{TESTS.name}: no case where {name} does not fire")
    for name in sorted((fires | silent) - alerts):
        problem(f"{TESTS.name}: tests alert {name}, which the rules do not define")
    print(f"{TESTS.relative_to(REPO)}: every alert fires in a case and stays silent in another"
          if alerts <= fires and alerts <= silent else f"{TESTS.relative_to(REPO)}: incomplete")


def check_dashboard(known: set[str], histograms: set[str]) -> None:
    try:
        dash = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as e:
        problem(f"{DASHBOARD.name}: not JSON: {e}")
        return
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(f"{DASHBOARD.name}: needs a template variable `datasource` of type datasource, query prometheus")
    for name in ("job", "pod"):
        if name not in variables:
            problem(f"{DASHBOARD.name}: needs a template variable `{name}`")
    uses_ds = {"type": "prometheus", "uid": "${datasource}"}
    count = 0
    for name, var in variables.items():
        if var.get("type") != "query":
            continue
        if var.get("datasource") != uses_ds:
            problem(f"{DASHBOARD.name}: variable {name} does not query ${{datasource}}")
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
        if not m:
            problem(f"{DASHBOARD.name}: variable {name}: expected label_values(<selector>, <label>), got {query!r}")
            continue
        count += check_names(f"{DASHBOARD.name}: variable {name}", m.group(1), known, histograms)
    exprs: list[tuple[str, str]] = []
    ids = set()
    panels = 0
    for panel in dash["panels"]:
        if panel["id"] in ids:
            problem(f"{DASHBOARD.name}: panel id {panel['id']} used twice")
        ids.add(panel["id"])
        if panel["type"] == "row":
            continue
        panels += 1
        where = f"{DASHBOARD.name}: panel {panel['title']!r}"
        if panel.get("datasource") != uses_ds:
            problem(f"{where}: datasource is not ${{datasource}}")
        if not panel.get("targets"):
            problem(f"{where}: no query")
        for target in panel.get("targets", []):
            if target.get("datasource", uses_ds) != uses_ds:
                problem(f"{where}: query {target.get('refId')} does not use ${{datasource}}")
            count += check_names(where, target["expr"], known, histograms)
            exprs.append((f"{where} query {target.get('refId')}", target["expr"]))
    print(f"{DASHBOARD.relative_to(REPO)}: {panels} panels, {count} metric names checked")
    check_promql(exprs)


# What Grafana puts in place of its variables, for the syntax check.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": ".*", "$job": ".*", "$pod": ".*"}


def check_promql(exprs: list[tuple[str, str]]) -> None:
    """The dashboard's queries parse: promtool checks them as recording rules."""
    promtool = shutil.which("promtool")
    if not promtool:
        problem("promtool not found: cannot check the dashboard's PromQL (apt-get install -y prometheus)")
        return
    rules = []
    for i, (_, expr) in enumerate(exprs):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        if "$" in expr:
            problem(f"{exprs[i][0]}: a Grafana variable lint.py does not know: {expr!r}")
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="permd-dashboard-") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        f.flush()
        run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    if run.returncode != 0:
        problem(f"{DASHBOARD.name}: promtool rejects a query:\n{run.stdout}{run.stderr}")
    else:
        print(f"{DASHBOARD.relative_to(REPO)}: {len(rules)} queries parse (promtool)")


def main() -> int:
    known, histograms = known_metrics()
    alerts = check_rules(known, histograms)
    check_tests(alerts)
    check_dashboard(known, histograms)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
