"""End to end with the real Prometheus binary: it scrapes the watcher's metrics server and the KPI exporter (real
Redis) every second, loads ops/prometheus/alerts.yml, and answers queries over its HTTP API for the candidate
counters, the latency histogram (a p95 computed by Prometheus), the HF distribution and the Dagster KPIs. Every
dashboard query is run through it too, so a PromQL error in the dashboard fails here."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from liq_pipeline.cache import CacheOptions, MarketCache, MarketKeys, connect, set_kpis
from liq_pipeline.metrics import BlockMetrics, exporter_registry, serve_metrics
from liq_pipeline_tests.fixtures.net import free_port
from liq_pipeline_tests.fixtures.prometheus import OPS
from liq_pipeline_tests.metrics.test_dashboard import _queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~7 s: Prometheus applies new targets after ~5 s

POOL = "0x00000000000000000000000000000000000000e2"
TIMEOUT = 20.0  # seconds any single wait may take


@dataclass
class Stack:
    api: str  # http://127.0.0.1:<port>/api/v1
    metrics: BlockMetrics

    def query(self, expr: str) -> list[dict]:
        response = requests.get(f"{self.api}/query", params={"query": expr}, timeout=5)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def wait_for(self, expr: str, accept: Callable[[list[dict]], bool], what: str) -> list[dict]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            result = self.query(expr)
            if accept(result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: {what} not seen within {TIMEOUT:.0f}s ({expr} -> {result})")
            time.sleep(0.2)


def _value(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _observe(metrics: BlockMetrics, first_block: int, blocks: int) -> None:
    hf = np.array([0.97, 0.999, 1.004, 1.03, 1.3, 2.5, np.inf])
    for block in range(first_block, first_block + blocks):
        metrics.observe(
            block,
            0.012 if block % 10 else 0.2,
            7,
            0.004,
            {"baseline": 1, "adverse": 2, "extreme": 4},
            {"adverse": 1},
            hf,
            1,
        )


@pytest.fixture
def stack(prometheus_binary: str, redis_server, tmp_path: Path) -> Iterator[Stack]:
    # the watcher side: a registry fed with a few blocks
    metrics = BlockMetrics()
    _observe(metrics, 100, 10)
    metrics.rpc_error("timeout")
    metrics.redis_up(True)
    # the Dagster side: KPIs in a real Redis, served by the exporter
    _, info = redis_server
    client = connect(info.url, connect_timeout=0.5, timeout=1.0, retries=0)
    cache = MarketCache(client, MarketKeys.for_market(31337, POOL), CacheOptions())
    set_kpis(cache, {"last_evaluated_block": 109, "latency_ms_p95": 900.0, "candidates_adverse": 2, "users": 7})
    exporter, _ = exporter_registry(client)

    with serve_metrics(metrics.registry) as watcher_http, serve_metrics(exporter) as exporter_http:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(OPS / "prometheus" / "alerts.yml")],
            "scrape_configs": [
                {"job_name": "liq-watcher", "static_configs": [{"targets": [f"127.0.0.1:{watcher_http.port}"]}]},
                {"job_name": "liq-exporter", "static_configs": [{"targets": [f"127.0.0.1:{exporter_http.port}"]}]},
            ],
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        log = (tmp_path / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"prometheus exited ({process.returncode}):\n{(tmp_path / 'prometheus.log').read_text()}"
                    )
                try:
                    if requests.get(f"{base}/-/ready", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("prometheus did not become ready:\n" + (tmp_path / "prometheus.log").read_text())
                time.sleep(0.1)
            yield Stack(f"{base}/api/v1", metrics)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()
            client.close()


def test_prometheus_scrapes_and_answers(stack: Stack) -> None:
    for job in ("liq-watcher", "liq-exporter"):
        stack.wait_for(f'up{{job="{job}"}}', lambda r: bool(r) and r[0]["value"][1] == "1", f"target {job} up")

    # a candidate series and the latency histogram, as scraped from the watcher
    assert _value(stack.query('predictive_candidates_total{job="liq-watcher",scenario="adverse"}')) == 20
    assert _value(stack.query('predictive_crossings_confirmed_total{scenario="adverse"}')) == 10
    assert _value(stack.query('opportunity_latency_seconds_bucket{le="0.015"}')) == 9
    assert _value(stack.query('opportunity_latency_seconds_count{job="liq-watcher"}')) == 10
    assert _value(stack.query('liq_hf_distribution_bucket{le="1.0"}')) == 2
    assert _value(stack.query("liq_hf_distribution_gcount")) == 7
    # the KPIs of a Dagster run, through Redis and the exporter
    assert _value(stack.query(f'liq_last_evaluated_block{{job="liq-exporter",pool="{POOL}"}}')) == 109
    assert _value(stack.query("liq_evaluation_latency_p95_seconds")) == pytest.approx(0.9)
    assert _value(stack.query('liq_redis_up{job="liq-exporter"}')) == 1

    # more blocks arrive: Prometheus computes a p95 from the histogram (the dashboard's and the alert's query)
    _observe(stack.metrics, 110, 100)
    p95 = "histogram_quantile(0.95, sum by (le) (rate(opportunity_latency_seconds_bucket[1m])))"
    result = stack.wait_for(p95, lambda r: bool(r) and r[0]["value"][1] not in ("NaN", "0"), "a latency p95")
    assert 0.015 < _value(result) <= 0.25  # 10% of the blocks took 200 ms: p95 lies in the (0.15, 0.25] bucket
    rate = stack.query('sum(rate(predictive_candidates_total{scenario="extreme"}[1m]))')
    assert _value(rate) > 0

    # the alert rules are loaded and evaluate without error
    def evaluated(_: list) -> bool:
        groups = requests.get(f"{stack.api}/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return len(rules) > 0 and all(rule.get("health") == "ok" for rule in rules)

    stack.wait_for("vector(1)", evaluated, "every alert rule evaluated with health ok")
    groups = requests.get(f"{stack.api}/rules", timeout=5).json()["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"LiqRedisDown", "LiqBlockingCheckFailed", "LiqWatcherBehindHead", "LiqMissRateHigh"} <= names

    # every dashboard query is valid PromQL for this Prometheus ($__rate_interval is Grafana's: 1m here)
    for title, expr in _queries():
        stack.query(expr.replace("$__rate_interval", "1m"))  # asserts status success
        assert title
