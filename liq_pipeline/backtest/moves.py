"""The price move behind a crossing: how far the oracle jumped at that block, in buckets.

A crossing that follows a 30 % drop in one block gives no engine any warning; one that comes after a slow drift
should have been flagged ahead. The move of a block is the largest relative change of any reserve's oracle price
from the block before (market-wide: a crossing is bucketed by the market's jump, not only its own assets').
"""

from __future__ import annotations

import polars as pl

# (upper bound, exclusive; label), in order: a move of exactly 2 % is "2-5%"
MOVE_BUCKETS: tuple[tuple[float, str], ...] = ((0.02, "<2%"), (0.05, "2-5%"), (float("inf"), ">5%"))
UNKNOWN = "unknown"  # no price of the block before (the range's first block without warm-up)


def price_moves(prices: pl.DataFrame) -> pl.DataFrame:
    """(block, move) from (block, reserve_id, price) rows: e.g. 0.3 for a 30 % drop. A block whose previous block
    has no price has no row."""
    return (
        prices.sort("reserve_id", "block")
        .with_columns(
            pl.col("price").cast(pl.Float64).alias("_price"),
            pl.col("price").cast(pl.Float64).shift(1).over("reserve_id").alias("_before"),
            pl.col("block").shift(1).over("reserve_id").alias("_previous"),
        )
        .filter((pl.col("_previous") == pl.col("block") - 1) & (pl.col("_before") > 0))
        .group_by("block")
        .agg(((pl.col("_price") / pl.col("_before")) - 1.0).abs().max().alias("move"))
        .sort("block")
    )


def move_bucket(move: pl.Expr) -> pl.Expr:
    """The MOVE_BUCKETS label of a move (UNKNOWN when null)."""
    expression = pl.when(move.is_null()).then(pl.lit(UNKNOWN))
    for bound, label in MOVE_BUCKETS:
        expression = expression.when(move < bound).then(pl.lit(label))
    return expression.otherwise(pl.lit(MOVE_BUCKETS[-1][1]))
