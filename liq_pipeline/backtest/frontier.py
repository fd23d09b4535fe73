"""The sweep's frontier and recommendation: pure, over the graded points (dicts with the grading's keys).

A point is eligible when it flags every crossing at its block (recall_at_cross 1.0): a predictor that misses a
liquidation as it happens is worse than none, whatever its precision. Among eligible points, the frontier holds
those no other point beats on both flagged_ahead_share and precision_within_horizon (>= on both, > on one).

The recommendation: the frontier point with the best precision among those flagging at least `min_ahead` of the
crossings ahead (the sweep passes the current settings' share: no worse ahead than today); ties go to the larger
flagged-ahead share, the longer lead time, then fewer candidates per block. Without the floor, the best precision
would always go to the engine that looks least ahead.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

AHEAD, PRECISION, RECALL = "flagged_ahead_share", "precision_within_horizon", "recall_at_cross"


def _table(points: Sequence[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "at": list(range(len(points))),
            "recall": [p.get(RECALL) for p in points],
            "ahead": [p.get(AHEAD) for p in points],
            "precision": [p.get(PRECISION) for p in points],
            "lead": [p.get("lead_time_p50_s") for p in points],
            "candidates": [p.get("candidates_per_block_p50") for p in points],
        },
        schema={
            "at": pl.Int64,
            "recall": pl.Float64,
            "ahead": pl.Float64,
            "precision": pl.Float64,
            "lead": pl.Float64,
            "candidates": pl.Float64,
        },
    )


def _eligible(points: Sequence[dict]) -> pl.DataFrame:
    return _table(points).filter(
        (pl.col("recall") == 1.0) & pl.col("ahead").is_not_null() & pl.col("precision").is_not_null()
    )


def frontier_rows(points: Sequence[dict]) -> pl.DataFrame:
    """The eligible points no other eligible point dominates, most flagged-ahead first."""
    eligible = _eligible(points)
    other = eligible.select(
        pl.col("at").alias("o_at"), pl.col("ahead").alias("o_ahead"), pl.col("precision").alias("o_p")
    )
    dominated = (
        eligible.join(other, how="cross")
        .filter(
            (pl.col("o_at") != pl.col("at"))
            & (pl.col("o_ahead") >= pl.col("ahead"))
            & (pl.col("o_p") >= pl.col("precision"))
            & ((pl.col("o_ahead") > pl.col("ahead")) | (pl.col("o_p") > pl.col("precision")))
        )
        .select("at")
        .unique()
    )
    return eligible.join(dominated, on="at", how="anti").sort(["ahead", "precision"], descending=True)


def frontier(points: Sequence[dict]) -> list[dict]:
    return [points[at] for at in frontier_rows(points)["at"].to_list()]


def recommend(points: Sequence[dict], min_ahead: float = 0.0) -> dict | None:
    """The point to recommend (module doc), or None when no point flags every crossing at its block."""
    rows = frontier_rows(points).filter(pl.col("ahead") >= min_ahead)
    if rows.height == 0:
        return None
    best = rows.sort(
        [pl.col("precision"), pl.col("ahead"), pl.col("lead").fill_null(0.0), pl.col("candidates").fill_null(0.0)],
        descending=[True, True, True, False],
    )
    return points[best["at"][0]]
