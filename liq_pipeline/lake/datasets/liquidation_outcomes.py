"""liquidation_outcomes: each on-chain LiquidationCall of the range, joined with what the platform predicted
BEFORE it: the earliest block (strictly before the liquidation's) at which the user was a candidate in any
scenario, that scenario, its ETA, and the lead time in blocks and seconds. Null prediction = a miss.

The window a prediction may come from starts after the user's previous liquidation (in the events given) and,
with `lookback_blocks`, no earlier than that many blocks back: a flag from weeks ago that went away is not a
prediction of today's liquidation. Within the window, the earliest flag counts (the longest honest lead time);
at that block the scenario with the smallest ETA (then the name) is reported.
"""

from __future__ import annotations

import polars as pl

from ...chain.discovery import Market
from ...chain.rpc import RpcClient
from ...risk.versions import ProtocolRules
from ..blocks import block_timestamps
from ..spec import DatasetSpec
from ._decode import event_args
from .pool_events import build_pool_events

NAME = "liquidation_outcomes"
LIQUIDATION_SCHEMA = {
    "block_number": pl.Int64,
    "block_timestamp": pl.Int64,
    "log_index": pl.Int32,
    "tx_hash": pl.String,
    "user": pl.String,
    "collateral_asset": pl.String,
    "debt_asset": pl.String,
    "debt_to_cover": pl.Int128,  # debt asset units
    "liquidated_collateral_amount": pl.Int128,  # collateral asset units
    "liquidator": pl.String,
    "receive_a_token": pl.Boolean,
}
PREDICTION_SCHEMA = {
    "flagged": pl.Boolean,  # a candidate at least one block before
    "flagged_block": pl.Int64,
    "flagged_timestamp": pl.Int64,
    "flagged_scenario": pl.String,
    "flagged_hf_current": pl.Float64,
    "predicted_eta_sec": pl.Float64,  # the engine's ETA at the flagged block
    "lead_blocks": pl.Int64,
    "lead_seconds": pl.Int64,
    "eta_error_sec": pl.Float64,  # lead_seconds - predicted_eta_sec: > 0 = liquidated later than predicted
}
SCHEMA = {**LIQUIDATION_SCHEMA, **PREDICTION_SCHEMA}
SPEC = DatasetSpec(NAME, SCHEMA, key=("block_number", "log_index"))


def build_liquidation_outcomes(
    rpc: RpcClient,
    market: Market,
    rules: ProtocolRules,
    start: int,
    end: int,
    *,
    candidates: pl.DataFrame | pl.LazyFrame,
    events: pl.DataFrame | None = None,
    lookback_blocks: int | None = None,
) -> pl.DataFrame:
    """`candidates`: liquidation_candidates rows up to `end` (e.g. `lake.scan(...)` from `start - lookback`);
    `events`: this range's pool_events if already built. Reads only the timestamps of the flagged blocks."""
    if events is None:
        events = build_pool_events(rpc, market, rules, start, end)
    liquidations = liquidations_from_events(events.filter(pl.col("block_number").is_between(start, end)))
    users = liquidations["user"].unique().to_list()
    relevant = candidates.lazy().filter(pl.col("user").is_in(users) & (pl.col("block") <= end)).collect()
    joined = join_predictions(liquidations, relevant, {}, lookback_blocks)
    flagged = joined["flagged_block"].drop_nulls().unique().to_list()
    timestamps = block_timestamps(rpc, flagged, NAME) if flagged else {}
    return join_predictions(liquidations, relevant, timestamps, lookback_blocks)


def liquidations_from_events(events: pl.DataFrame) -> pl.DataFrame:
    """LiquidationCall rows of pool_events, in LIQUIDATION_SCHEMA (amounts exact)."""
    calls = events.filter(pl.col("event") == "LiquidationCall")
    rows: dict[str, list] = {name: [] for name in LIQUIDATION_SCHEMA}
    for event in calls.iter_rows(named=True):
        args = event_args(event["args"])
        values = {
            "block_number": event["block_number"],
            "block_timestamp": event["block_timestamp"],
            "log_index": event["log_index"],
            "tx_hash": event["tx_hash"],
            "user": args["user"],
            "collateral_asset": args["collateralAsset"],
            "debt_asset": args["debtAsset"],
            "debt_to_cover": int(args["debtToCover"]),
            "liquidated_collateral_amount": int(args["liquidatedCollateralAmount"]),
            "liquidator": args["liquidator"],
            "receive_a_token": bool(args["receiveAToken"]),
        }
        for name, value in values.items():
            rows[name].append(value)
    return pl.DataFrame(rows, schema=LIQUIDATION_SCHEMA)


def join_predictions(
    liquidations: pl.DataFrame,
    candidates: pl.DataFrame | pl.LazyFrame,
    timestamps: dict[int, int],
    lookback_blocks: int | None = None,
) -> pl.DataFrame:
    """Pure: liquidations (LIQUIDATION_SCHEMA) + candidate rows (CANDIDATE_SCHEMA) + {block: timestamp} of the
    flagged blocks -> SCHEMA. A flagged block missing from `timestamps` gets null seconds."""
    liq = liquidations.select(list(LIQUIDATION_SCHEMA)).with_row_index("_row")
    # previous liquidation of the same user in an EARLIER block (several calls in one block share one window)
    previous = (
        liq.select("user", "block_number")
        .unique()
        .sort("user", "block_number")
        .with_columns(pl.col("block_number").shift(1).over("user").alias("_previous"))
    )
    window = liq.join(previous, on=["user", "block_number"], how="left").with_columns(
        pl.max_horizontal(
            pl.col("_previous") + 1,
            (pl.col("block_number") - lookback_blocks) if lookback_blocks is not None else pl.lit(None, pl.Int64),
        ).alias("_from")
    )
    flags = (
        window.lazy()
        .select("_row", "user", "block_number", "_from")
        .join(
            candidates.lazy().select(
                "user",
                pl.col("block").alias("flagged_block"),
                pl.col("scenario").alias("flagged_scenario"),
                pl.col("eta_sec").alias("predicted_eta_sec"),
                pl.col("hf_current").alias("flagged_hf_current"),
            ),
            on="user",
            how="inner",
        )
        .filter(
            (pl.col("flagged_block") < pl.col("block_number"))
            & (pl.col("_from").is_null() | (pl.col("flagged_block") >= pl.col("_from")))
        )
        .sort("_row", "flagged_block", "predicted_eta_sec", "flagged_scenario", nulls_last=True)
        .group_by("_row", maintain_order=True)
        .first()
        .select("_row", "flagged_block", "flagged_scenario", "predicted_eta_sec", "flagged_hf_current")
        .collect()
    )
    times = pl.DataFrame(
        {"flagged_block": list(timestamps), "flagged_timestamp": list(timestamps.values())},
        schema={"flagged_block": pl.Int64, "flagged_timestamp": pl.Int64},
    )
    out = (
        liq.join(flags, on="_row", how="left")
        .join(times, on="flagged_block", how="left")
        .with_columns(
            pl.col("flagged_block").is_not_null().alias("flagged"),
            (pl.col("block_number") - pl.col("flagged_block")).alias("lead_blocks"),
            (pl.col("block_timestamp") - pl.col("flagged_timestamp")).alias("lead_seconds"),
        )
        .with_columns((pl.col("lead_seconds").cast(pl.Float64) - pl.col("predicted_eta_sec")).alias("eta_error_sec"))
        .sort("_row")
    )
    return out.select(list(SCHEMA)).cast(SCHEMA)


def miss_rate(outcomes: pl.DataFrame, min_lead_blocks: int = 1) -> float | None:
    """Share of on-chain liquidations NOT flagged at least `min_lead_blocks` blocks before; None without any."""
    if outcomes.height == 0:
        return None
    hit = pl.col("flagged_block").is_not_null() & (pl.col("lead_blocks") >= min_lead_blocks)
    return float(outcomes.select((~hit).mean()).item())
