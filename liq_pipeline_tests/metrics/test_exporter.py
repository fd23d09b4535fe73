"""The KPI exporter against a real Redis (the embedded redis-server): KPIs written the way the Dagster runs write
them come out as gauges; Redis stopped gives liq_redis_up 0 and never a failed scrape; Redis back gives 1 again."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis
import requests

from liq_pipeline.cache import CacheOptions, MarketCache, MarketKeys, connect, set_kpis
from liq_pipeline.cache.kpis import check_kpi_name, parse_check_kpi
from liq_pipeline.metrics import exporter_registry, run_exporter, serve_metrics
from liq_pipeline_tests.fixtures.prometheus import sample_value, scrape

pytestmark = pytest.mark.integration  # a real redis-server

POOL = "0x00000000000000000000000000000000000000aa"
OTHER_POOL = "0x00000000000000000000000000000000000000bb"


def _write_dagster_kpis(client: redis.Redis, pool: str, block: int, updated_at: float) -> None:
    cache = MarketCache(client, MarketKeys.for_market(31337, pool), CacheOptions())
    set_kpis(
        cache,
        {
            "last_evaluated_block": block,
            "latency_ms_last": 812.5,
            "latency_ms_p95": 1430.0,
            "latency_ms_recent": "[812.5, 1430.0]",  # a string: not a gauge, skipped
            "users": 2000,
            "candidates_baseline": 3,
            "candidates_adverse": 11,
            "candidates_extreme": 25,
            "miss_rate": 0.05,
            check_kpi_name("liquidation_candidates", "hf_agreement"): 1,
            check_kpi_name("price_histories", "block_continuity"): False,
        },
        updated_at=updated_at,
    )


def test_check_kpi_names_round_trip() -> None:
    for asset, check in [
        ("liquidation_candidates", "hf_agreement"),
        ("liquidation_candidates", "latency_p95"),
        ("price_histories", "block_continuity"),
        ("liquidation_outcomes", "miss_rate"),
        ("some_new_asset", "fresh"),  # unknown asset: split at the last underscore
    ]:
        assert parse_check_kpi(check_kpi_name(asset, check)) == (asset, check)
    assert parse_check_kpi("candidates_baseline") is None
    assert parse_check_kpi("check_") is None


def test_exports_kpis_then_survives_redis_stopping(redis_server) -> None:
    server, info = redis_server
    client = connect(info.url, connect_timeout=0.5, timeout=1.0, retries=0)
    now = time.time()
    _write_dagster_kpis(client, POOL, 1234, now)
    _write_dagster_kpis(client, OTHER_POOL, 99, now - 50)
    client.set("liq:{31337:" + "0x" + "c" * 40 + "}:kpi", "not a hash")  # a broken market is skipped, not fatal
    registry, collector = exporter_registry(client, rescan_interval=0.0)

    with serve_metrics(registry) as http:
        families = scrape(http.url)
        assert sample_value(families, "liq_redis_up") == 1
        assert sample_value(families, "liq_exporter_markets") == 2
        market = {"chain_id": "31337", "pool": POOL}
        assert sample_value(families, "liq_last_evaluated_block", **market) == 1234
        assert sample_value(families, "liq_last_evaluated_block", pool=OTHER_POOL) == 99
        assert sample_value(families, "liq_last_evaluation_timestamp_seconds", **market) == pytest.approx(now)
        assert sample_value(families, "liq_evaluation_latency_p95_seconds", **market) == pytest.approx(1.43)
        assert sample_value(families, "liq_evaluation_latency_last_seconds", **market) == pytest.approx(0.8125)
        assert sample_value(families, "liq_evaluated_users", **market) == 2000
        assert sample_value(families, "liq_candidates", scenario="adverse", **market) == 11
        assert sample_value(families, "liq_miss_rate", **market) == 0.05
        passed = "liq_asset_check_passed"
        assert sample_value(families, passed, asset="liquidation_candidates", check="hf_agreement", **market) == 1
        assert sample_value(families, passed, asset="price_histories", check="block_continuity", **market) == 0
        assert sample_value(families, "liq_kpi", kpi="users", **market) == 2000
        assert sample_value(families, "liq_kpi", kpi="latency_ms_recent", **market) is None
        assert sample_value(families, "liq_exporter_errors_total", kind="decode") >= 1

        # what one scrape costs (Redis read, and the whole HTTP round trip; printed, not bounded: a figure), and
        # what it asks Redis: one SCAN for the markets (rescan_interval 0 here) and one read per market's hash
        calls_before = sum(stats["calls"] for stats in client.info("commandstats").values())
        reads, totals = [], []
        for _ in range(20):
            started = time.perf_counter()
            requests.get(http.url, timeout=5).raise_for_status()
            totals.append(time.perf_counter() - started)
            reads.append(collector.last_read_seconds)
        print(
            f"\nexporter, 2 markets: Redis read {sorted(reads)[10] * 1e3:.2f} ms, "
            f"HTTP scrape {sorted(totals)[10] * 1e3:.2f} ms (medians)"
        )
        calls = sum(stats["calls"] for stats in client.info("commandstats").values()) - calls_before - 1  # INFO
        assert calls == 20 * (1 + 3), calls  # SCAN, and the three markets' hashes (the broken one tried too)

        # Redis goes away: the scrape still answers 200, with liq_redis_up 0 and no stale market values
        server.stop()
        started = time.perf_counter()
        down = scrape(http.url)
        assert time.perf_counter() - started < 3.0
        assert sample_value(down, "liq_redis_up") == 0
        assert sample_value(down, "liq_last_evaluated_block", **market) is None
        assert sample_value(down, "liq_exporter_errors_total", kind="redis") >= 1
        assert sample_value(scrape(http.url), "liq_redis_up") == 0  # and again (no exception kept around)

        # Redis comes back on the same address: the same client reconnects by itself
        server.ensure_running()
        deadline = time.monotonic() + 10
        while sample_value(scrape(http.url), "liq_redis_up") != 1:
            assert time.monotonic() < deadline, "the exporter did not see Redis come back"
            time.sleep(0.1)
        assert sample_value(scrape(http.url), "liq_last_evaluated_block", **market) == 1234
    client.close()


def test_fixed_markets_and_chain_filter(redis_server) -> None:
    _, info = redis_server
    client = connect(info.url)
    _write_dagster_kpis(client, POOL, 10, time.time())
    other_chain = MarketCache(client, MarketKeys.for_market(8453, POOL), CacheOptions())
    set_kpis(other_chain, {"last_evaluated_block": 20})
    registry, _ = exporter_registry(client, chain_id=8453)
    families = {f.name: f for f in registry.collect()}
    assert [s.labels["chain_id"] for s in families["liq_last_evaluated_block"].samples] == ["8453"]
    registry, _ = exporter_registry(client, [(31337, POOL.upper().replace("0X", "0x"))])
    families = {f.name: f for f in registry.collect()}
    assert [s.value for s in families["liq_last_evaluated_block"].samples] == [10]
    client.close()


def test_no_redis_at_all_is_redis_down_not_a_crash(tmp_path) -> None:
    calls = []

    def factory():
        calls.append(1)
        raise RuntimeError("embedded redis-server failed to start")

    registry, collector = exporter_registry(factory, factory_retry=60.0)
    assert collector.connect() is False
    for _ in range(3):
        families = {f.name: f for f in registry.collect()}
        assert families["liq_redis_up"].samples[0].value == 0
    assert len(calls) == 1  # the factory is retried at most every factory_retry seconds

    unreachable = connect(f"unix://{tmp_path}/nothing.sock", connect_timeout=0.2, timeout=0.2, retries=0)
    registry, _ = exporter_registry(unreachable)
    families = {f.name: f for f in registry.collect()}
    assert families["liq_redis_up"].samples[0].value == 0


def test_run_exporter_serves_until_stopped(redis_server) -> None:
    _, info = redis_server
    client = connect(info.url)
    _write_dagster_kpis(client, POOL, 777, time.time())
    settings = SimpleNamespace(redis_url=info.url, data_dir=str(info.url), chain_id=None, exporter_port=9465)
    stop, ports = threading.Event(), []
    thread = threading.Thread(
        target=run_exporter, args=(settings, 0), kwargs={"stop": stop, "ready": ports.append}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not ports:
        assert time.monotonic() < deadline and thread.is_alive(), "run_exporter did not start"
        time.sleep(0.02)
    families = scrape(f"http://127.0.0.1:{ports[0]}/metrics")
    assert sample_value(families, "liq_last_evaluated_block", pool=POOL) == 777
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    client.close()
