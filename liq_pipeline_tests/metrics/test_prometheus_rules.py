"""ops/prometheus: the config and the alert rules are valid for the real promtool, every rule is unit-tested firing
AND not firing, every rule reads metrics that liq-pipeline exports and points at a runbook section that exists."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from liq_pipeline_tests.fixtures.prometheus import OPS, ROOT, known_series, promql_metric_names

PROMETHEUS_DIR = OPS / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS_DIR)


def test_promtool_check_config(promtool: str) -> None:
    result = _promtool(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_check_rules(promtool: str) -> None:
    result = _promtool(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_promtool_test_rules(promtool: str) -> None:
    result = _promtool(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert len(names) == len(_alerts()), "alert names must be unique"
    assert names - firing == set(), "rules without a firing test case"
    assert names - quiet == set(), "rules without a not-firing test case"
    assert (firing | quiet) - names == set(), "test cases for rules that do not exist"


def test_the_required_alerts_exist() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _alerts()}
    wanted = {  # what each required alert must read
        "LiqMissRateHigh": "liq_miss_rate",
        "LiqWatcherLatencyP95High": "opportunity_latency_seconds_bucket",
        "LiqEvaluationLatencyP95High": "liq_evaluation_latency_p95_seconds",
        "LiqWatcherBehindHead": "liq_blocks_behind_head",
        "LiqRpcErrors": "liq_rpc_errors_total",
        "LiqRedisDown": "liq_redis_up",
        "LiqBlockingCheckFailed": "liq_asset_check_passed",
    }
    for alert, metric in wanted.items():
        assert metric in promql_metric_names(exprs[alert]), alert


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_rule_reads_exported_metrics_and_has_summary_and_runbook(rule: dict) -> None:
    names = promql_metric_names(rule["expr"])
    assert names, f"no metric found in {rule['expr']!r}"
    assert names <= known_series(), f"{rule['alert']} reads metrics nothing exports: {names - known_series()}"
    assert rule["labels"]["severity"] in ("warning", "critical")
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    path, _, anchor = annotations["runbook"].partition("#")
    assert path == "docs/operations.md" and anchor
    assert anchor in _anchors(RUNBOOK.read_text()), f"docs/operations.md has no section #{anchor}"


def test_promql_metric_names() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.95, sum by (job, le) (rate(opportunity_latency_seconds_bucket{job="a",le!="x"}[5m])))'
    ) == {"opportunity_latency_seconds_bucket"}
    assert promql_metric_names("time() - max(liq_watcher_last_block_timestamp_seconds) > 1e3") == {
        "liq_watcher_last_block_timestamp_seconds"
    }
    assert promql_metric_names("sum(rate(a_total[$__rate_interval])) by (kind) / on(job) group_left b offset 5m") == {
        "a_total",
        "b",
    }
    assert promql_metric_names('up{job=~"liq-watcher|liq-exporter"} == bool 0') == {"up"}
