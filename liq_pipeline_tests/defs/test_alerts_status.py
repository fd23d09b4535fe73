"""Alerts from failed checks reach the log, the Redis stream and a webhook; the backfill schedule and `liq status`
see the platform as it is."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import pytest

from liq_pipeline.cache import open_market_cache, read_alerts
from liq_pipeline.cache.positions import get_positions, put_positions
from liq_pipeline.commands.status import platform_status
from liq_pipeline.config import load_settings
from liq_pipeline.defs.alerts.sensors import run_failure_alerts
from liq_pipeline.defs.lake.schedules import backfill_finished_ranges
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.predictive.assets import evaluate_in_process
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions
from liq_pipeline.lake.partitions import range_of

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook(monkeypatch):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook?token=SECRET")
    yield received
    server.shutdown()
    server.server_close()


def test_a_failed_blocking_check_becomes_an_alert_everywhere(chain, platform_env, instance, webhook, caplog):
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    assert evaluate_in_process(instance, head).success
    cache = open_market_cache(load_settings(), 31337, chain.market.pool)
    snapshot = get_positions(cache.cache)
    broken = snapshot.frame.with_columns(
        [pl.lit(0, pl.Int128).alias(c) for c in snapshot.frame.columns if c.startswith("debt_")]
    )
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 80 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    new_head = int(chain.rpc.call("eth_blockNumber"), 16)
    cache.cache.client.delete(cache.cache.keys.positions)
    put_positions(cache.cache, new_head - 1, broken)
    failed = evaluate_in_process(instance, new_head, raise_on_error=False)
    assert not failed.success

    run = instance.get_run_by_id(failed.run_id)
    failure = next(e for e in instance.all_logs(failed.run_id) if e.dagster_event and e.dagster_event.is_run_failure)
    with dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
        resources=RESOURCES,
    ) as context:
        run_failure_alerts(context.for_run_failure())
    alerts = read_alerts(cache.cache)
    assert alerts and alerts[-1].kind == "run_failed" and "hf_agreement" in alerts[-1].message
    assert webhook and webhook[-1]["kind"] == "run_failed" and webhook[-1]["severity"] == "ERROR"
    assert any("ALERT run_failed" in r.getMessage() for r in caplog.records)
    assert "SECRET" not in caplog.text


def test_backfill_schedule_requests_missing_final_ranges_oldest_first(chain, platform_env, instance):
    actions.mine_blocks(chain.rpc, 250)
    instance.add_dynamic_partitions(BLOCK_RANGES, [range_of(b, 100).key for b in (0, 100, 200)])
    with dg.build_schedule_context(instance=instance, resources=RESOURCES) as context:
        requests = backfill_finished_ranges(context)
    keys = [r.partition_key for r in requests]
    assert keys == [range_of(0, 100).key, range_of(100, 100).key]  # 200-299 is not final yet


def test_status_reports_chain_redis_and_lake(chain, platform_env, instance):
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    evaluate_in_process(instance, head)
    status = platform_status(load_settings())
    assert status["chain"]["reachable"] and status["chain"]["latest_block"] == head
    assert status["redis"]["reachable"] is True
    assert status["last_evaluated_block"] == head and status["blocks_behind"] == 0
    assert set(status["redis"]["candidates_per_scenario"]) <= {"baseline", "adverse", "extreme"}
    assert status["partitions_materialized"]["liquidation_candidates"] == 1
