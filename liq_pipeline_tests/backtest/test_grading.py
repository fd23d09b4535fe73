"""The grading on hand-built frames: it rewards flags ahead of the chain, and it can fail.

The market (blocks 0-40, 2 s apart; graded range 5-40; horizon 20 s = 10 blocks):
    a  the Pool says HF < 1 at 20-25 (a crossing at 20, after a 10 % price jump), liquidated at 26
    b  healthy; c  healthy
    d  HF < 1 from 32 on (a crossing at 32, after a 1 % move)
    e  HF < 1 from the first block to 12 (no crossing: never seen above 1), liquidated at 13
The engine: `adverse` flags a from 14 and d from 28 with ETAs that hit the crossing exactly, and b for a while
(a false alarm); `baseline` flags who is below 1 now. A late predictor flags only at HF < 1; a lagging one two
blocks after; a predictor flagging everyone scores the base rate.
"""

from __future__ import annotations

import polars as pl
import pytest

from liq_pipeline.backtest.grading import Window, grade
from liq_pipeline.backtest.moves import price_moves
from liq_pipeline.backtest.report import render_markdown
from liq_pipeline.backtest.truth import crossings
from liq_pipeline_tests.backtest import frames

USERS = ("a", "b", "c", "d", "e")
BELOW = {"a": range(20, 26), "d": range(32, 41), "e": range(0, 13)}
WINDOW = Window(from_block=5, to_block=40, horizon_sec=20.0)
TRUTH = frames.truth(BELOW, USERS)
LIQUIDATIONS = frames.liquidations([(13, "e"), (26, "a")])
MOVES = frames.moves({20: 0.10, 32: 0.01})
ADVERSE = frames.predictions(
    {
        "a": {b: max(0.0, (20 - b) * 2.0) for b in range(14, 27)},
        "b": {b: 15.0 for b in range(10, 13)},
        "d": {b: max(0.0, (32 - b) * 2.0) for b in range(28, 41)},
    },
    scenario="adverse",
)
BELOW_NOW = frames.from_truth(TRUTH, "baseline", pl.col("liquidatable"))
ENGINE = pl.concat([ADVERSE, BELOW_NOW])


def graded(predictions: pl.DataFrame, scenarios=None) -> dict:
    return grade(TRUTH, frames.blocks(), predictions, LIQUIDATIONS, MOVES, WINDOW, scenarios)


def test_the_engine_is_graded_per_scenario_and_overall():
    report = graded(ENGINE)
    adverse, baseline = report["scenarios"]["adverse"], report["scenarios"]["baseline"]
    assert set(report["scenarios"]) == {"adverse", "baseline"}
    # two crossings (a at 20, d at 32); e was never seen above 1
    assert report["crossings"] == adverse["crossings"] == baseline["crossings"] == 2
    assert adverse["recall_at_cross"] == 1.0 and adverse["flagged_ahead_share"] == 1.0
    assert adverse["lead_time_p50_blocks"] == 5.0  # a: 6 blocks, d: 4
    assert adverse["lead_time_p50_s"] == 10.0
    assert adverse["lead_censored"] == 0
    assert adverse["eta_error_p50_s"] == 0.0  # the ETAs at the first flags were exact
    # judged flags (at HF >= 1, horizon inside the range: blocks <= 30): a 14-19 (crossed within 20 s), a 26 (did
    # not), b 10-12 (did not), d 28-30 (crossed); d 31-40 censored
    assert adverse["flags_judged"] == 13
    assert adverse["precision_within_horizon"] == round(9 / 13, 4)
    assert adverse["candidates_per_block_p50"] == 1.0
    # e's liquidation was never flagged by `adverse`; the baseline (below 1 now) flagged it, so overall did
    assert adverse["liquidations_onchain"] == 2 and adverse["liquidations_unflagged"] == 1
    assert report["liquidations_unflagged"] == 0
    assert adverse["recall_liquidatable"] == round(15 / 23, 4) and report["recall_liquidatable"] == 1.0
    # overall = flagged in any scenario: the adverse lead, the baseline's coverage
    assert report["recall_at_cross"] == 1.0 and report["flagged_ahead_share"] == 1.0
    assert report["lead_time_p50_blocks"] == 5.0


def test_a_late_predictor_gets_no_lead_and_a_lower_flagged_ahead_share():
    """Flagging only at HF < 1 catches every crossing at the crossing block, never before it."""
    late = graded(BELOW_NOW)["scenarios"]["baseline"]
    engine = graded(ENGINE)["scenarios"]["adverse"]
    assert late["recall_at_cross"] == 1.0
    assert late["flagged_ahead_share"] == 0.0 < engine["flagged_ahead_share"]
    assert late["lead_time_p50_s"] == 0.0 < engine["lead_time_p50_s"]
    assert late["lead_time_p50_blocks"] == 0.0
    assert late["flags_judged"] == 0 and late["precision_within_horizon"] is None  # no flag at HF >= 1


def test_a_predictor_flagging_everyone_scores_the_base_rate():
    everyone = graded(frames.from_truth(TRUTH, "all", pl.lit(True)))
    # (block, user) at HF >= 1 in blocks 5-30: 116, of which 19 go below 1 within 20 s (a from 10, d from 22)
    assert everyone["base_rate_within_horizon"] == round(19 / 116, 4)
    assert everyone["precision_within_horizon"] == everyone["base_rate_within_horizon"]
    assert everyone["candidates_per_block_p50"] == 5.0
    engine = graded(ENGINE)["scenarios"]["adverse"]
    assert engine["precision_within_horizon"] > everyone["precision_within_horizon"]


def test_a_predictor_missing_a_crossing_loses_recall():
    only_a = ADVERSE.filter(pl.col("user") != "d")
    report = graded(only_a)
    assert report["recall_at_cross"] == 0.5 and report["flagged_ahead_share"] == 0.5
    assert report["by_price_move"]["<2%"]["recall_at_cross"] == 0.0  # d crossed after a 1 % move
    assert report["by_price_move"][">5%"]["recall_at_cross"] == 1.0  # a after a 10 % one


def test_liquidations_flagged_only_after_the_pool_said_hf_below_1_are_late():
    lagging = graded(frames.from_truth(TRUTH, "lag", pl.col("liquidatable"), shift=2))
    # a below from 20, first flagged at 22; e below since the first block, first flagged at 2
    assert lagging["liquidations_unflagged"] == 0
    assert lagging["liquidations_flagged_late"] == 2
    assert lagging["liquidation_late_blocks_p50"] == 2.0 and lagging["liquidation_late_blocks_max"] == 2
    assert lagging["recall_at_cross"] == 0.0  # flagged two blocks after each crossing
    on_time = graded(BELOW_NOW)
    assert on_time["liquidations_flagged_late"] == 0 and on_time["liquidation_late_blocks_max"] == 0


def test_a_second_liquidation_restarts_the_clock():
    """Liquidated at 22 and again at 25 while still below 1: the second is late only from block 23 on."""
    twice = frames.liquidations([(22, "a"), (25, "a")])
    flags = frames.predictions({"a": {23: 0.0, 24: 0.0}}, "s")
    report = grade(TRUTH, frames.blocks(), flags, twice, MOVES, WINDOW)
    assert report["liquidations_unflagged"] == 1  # nothing before 22
    assert report["liquidations_flagged_late"] == 0  # flagged at 23, right after the previous liquidation


def test_the_by_move_and_calibration_tables():
    report = graded(ADVERSE)
    moves = report["by_price_move"]
    assert list(moves) == ["<2%", "2-5%", ">5%"]
    assert moves[">5%"]["crossings"] == 1 and moves["<2%"]["crossings"] == 1 and moves["2-5%"]["crossings"] == 0
    assert moves[">5%"]["lead_time_p50_blocks"] == 6.0 and moves["<2%"]["lead_time_p50_blocks"] == 4.0
    # the flags and candidates of the blocks with each move: every graded block in one bucket, the judged flags split
    assert sum(m["blocks"] for m in moves.values()) == WINDOW.to_block - WINDOW.from_block + 1
    assert sum(m["flags_judged"] for m in moves.values()) == report["flags_judged"]
    judged = {k: m for k, m in moves.items() if m["flags_judged"]}
    overall = sum(m["precision_within_horizon"] * m["flags_judged"] for m in judged.values()) / report["flags_judged"]
    assert abs(overall - report["precision_within_horizon"]) < 1e-3
    assert all(m["candidates_per_block_p50"] is not None for m in moves.values() if m["blocks"])
    calibration = {row["eta_bucket"]: row for row in report["calibration"]}
    # a 26: ETA 0 at HF >= 1 (after its liquidation), never crossed; b: ETA 15 s, never; a 14-19, d 28-30: exact
    assert calibration["0s"] == {
        "eta_bucket": "0s",
        "flags": 1,
        "crossed_share": 0.0,
        "time_to_liquidatable_p50_s": None,
        "eta_error_p50_s": None,
    }
    assert calibration["0-30s"]["flags"] == 12
    assert calibration["0-30s"]["crossed_share"] == 0.75
    assert calibration["0-30s"]["eta_error_p50_s"] == 0.0


def test_flags_whose_horizon_the_range_does_not_cover_are_not_judged():
    short = Window(from_block=5, to_block=40, horizon_sec=200.0)  # longer than the whole range
    report = grade(TRUTH, frames.blocks(), ADVERSE, LIQUIDATIONS, MOVES, short)
    assert report["flags_judged"] == 0
    assert report["precision_within_horizon"] is None and report["base_rate_within_horizon"] is None
    assert report["recall_at_cross"] == 1.0  # the crossing figures do not depend on the horizon


def test_flags_before_the_range_count_for_lead_times_only():
    early = frames.predictions({"a": {b: 30.0 for b in range(0, 21)}}, "early")
    report = grade(TRUTH, frames.blocks(), early, LIQUIDATIONS, MOVES, Window(10, 40, 20.0))
    assert report["lead_time_p50_blocks"] == 20.0  # from block 0, before the range
    assert report["lead_censored"] == 1  # ... which is also the first block known: it may have begun earlier
    assert report["flags_judged"] == 10  # 10-19 only


def test_no_prediction_at_all():
    empty = frames.predictions({})
    report = grade(TRUTH, frames.blocks(), empty, LIQUIDATIONS, MOVES, WINDOW, ["baseline"])
    assert report["recall_at_cross"] == 0.0 and report["flagged_ahead_share"] == 0.0
    assert report["lead_time_p50_s"] is None and report["candidates_per_block_p50"] == 0.0
    assert report["liquidations_unflagged"] == 2
    assert report["scenarios"]["baseline"]["crossings"] == 2


def test_a_crossing_needs_the_block_before_it():
    truth = frames.truth({"x": [0, 1, 5, 6], "y": [3]}, ["x", "y"], 0, 8)
    truth = truth.join(frames.blocks(0, 8), on="block").filter(~((pl.col("user") == "y") & (pl.col("block") == 2)))
    found = crossings(truth)
    # x: below at the first block (no crossing), again at 5; y: no row at 2, so 3 is not a crossing
    assert found.select("user", "block").rows() == [("x", 5)]


def test_price_moves_are_the_largest_jump_of_any_reserve():
    prices = pl.DataFrame(
        {
            "block": [1, 2, 3, 1, 2, 3],
            "reserve_id": [0, 0, 0, 1, 1, 1],
            "price": [100, 101, 101, 50, 50, 40],
        },
        schema={"block": pl.Int64, "reserve_id": pl.Int32, "price": pl.Int128},
    )
    moves = price_moves(prices)
    assert moves["block"].to_list() == [2, 3]
    assert moves["move"].to_list() == pytest.approx([0.01, 0.2])


def test_the_report_renders_as_markdown():
    report = {
        "from_block": 0,
        "to_block": 40,
        "graded_from_block": 5,
        "blocks": 36,
        "first_block_with_state": 5,
        "truth_from_block": 5,
        "replay_from_block": 0,
        "borrowers": 5,
        "truth_reads": TRUTH.height,
        "deferred_users": 0,
        "engine": {
            "protocol_version": "3.6",
            "predictive_enabled": True,
            "scenarios": ["baseline", "adverse"],
            "engine_horizon_sec": 20.0,
            "graded_horizon_sec": 20,
            "hf_buffer_bps": 40,
            "price_window": 60,
        },
        **graded(ENGINE),
    }
    text = render_markdown(report)
    assert text.startswith("# Backtest of blocks 5-40")
    assert "| recall at the crossing block | 1 | 1 | 1 |" in text
    assert "no state before block 5: blocks 0-4" in text
    assert "| >5% | overall | 1 |" in text
    # the move table per scenario too: each scenario's own figures for the same crossings
    assert all(f"| {bucket} | {name} |" in text for bucket in ("<2%", ">5%") for name in ("baseline", "adverse"))
