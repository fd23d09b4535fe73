"""A real Prometheus scrapes the real watcher while the devnet market moves; its HTTP API then answers for the
candidate and latency series."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import requests
import yaml

from liq_pipeline.devnet import actions
from liq_pipeline.metrics import BlockMetrics, serve_metrics
from liq_pipeline_tests.fixtures.net import free_port
from liq_pipeline_tests.fixtures.watcher import make_watcher

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _query(base: str, expr: str) -> list[dict]:
    body = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_sees_the_watcher_on_a_moving_market(chain, prometheus_binary, tmp_path):
    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, metrics=BlockMetrics())
    server = serve_metrics(watcher.metrics.registry, port=0)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {"job_name": "liq-watcher", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}
                ],
            }
        )
    )
    prometheus = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    thread = threading.Thread(target=watcher.run, kwargs={"deadline": time.monotonic() + 60}, daemon=True)
    base = f"http://127.0.0.1:{port}"
    try:
        thread.start()
        prices = actions.oracle_prices(chain.rpc, chain.market)
        deadline = time.monotonic() + 40
        found = {}
        step = 0
        while time.monotonic() < deadline and len(found) < 2:
            step += 1
            actions.set_prices(chain.rpc, chain.market, {"WETH": prices["WETH"] * (1000 - 5 * step) // 1000})
            time.sleep(0.5)
            try:
                candidates = _query(base, "sum(predictive_candidates_total)")
                latency = _query(base, "sum(opportunity_latency_seconds_count)")
            except requests.ConnectionError:
                continue
            if candidates and float(candidates[0]["value"][1]) > 0:
                found["candidates"] = float(candidates[0]["value"][1])
            if latency and float(latency[0]["value"][1]) >= 3:
                found["latency"] = float(latency[0]["value"][1])
        assert set(found) == {"candidates", "latency"}, found
        p95 = _query(base, "histogram_quantile(0.95, sum(opportunity_latency_seconds_bucket) by (le))")
        assert p95 and float(p95[0]["value"][1]) > 0
    finally:
        watcher.stop()
        thread.join(timeout=10)
        watcher.rpc.close()
        server.stop()
        prometheus.terminate()
        prometheus.wait(10)
