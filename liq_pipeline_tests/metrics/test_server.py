"""The metrics HTTP server: a real scrape of /metrics over HTTP, parsed with prometheus_client's parser."""

from __future__ import annotations

import socket

import pytest
import requests
from prometheus_client import CollectorRegistry

from liq_pipeline.metrics import BlockMetrics, MetricsServer, serve_metrics
from liq_pipeline_tests.fixtures.net import free_port
from liq_pipeline_tests.fixtures.prometheus import sample_value, scrape


def test_scrape_over_http() -> None:
    metrics = BlockMetrics()
    metrics.observe(42, 0.02, 3, 0.001, {"adverse": 2}, {"adverse": 1}, [0.99, 1.2, 3.0], 1)
    with serve_metrics(metrics.registry, port=0) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        families = scrape(server.url)
        assert families["predictive_candidates"]["type"] == "counter"
        assert sample_value(families, "predictive_candidates_total", scenario="adverse") == 2
        assert sample_value(families, "predictive_crossings_confirmed_total", scenario="adverse") == 1
        assert sample_value(families, "opportunity_latency_seconds_count") == 1
        assert sample_value(families, "liq_hf_distribution_bucket", le="1.0") == 1
        assert sample_value(families, "liq_last_evaluated_block") == 42
        # the OpenMetrics flavour (what Prometheus asks for) parses too, with the HF gauge histogram typed as such
        om = scrape(server.url, openmetrics=True)
        assert om["liq_hf_distribution"]["type"] == "gaugehistogram"
        assert sample_value(om, "liq_hf_distribution_gcount") == 3
        # other paths
        assert requests.get(f"http://127.0.0.1:{server.port}/-/healthy", timeout=5).text == "OK\n"
        assert requests.get(f"http://127.0.0.1:{server.port}/nope", timeout=5).status_code == 404


def test_binds_loopback_only_and_releases_the_port() -> None:
    metrics = BlockMetrics()
    server = MetricsServer(metrics.registry, port=0)
    port = server.start()
    assert server.running
    assert server.start() == port  # idempotent
    assert server._httpd.server_address[0] == "127.0.0.1"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) == 0
    with socket.socket() as s:  # another loopback address (Linux answers all of 127/8): not listened on
        s.settimeout(1.0)
        assert s.connect_ex(("127.0.0.2", port)) != 0
    server.stop()
    assert not server.running
    server.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    # the port is free again: a new server can take it at once
    with serve_metrics(metrics.registry, port=port) as again:
        assert again.port == port
        assert "liq_redis_up" in scrape(again.url)


def test_fixed_port_and_a_clear_error_when_taken() -> None:
    port = free_port()
    with serve_metrics(CollectorRegistry(), port=port) as server:
        assert server.port == port
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            serve_metrics(CollectorRegistry(), port=port)


def test_a_broken_collector_answers_500_and_the_server_keeps_serving() -> None:
    class Broken:
        calls = 0

        def collect(self):
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("boom")
            return iter(())

    registry = CollectorRegistry()
    registry.register(Broken())
    with serve_metrics(registry) as server:
        first = requests.get(server.url, timeout=5)
        assert first.status_code == 500
        assert "boom" in first.text
        assert requests.get(server.url, timeout=5).status_code == 200
