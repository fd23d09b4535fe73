"""The lake's assets through Dagster, in-process, on the real market: backfill, continuity, miss rate."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl
import pytest

from liq_pipeline.commands.backfill import backfill
from liq_pipeline.defs.lake.assets import ALL_LAKE_ASSETS, block_continuity
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.predictive.assets import liquidation_candidates
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions
from liq_pipeline.lake.partitions import range_of

pytestmark = pytest.mark.integration


def _head(chain) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _finish_range(chain, block: int) -> str:
    """Mine until the range holding `block` is final (range size 100, CONFIRMATIONS=2)."""
    block_range = range_of(block, 100)
    missing = block_range.end + 2 - _head(chain)
    if missing > 0:
        actions.mine_blocks(chain.rpc, missing)
    return block_range.key


def _check(result, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_backfill_materializes_every_dataset_of_a_range(chain, platform_env, instance):
    key = _finish_range(chain, 0)
    report = backfill(0, 99, instance=instance)
    assert report.ranges == [key] and report.failed == {}
    for asset in ALL_LAKE_ASSETS:
        name = asset.key.to_user_string()
        files = list((platform_env / "lake" / name).glob("*.parquet"))
        assert len(files) == 1, name
        assert instance.get_latest_materialization_event(asset.key).asset_materialization.partition == key
    events = pl.read_parquet(next((platform_env / "lake" / "pool_events").glob("*.parquet")))
    assert set(chain.users) <= set(events["user"].drop_nulls().to_list())
    prices = pl.read_parquet(next((platform_env / "lake" / "price_histories").glob("*.parquet")))
    history_from = int(os.environ["STATE_HISTORY_FROM_BLOCK"])
    assert prices.filter(pl.col("source") == "oracle")["block_number"].n_unique() == 100 - history_from
    # idempotent: a second backfill of the same range writes identical rows
    before = {p.name: pl.read_parquet(p) for p in (platform_env / "lake").rglob("*.parquet")}
    backfill(0, 99, instance=instance)
    for path in (platform_env / "lake").rglob("*.parquet"):
        assert pl.read_parquet(path).equals(before[path.name]), path.name


def _shock_and_liquidate(chain) -> tuple[str, int]:
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victim = next(u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18)
    return victim, _head(chain)


def _outcomes(instance, key: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(BLOCK_RANGES, [key])
    return dg.materialize(ALL_LAKE_ASSETS, partition_key=key, instance=instance, resources=RESOURCES)


def test_a_liquidation_nobody_flagged_is_a_miss(chain, platform_env, instance):
    victim, _ = _shock_and_liquidate(chain)
    event = actions.liquidate(chain.rpc, chain.market, victim)
    key = _finish_range(chain, event.block)
    result = _outcomes(instance, key)
    assert result.success  # WARN: the run goes on
    check = _check(result, "miss_rate")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["miss_rate"].value == 1.0


def test_a_liquidation_flagged_in_advance_is_not_a_miss(chain, platform_env, instance):
    victim, head = _shock_and_liquidate(chain)
    candidates_key = range_of(head, 100).key
    instance.add_dynamic_partitions(BLOCK_RANGES, [candidates_key])
    dg.materialize(
        [liquidation_candidates],
        partition_key=candidates_key,
        instance=instance,
        resources=RESOURCES,
        run_config=dg.RunConfig(ops={"liquidation_candidates": {"config": {"block": head, "from_block": head}}}),
    )
    actions.mine_blocks(chain.rpc, 1)
    event = actions.liquidate(chain.rpc, chain.market, victim)
    key = _finish_range(chain, event.block)
    result = _outcomes(instance, key)
    check = _check(result, "miss_rate")
    assert check.passed and check.metadata["miss_rate"].value == 0.0


def test_a_range_that_is_not_final_fails_clearly(chain, platform_env, instance):
    key = range_of(_head(chain), 100).key
    instance.add_dynamic_partitions(BLOCK_RANGES, [key])
    result = dg.materialize(
        ALL_LAKE_ASSETS[:1], partition_key=key, instance=instance, resources=RESOURCES, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "the chain is at" in failure.event_specific_data.error.message
    assert not list((platform_env / "lake").rglob("*.parquet"))  # nothing half-written


def test_a_partition_key_that_is_not_a_block_range_is_refused(chain, platform_env, instance):
    instance.add_dynamic_partitions(BLOCK_RANGES, ["abc"])
    result = dg.materialize(
        ALL_LAKE_ASSETS[:1], partition_key="abc", instance=instance, resources=RESOURCES, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "'abc'" in failure.event_specific_data.error.message


def test_block_continuity_sees_a_gap():
    whole = block_continuity(pl.Series(range(100, 200)), 100, 199)
    assert whole.passed
    gap = block_continuity(pl.Series([b for b in range(100, 200) if b != 150]), 100, 199)
    assert not gap.passed and gap.metadata["missing"].value == "150"
    shifted = block_continuity(pl.Series(range(101, 201)), 100, 199)
    assert not shifted.passed
