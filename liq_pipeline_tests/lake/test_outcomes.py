"""liquidation_outcomes and liquidation_candidates on hand-made frames: the join with predictions made BEFORE
each liquidation, the miss rate, and the candidates appender (dedup by (block, user, scenario), idempotent)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from liq_pipeline.lake.datasets.liquidation_candidates import NAME as CANDIDATES
from liq_pipeline.lake.datasets.liquidation_candidates import SCHEMA as CANDIDATE_SCHEMA
from liq_pipeline.lake.datasets.liquidation_candidates import append_candidates, merge_candidates
from liq_pipeline.lake.datasets.liquidation_outcomes import (
    LIQUIDATION_SCHEMA,
    SCHEMA,
    join_predictions,
    liquidations_from_events,
    miss_rate,
)
from liq_pipeline.lake.datasets.pool_events import SCHEMA as EVENTS_SCHEMA
from liq_pipeline.lake.open import lake_at
from liq_pipeline.lake.partitions import BlockRange

T0 = 1_767_225_600


def ts(block: int) -> int:
    return T0 + 2 * block


def liquidations(rows: list[tuple[int, int, str]]) -> pl.DataFrame:
    """(block, log_index, user) -> LIQUIDATION_SCHEMA rows."""
    return pl.DataFrame(
        {
            "block_number": [b for b, _, _ in rows],
            "block_timestamp": [ts(b) for b, _, _ in rows],
            "log_index": [i for _, i, _ in rows],
            "tx_hash": [f"0x{b:064x}" for b, _, _ in rows],
            "user": [u for _, _, u in rows],
            "collateral_asset": ["0xC"] * len(rows),
            "debt_asset": ["0xD"] * len(rows),
            "debt_to_cover": [10**24] * len(rows),
            "liquidated_collateral_amount": [10**30] * len(rows),
            "liquidator": ["0xL"] * len(rows),
            "receive_a_token": [False] * len(rows),
        },
        schema=LIQUIDATION_SCHEMA,
    )


def candidates(rows: list[tuple[int, str, str, float]]) -> pl.DataFrame:
    """(block, user, scenario, eta_sec) -> CANDIDATE_SCHEMA rows."""
    n = len(rows)
    return pl.DataFrame(
        {
            "user": [u for _, u, _, _ in rows],
            "scenario": [s for _, _, s, _ in rows],
            "block": [b for b, _, _, _ in rows],
            "hf_current": [1.01] * n,
            "hf_scenario": [0.99] * n,
            "hf_projected": [0.98] * n,
            "eta_sec": [e for _, _, _, e in rows],
            "liquidatable_now": [False] * n,
            "debt_reserve": [1] * n,
            "collateral_reserve": [0] * n,
            "close_factor": [0.5] * n,
            "debt_to_cover_base": [1.0] * n,
            "collateral_seized_base": [1.05] * n,
            "protocol_fee_base": [0.0] * n,
            "expected_profit_base": [0.05] * n,
        },
        schema=CANDIDATE_SCHEMA,
    )


def by_user(outcomes: pl.DataFrame) -> dict[tuple[str, int], dict]:
    return {(r["user"], r["block_number"]): r for r in outcomes.iter_rows(named=True)}


def test_each_liquidation_gets_the_earliest_flag_before_it():
    liq = liquidations([(110, 3, "A"), (110, 5, "B"), (110, 7, "C"), (130, 1, "E")])
    cand = candidates(
        [
            (100, "A", "adverse", 30.0),
            (100, "A", "extreme", 12.0),  # same first block: the smallest ETA is reported
            (104, "A", "baseline", 0.0),
            (110, "C", "baseline", 0.0),  # C is flagged only in the liquidation's own block: too late
            (131, "E", "baseline", 0.0),  # after E's liquidation
            (90, "Z", "baseline", 0.0),  # someone never liquidated
        ]
    )
    out = join_predictions(liq, cand, {b: ts(b) for b in (100, 104, 110)})
    assert out.schema == pl.Schema(SCHEMA)
    assert out["user"].to_list() == ["A", "B", "C", "E"]  # one row per liquidation, in chain order
    rows = by_user(out)
    a = rows[("A", 110)]
    assert a["flagged"] and a["flagged_block"] == 100 and a["flagged_scenario"] == "extreme"
    assert a["predicted_eta_sec"] == 12.0 and a["lead_blocks"] == 10 and a["lead_seconds"] == 20
    assert a["flagged_timestamp"] == ts(100) and a["eta_error_sec"] == 8.0
    assert a["debt_to_cover"] == 10**24 and a["liquidated_collateral_amount"] == 10**30
    for miss in ("B", "C", "E"):
        row = rows[(miss, 110 if miss != "E" else 130)]
        assert not row["flagged"] and row["flagged_block"] is None and row["lead_blocks"] is None
    assert miss_rate(out) == 0.75


def test_a_previous_liquidation_closes_the_window_and_lookback_limits_it():
    liq = liquidations([(50, 0, "D"), (120, 0, "D"), (120, 4, "D"), (300, 0, "F")])
    cand = candidates([(40, "D", "baseline", 0.0), (115, "D", "adverse", 9.0), (100, "F", "baseline", 0.0)])
    out = join_predictions(liq, cand, {}, lookback_blocks=150)
    flagged = [(r["block_number"], r["log_index"], r["flagged_block"]) for r in out.iter_rows(named=True)]
    # D's second liquidation was not predicted by the flag at 40 (that one preceded the first liquidation);
    # two calls in one block share the window; F's flag at 100 is 200 blocks old, beyond the lookback
    assert flagged == [(50, 0, 40), (120, 0, 115), (120, 4, 115), (300, 0, None)]
    assert out["flagged_timestamp"].null_count() == 4  # no timestamps given: seconds unknown, blocks known
    assert join_predictions(liq, cand, {})["flagged_block"].to_list()[-1] == 100  # no lookback: counted


def test_miss_rate_is_the_share_not_flagged_early_enough():
    out = join_predictions(
        liquidations([(110, 0, "A"), (110, 1, "B"), (110, 2, "C"), (110, 3, "D")]),
        candidates([(100, "A", "baseline", 0.0), (109, "B", "baseline", 0.0), (105, "C", "adverse", 4.0)]),
        {},
    )
    assert miss_rate(out) == 0.25
    assert miss_rate(out, min_lead_blocks=2) == 0.5  # B was flagged one block before only
    assert miss_rate(out.clear()) is None
    assert miss_rate(join_predictions(liquidations([(5, 0, "A")]), candidates([]), {})) == 1.0


def test_liquidations_are_read_exactly_from_pool_events():
    args = {
        "collateralAsset": "0xC0",
        "debtAsset": "0xD0",
        "user": "0xU1",
        "debtToCover": str(2**90),  # chain.events writes integers above 2^53 as strings
        "liquidatedCollateralAmount": 123,
        "liquidator": "0xL1",
        "receiveAToken": True,
    }
    events = pl.DataFrame(
        {
            "block_number": [7, 7],
            "log_index": [1, 2],
            "tx_hash": ["0xT", "0xT"],
            "address": ["0xPool", "0xPool"],
            "event": ["LiquidationCall", "ReserveDataUpdated"],
            "user": ["0xU1", None],
            "reserve": ["0xC0", "0xD0"],
            "args": [json.dumps(args), "{}"],
            "block_timestamp": [ts(7), ts(7)],
        },
        schema=EVENTS_SCHEMA,
    )
    liq = liquidations_from_events(events)
    assert liq.height == 1
    row = liq.row(0, named=True)
    assert row["debt_to_cover"] == 2**90 and row["liquidated_collateral_amount"] == 123
    assert row["user"] == "0xU1" and row["receive_a_token"] is True and row["block_timestamp"] == ts(7)


def test_merge_deduplicates_by_block_user_scenario_newest_wins():
    old = candidates([(100, "A", "baseline", 50.0), (100, "B", "baseline", 60.0)])
    new = candidates([(100, "A", "baseline", 10.0), (100, "A", "adverse", 5.0)])
    merged = merge_candidates(old, new).sort("user", "scenario")
    assert merged.select("user", "scenario", "eta_sec").rows() == [
        ("A", "adverse", 5.0),
        ("A", "baseline", 10.0),
        ("B", "baseline", 60.0),
    ]


def test_appending_candidates_rewrites_each_touched_range_idempotently(tmp_path):
    lake = lake_at(tmp_path, range_size=100)
    first = candidates([(150, "A", "baseline", 9.0), (199, "B", "adverse", 3.0), (200, "A", "baseline", 1.0)])
    assert append_candidates(lake, first) == [BlockRange(100, 199), BlockRange(200, 299)]
    path = lake.path(CANDIDATES, BlockRange(100, 199))
    before = path.read_bytes()
    assert append_candidates(lake, first) == [BlockRange(100, 199), BlockRange(200, 299)]
    assert path.read_bytes() == before  # same evaluations again: same file
    append_candidates(lake, candidates([(150, "A", "baseline", 4.0), (160, "C", "extreme", 2.0)]))
    stored = lake.read(CANDIDATES, BlockRange(100, 199))
    assert stored.select("block", "user", "eta_sec").rows() == [(150, "A", 4.0), (160, "C", 2.0), (199, "B", 3.0)]
    assert lake.scan(CANDIDATES).collect().height == 4
    assert append_candidates(lake, candidates([])) == []


def test_appending_rows_with_a_wrong_schema_is_refused(tmp_path):
    lake = lake_at(tmp_path, range_size=100)
    with pytest.raises(pl.exceptions.PolarsError):
        append_candidates(lake, candidates([(1, "A", "baseline", 1.0)]).drop("eta_sec"))
