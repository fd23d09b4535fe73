"""The executor's records reach the lake through Dagster (`liquidation_executions`), and each of its checks passes
on good records and fails on bad ones. Real Redis (the embedded server under DATA_DIR), records written by the
executor's own recorder, the Dagster test APIs; no chain needed."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from liq_pipeline.cache import EmbeddedRedis, open_market_cache
from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.config import load_settings, settings_fields
from liq_pipeline.defs.execution.assets import liquidation_executions
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.execution.records import ExecutionAttempt, open_recorder
from liq_pipeline.lake.open import open_lake
from liq_pipeline.lake.partitions import BlockRange

pytestmark = pytest.mark.integration

KEY = "000000001000-000000001099"
RANGE = BlockRange(1_000, 1_099)
MARKET = MarketKeys.for_market(31337, "0x" + "5a" * 20)
DEBT, COLLATERAL = "0x" + "dd" * 20, "0x" + "cc" * 20
_keys = itertools.count()


@pytest.fixture
def records_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in settings_fields():
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "d"  # short: unix socket paths are limited to ~100 bytes
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("LAKE_RANGE_BLOCKS", "100")
    monkeypatch.setenv("EXECUTION_ATTEMPT_TTL_SEC", "30")
    yield data
    EmbeddedRedis(data / "redis").stop()


def attempt(block: int, user: int, **changes) -> ExecutionAttempt:
    values = {
        "market": MARKET,
        "attempt_key": f"owner:{block}:{next(_keys)}",
        "mode": "live",
        "block_seen": block,
        "seen_at": 1_700_000_000.0 + 2 * block,
        "sent_at": 1_700_000_000.025 + 2 * block,
        "block_sent": block,
        "user": f"0x{user:040x}",
        "collateral_asset": COLLATERAL,
        "debt_asset": DEBT,
        "debt_to_cover": 10**21,
        "expected_profit_usd": 50.0,
        "expected_profit_debt": 50 * 10**6,
        "gas_limit": 800_000,
        "priority_fee_wei": 10**8,
        "max_fee_wei": 10**9,
        "l1_fee_wei": 10**12,
        "tx_hash": f"0x{block:064x}",
        "nonce": block,
    }
    return ExecutionAttempt(**(values | changes))


def write(*records: ExecutionAttempt) -> None:
    recorder = open_recorder(load_settings())
    for record in records:
        recorder.record(record)
    assert recorder.close(10.0)


def included(block: int, user: int, realized: float = 50.2, **changes) -> list[ExecutionAttempt]:
    sent = attempt(block, user, **changes)  # sent first, then its outcome: two records, one row
    return [
        sent,
        sent.with_outcome("included", block_included=block + 1, gas_used=600_000, realized_profit_usd=realized),
    ]


def materialize(instance, **config) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(BLOCK_RANGES, [KEY])
    return dg.materialize(
        [liquidation_executions],
        partition_key=KEY,
        instance=instance,
        resources=RESOURCES,
        run_config={"ops": {"liquidation_executions": {"config": config}}},
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def check_kpis() -> dict[str, object]:
    kpis = open_market_cache(load_settings(), MARKET.chain_id, MARKET.pool).get_kpis() or {}
    return {name: kpi.value for name, kpi in kpis.items() if name.startswith("check_liquidation_executions_")}


def test_records_become_the_ranges_rows_and_good_records_pass_every_check(records_env, instance):
    lost = attempt(1_010, 2)
    write(
        *included(1_000, 1),
        lost,
        lost.with_outcome("lost", competitor="0x" + "77" * 20, competitor_tx="0x" + "88" * 32, lost_by_blocks=1),
        attempt(1_020, 3, outcome="skipped", sent_at=None, tx_hash=None, reason="claim taken"),
        *included(1_050, 1, trigger="pending"),  # again 100 s after (outside the 30 s window), before its block
        *included(1_100, 4),  # next range
        *included(999, 5),  # previous range
    )
    result = materialize(instance)
    assert result.success
    rows = open_lake(load_settings()).read("liquidation_executions", RANGE)
    assert rows.height == 4
    assert sorted(rows["outcome"]) == ["included", "included", "lost", "skipped"]
    assert set(rows["block_seen"]) == {1_000, 1_010, 1_020, 1_050}
    # what made each attempt: a sealed block's evaluation, or a price update seen before its block (issue #15)
    assert dict(zip(rows["block_seen"], rows["trigger"], strict=True))[1_050] == "pending"
    assert sorted(rows["trigger"]) == ["pending", "sealed", "sealed", "sealed"]
    evaluations = checks(result)
    assert set(evaluations) == {"idempotency", "profit", "reverts"}
    assert all(e.passed for e in evaluations.values())
    assert evaluations["reverts"].metadata["sent"].value == 3
    metadata = result.asset_materializations_for_node("liquidation_executions")[0].metadata
    assert metadata["rows"].value == 4 and metadata["markets"].value == f"31337:{MARKET.pool}"
    assert check_kpis() == {
        "check_liquidation_executions_idempotency": 1,
        "check_liquidation_executions_profit": 1,
        "check_liquidation_executions_reverts": 1,
    }


def test_an_opportunity_attempted_twice_fails_the_blocking_check(records_env, instance):
    write(*included(1_000, 1), *included(1_005, 1))  # 10 s apart: the claim's 30 s should have refused the second
    result = materialize(instance)
    assert not result.success  # blocking: the run fails (run_failure_alerts tells), downstream would not run
    evaluation = checks(result)["idempotency"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["duplicates"].value == 1
    assert check_kpis()["check_liquidation_executions_idempotency"] == 0
    # the same records with a window shorter than their gap pass
    assert checks(materialize(instance, window_sec=5.0))["idempotency"].passed


def test_realized_profit_off_expected_warns(records_env, instance):
    write(*included(1_000, 1, realized=50.4), *included(1_001, 2, realized=47.0))  # 0.8 % and 6 % off
    result = materialize(instance)
    assert result.success  # WARN
    evaluation = checks(result)["profit"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["off_target"].value == 1
    assert evaluation.metadata["max_deviation"].value == pytest.approx(0.06)
    assert checks(materialize(instance, profit_tolerance=0.1))["profit"].passed


def test_revert_share_above_the_configured_share_warns(records_env, instance):
    records = [r for user in range(1, 10) for r in included(1_000 + user, user)]
    reverted = attempt(1_050, 20)
    records += [
        reverted,
        reverted.with_outcome("reverted", block_included=1_051, gas_used=90_000, realized_profit_usd=-0.3),
    ]
    write(*records)
    result = materialize(instance)
    assert result.success  # WARN
    evaluation = checks(result)["reverts"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["revert_share"].value == pytest.approx(0.1)
    assert checks(materialize(instance, max_revert_share=0.1))["reverts"].passed


def test_no_records_is_an_empty_range_and_every_check_passes(records_env, instance):
    result = materialize(instance)
    assert result.success and all(e.passed for e in checks(result).values())
    assert open_lake(load_settings()).read("liquidation_executions", RANGE).height == 0


def test_the_schedule_asks_for_final_ranges_not_yet_recorded(tmp_path):
    from liq_pipeline.defs.execution.schedules import ranges_to_record
    from liq_pipeline.lake.datasets.liquidation_executions import SPEC
    from liq_pipeline.lake.open import lake_at

    lake = lake_at(tmp_path / "lake", range_size=100)
    lake.write("liquidation_executions", BlockRange(900, 999), SPEC.empty())
    keys = ["000000001100-000000001199", "000000000900-000000000999", KEY]
    assert ranges_to_record(lake, keys, head=1_150, confirmations=10) == [KEY]  # 1100-1199 is not final yet
    assert ranges_to_record(lake, keys, head=1_300, confirmations=10) == [KEY, "000000001100-000000001199"]


def test_registered_in_the_code_location():
    from liq_pipeline.definitions import defs

    assert defs.get_assets_def("liquidation_executions").check_keys == {
        dg.AssetCheckKey(dg.AssetKey("liquidation_executions"), name) for name in ("idempotency", "profit", "reverts")
    }
    assert defs.resolve_job_def("execution_records").name == "execution_records"
    assert defs.get_schedule_def("record_finished_executions").default_status == dg.DefaultScheduleStatus.STOPPED
