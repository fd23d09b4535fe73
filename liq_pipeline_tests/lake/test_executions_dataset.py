"""liquidation_executions: the executor's records of a block range (last record of an attempt wins), stored exactly
by the lake, and the arithmetic of its Dagster checks (pure, on hand-made records)."""

from __future__ import annotations

import itertools

import polars as pl
import pyarrow.parquet as pq
import pytest

from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.execution.records import ExecutionAttempt
from liq_pipeline.lake.datasets import DATASETS
from liq_pipeline.lake.datasets.liquidation_executions import (
    NAME,
    SCHEMA,
    SPEC,
    build_liquidation_executions,
    duplicate_attempts,
    profit_deviations,
    revert_share,
)
from liq_pipeline.lake.open import lake_at
from liq_pipeline.lake.partitions import BlockRange

MARKET = MarketKeys.for_market(8453, "0xA238Dd80C259a72e81d7e4664a9801593F98d1c5")
USERS = [f"0x{i:040x}" for i in range(1, 10)]
DEBT, COLLATERAL, OTHER_DEBT = "0x" + "dd" * 20, "0x" + "cc" * 20, "0x" + "ee" * 20
_keys = itertools.count()


def record(block: int = 1_000, user: str = USERS[0], seen_at: float | None = None, **changes) -> ExecutionAttempt:
    values = {
        "market": MARKET,
        "attempt_key": f"k{next(_keys)}",
        "mode": "live",
        "block_seen": block,
        "seen_at": 1_700_000_000.0 + 2 * block if seen_at is None else seen_at,
        "user": user,
        "collateral_asset": COLLATERAL,
        "debt_asset": DEBT,
        "debt_to_cover": 5 * 10**18,
        "expected_profit_usd": 100.0,
        "expected_profit_debt": 100 * 10**6,
        "outcome": "included",
        "sent_at": 1_700_000_000.03 + 2 * block,
        "priority_fee_wei": 10**9,
        "max_fee_wei": 3 * 10**9,
        "l1_fee_wei": 4 * 10**13,
        "realized_profit_usd": 100.0,
    }
    return ExecutionAttempt(**(values | changes))


def frame_of(*records: ExecutionAttempt) -> pl.DataFrame:
    return build_liquidation_executions([r.to_fields() for r in records], 0, 10**9)


def test_registered_with_the_lake_and_keyed_by_attempt():
    assert DATASETS[NAME] is SPEC
    assert SPEC.block_column == "block_seen" and SPEC.key == ("chain_id", "pool", "attempt_key")


def test_rows_of_the_range_last_record_of_an_attempt_wins():
    first = record(1_000, outcome="sent")
    entries = [
        first.to_fields(),
        record(999).to_fields(),  # the range before
        record(2_000).to_fields(),  # the range after
        first.with_outcome("lost", competitor="0x" + "77" * 20, competitor_tx="0x" + "88" * 32).to_fields(),
    ]
    frame = build_liquidation_executions(entries, 1_000, 1_999)
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert row["outcome"] == "lost" and row["competitor"] == "0x" + "77" * 20 and row["block_included"] is None
    assert build_liquidation_executions(entries, 5_000, 5_999).schema == pl.Schema(SCHEMA)  # empty, typed


def test_the_lake_stores_the_range_exactly_and_readably(tmp_path):
    lake = lake_at(tmp_path / "lake", range_size=1_000)
    big = record(1_500, debt_to_cover=2**256 - 1, l1_fee_wei=10**30, outcome="reverted", realized_profit_usd=-0.4)
    frame = frame_of(record(1_000), big)
    path = lake.write(NAME, BlockRange(1_000, 1_999), frame)
    back = lake.read(NAME, BlockRange(1_000, 1_999))
    assert back.equals(frame.sort(list(SPEC.key)))
    assert back.filter(pl.col("outcome") == "reverted")["debt_to_cover"].item() == str(2**256 - 1)
    assert pq.read_table(path).num_rows == 2  # fees as Decimal(38, 0): readable by pyarrow, DuckDB, Spark
    with pytest.raises(Exception, match="block"):
        lake.write(NAME, BlockRange(2_000, 2_999), frame)  # rows outside the range are refused


def test_duplicate_attempts_within_the_window():
    a = record(1_000, seen_at=100.0)
    again = record(1_003, seen_at=106.0)  # same opportunity 6 s later: the claim (TTL 30 s) should have refused it
    later = record(1_020, seen_at=140.0)  # after the TTL: a new attempt is allowed
    skipped = record(1_001, seen_at=102.0, outcome="skipped")  # sent nothing: not an attempt at the chain
    other_pair = record(1_001, seen_at=102.0, debt_asset=OTHER_DEBT)
    other_user = record(1_001, seen_at=102.0, user=USERS[1])
    assert duplicate_attempts(frame_of(a, later, skipped, other_pair, other_user), 30.0).height == 0
    found = duplicate_attempts(frame_of(a, again, later, skipped), 30.0)
    assert found.height == 1
    assert found.row(0, named=True)["attempt_key"] == again.attempt_key
    assert found.row(0, named=True)["previous_key"] == a.attempt_key
    assert found.row(0, named=True)["gap_sec"] == pytest.approx(6.0)
    dry = [
        record(1_000, seen_at=100.0, mode="dry_run", outcome="dry_run"),
        record(1_001, seen_at=102.0, mode="dry_run", outcome="dry_run"),
    ]
    assert duplicate_attempts(frame_of(*dry), 30.0).height == 1  # a dry run would have sent twice


def test_profit_within_tolerance_of_expected_for_included_only():
    good = [
        record(realized_profit_usd=100.9),
        record(realized_profit_usd=99.1),
        record(outcome="lost", realized_profit_usd=None),
    ]
    assert profit_deviations(frame_of(*good), 0.01).height == 0
    off = record(realized_profit_usd=97.0)
    unknown = record(realized_profit_usd=None)
    found = profit_deviations(frame_of(*good, off, unknown), 0.01)
    assert set(found["attempt_key"]) == {off.attempt_key, unknown.attempt_key}
    assert found.filter(pl.col("attempt_key") == off.attempt_key)["deviation"].item() == pytest.approx(0.03)


def test_revert_share_over_the_transactions_sent():
    assert revert_share(frame_of(record(outcome="skipped"), record(mode="dry_run", outcome="dry_run"))) == (None, 0, 0)
    records = [record(outcome="included") for _ in range(47)]
    records += [record(outcome="lost"), record(outcome="reverted"), record(outcome="skipped"), record(outcome="sent")]
    share, reverted, sent = revert_share(frame_of(*records))
    assert (reverted, sent) == (1, 49) and share == pytest.approx(1 / 49)
