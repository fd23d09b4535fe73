"""Price window per asset: EMA, drift and volatility over the last observations.

Observations are irregular in time (a feed updates on deviation or heartbeat), so drift and volatility are per
second, estimated from log returns weighted by their time gaps:
  drift    mu      = sum(r_k) / sum(dt_k)
  variance sigma^2 = mean((r_k - mu dt_k)^2 / dt_k)
A window of N observations asks for N returns: the last N + 1 prices are used.
"""

from __future__ import annotations

import polars as pl

WINDOW_SCHEMA = {
    "asset": pl.String,
    "last_price": pl.Float64,
    "ema": pl.Float64,
    "drift_per_sec": pl.Float64,
    "volatility_per_sqrt_sec": pl.Float64,
    "returns": pl.UInt32,
    "last_timestamp": pl.Int64,
}


def price_window_stats(observations: pl.DataFrame, window: int, ema_span: int) -> pl.DataFrame:
    """Per asset statistics over its last `window` returns.

    `observations` has columns asset (str), timestamp (int seconds), price (number). Several observations at the
    same timestamp keep the last one. An asset with fewer than two observations gets drift 0 and volatility null
    (unknown, which callers must not read as zero risk).
    """
    if window < 1:
        raise ValueError("window must be at least 1 return")
    ordered = (
        observations.lazy()
        .select(
            pl.col("asset").cast(pl.String),
            pl.col("timestamp").cast(pl.Int64),
            pl.col("price").cast(pl.Float64),
        )
        .filter(pl.col("price") > 0)
        .unique(subset=["asset", "timestamp"], keep="last", maintain_order=True)
        .sort("asset", "timestamp")
        .group_by("asset", maintain_order=True)
        .tail(window + 1)
    )
    with_returns = ordered.with_columns(
        pl.col("price").log().diff().over("asset").alias("r"),
        pl.col("timestamp").diff().over("asset").cast(pl.Float64).alias("dt"),
        pl.col("price").ewm_mean(span=ema_span, adjust=False).over("asset").alias("ema_run"),
    )
    stats = with_returns.group_by("asset", maintain_order=True).agg(
        pl.col("price").last().alias("last_price"),
        pl.col("ema_run").last().alias("ema"),
        pl.col("r").drop_nulls().sum().alias("_sum_r"),
        pl.col("dt").drop_nulls().sum().alias("_sum_dt"),
        pl.col("r").drop_nulls().len().cast(pl.UInt32).alias("returns"),
        pl.col("timestamp").last().alias("last_timestamp"),
    )
    drift = pl.when(pl.col("_sum_dt") > 0).then(pl.col("_sum_r") / pl.col("_sum_dt")).otherwise(0.0)
    variance = (
        with_returns.drop_nulls(["r", "dt"])
        .join(stats.select("asset", drift.alias("mu")), on="asset")
        .group_by("asset", maintain_order=True)
        .agg((((pl.col("r") - pl.col("mu") * pl.col("dt")) ** 2) / pl.col("dt")).mean().alias("_var"))
    )
    return (
        stats.join(variance, on="asset", how="left")
        .select(
            "asset",
            "last_price",
            "ema",
            drift.alias("drift_per_sec"),
            pl.col("_var").sqrt().alias("volatility_per_sqrt_sec"),
            "returns",
            "last_timestamp",
        )
        .collect()
        .cast(WINDOW_SCHEMA)
    )
