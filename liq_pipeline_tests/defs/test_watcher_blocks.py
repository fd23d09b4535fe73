"""The watcher's per-block records reach the lake through Dagster, and their latency check can pass and fail."""

from __future__ import annotations

import dagster as dg
import pytest

from liq_pipeline.cache import open_market_cache
from liq_pipeline.config import load_settings
from liq_pipeline.defs.lake.assets import watcher_blocks
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions
from liq_pipeline.lake.partitions import range_of
from liq_pipeline_tests.fixtures.watcher import make_watcher

pytestmark = pytest.mark.integration


def _materialize(instance, key: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(BLOCK_RANGES, [key])
    return dg.materialize([watcher_blocks], partition_key=key, instance=instance, resources=RESOURCES)


def test_watcher_records_become_a_lake_dataset_with_a_latency_check(chain, platform_env, instance, monkeypatch):
    cache = open_market_cache(load_settings(), 31337, chain.market.pool)
    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, cache=cache)
    try:
        prices = actions.oracle_prices(chain.rpc, chain.market)
        for step in range(1, 6):
            actions.set_prices(chain.rpc, chain.market, {"WETH": prices["WETH"] * (100 - step) // 100})
            watcher.step()
    finally:
        watcher.rpc.close()
    processed = [r.block for r in watcher.stats.records]
    key = range_of(processed[0], 100).key

    monkeypatch.setenv("KPI_WATCHER_P99_MS", "60000")
    result = _materialize(instance, key)
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed
    assert evaluation.metadata["blocks"].value == len(processed)
    assert evaluation.metadata["contiguous"].value is True

    monkeypatch.setenv("KPI_WATCHER_P99_MS", "1")  # no watcher answers in 1 ms: the check must fail
    failing = _materialize(instance, key)
    assert failing.success  # WARN
    assert not failing.get_asset_check_evaluations()[0].passed
