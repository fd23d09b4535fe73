"""ops/grafana/liq-pipeline.json: a dashboard Grafana can import, whose every query reads metrics liq-pipeline
exports (names parsed out of the PromQL and checked against the registry and the exporter: unknown names fail)."""

from __future__ import annotations

import json
import re

import pytest

from liq_pipeline_tests.fixtures.prometheus import OPS, known_series, promql_metric_names

DASHBOARD = OPS / "grafana" / "liq-pipeline.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict] | None = None) -> list[dict]:
    out = []
    for panel in _dashboard()["panels"] if panels is None else panels:
        out.append(panel)
        out += _panels(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def _queries() -> list[tuple[str, str]]:
    return [(panel["title"], t["expr"]) for panel in _panels() for t in panel.get("targets", [])]


def test_importable_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": dashboard["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    assert {r["id"] for r in dashboard["__requires"]} >= {"grafana", "prometheus", "timeseries", "stat", "bargauge"}
    assert dashboard["id"] is None  # import assigns it
    assert dashboard["uid"] == "liq-pipeline" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    panels = _panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    used_types = {p["type"] for p in panels} - {"row"}
    assert used_types <= {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    # no datasource other than the input variable anywhere (a hard-coded uid breaks the import elsewhere)
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text())) - {"liq-pipeline", "-- Grafana --"}
    assert uids == {"${DS_PROMETHEUS}"}


@pytest.mark.parametrize(("title", "expr"), _queries(), ids=[f"{t}: {e[:50]}" for t, e in _queries()])
def test_every_query_reads_exported_metrics(title: str, expr: str) -> None:
    names = promql_metric_names(expr)
    assert names, f"panel {title!r}: no metric name found in {expr!r}"
    unknown = names - known_series()
    assert not unknown, f"panel {title!r} reads metrics that liq-pipeline does not export: {sorted(unknown)}"


def test_required_panels() -> None:
    exprs = " ".join(expr for _, expr in _queries())
    for needle in (
        "rate(predictive_candidates_total",
        "histogram_quantile(0.5, sum by (le) (rate(opportunity_latency_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(opportunity_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(opportunity_latency_seconds_bucket",
        "liq_miss_rate",
        "liq_blocks_behind_head",
        "liq_hf_distribution_bucket",
        "rate(liq_rpc_errors_total",
        "liq_redis_up",
    ):
        assert needle in exprs, needle
    hf = next(p for p in _panels() if "liq_hf_distribution_bucket" in json.dumps(p.get("targets", [])))
    assert hf["targets"][0]["format"] == "heatmap"  # buckets shown per bucket, sorted by le
