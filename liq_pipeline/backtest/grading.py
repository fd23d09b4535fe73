"""The grading: predictions against the chain's truth, per scenario and overall. Pure: frames in, a dict out.

Inputs (the truth and the replay in `run.py`; hand-built frames in the tests):
- `truth`: (block, user, liquidatable) for every known user at every block from the truth's first block (the block
  before the graded range where the node has it) to `to_block`: the Pool's verdict (`truth.SCHEMA`);
- `blocks`: (block, block_timestamp) of every block the truth or the predictions name;
- `predictions`: candidate rows (block, user, scenario, eta_sec[, hf_current]) of any block up to `to_block`
  (flags before the graded range count for lead times);
- `liquidations`: LiquidationCall rows (`liquidation_outcomes.LIQUIDATION_SCHEMA`);
- `moves`: (block, move) (`moves.price_moves`).

A predictor flags (block, user) when it holds any candidate row for them there: one scenario's rows grade that
scenario, all rows together the engine overall (flagged in any scenario). With H = `Window.horizon_sec`:
- crossing (truth.crossings): the Pool says HF < 1 at block c and said >= 1 at c - 1; graded for c in the range;
- recall_at_cross: share of crossings flagged at c;
- flagged_ahead_share: share of crossings flagged at c - 1, i.e. at least one block ahead;
- first flag: the first block of the unbroken run of flagged blocks holding c - 1; else c when flagged there;
  lead time = c - first flag, in blocks and seconds, over crossings flagged at or before c (p50); a run that
  starts at the first block of `blocks` may have begun earlier: counted from there, and said (`lead_censored`);
- eta_error: lead seconds - the ETA at the first flag, over crossings flagged ahead (> 0: later than predicted);
- precision_within_horizon: of the flags at blocks of the range where the Pool says HF >= 1, those whose horizon
  ends within the truth (timestamp + H <= the last block's), the share whose user the Pool says is below 1 at a
  later block at most H seconds on. Later flags are censored: the chain has not said yet. base_rate_within_horizon
  is the same share over every such (block, user) the Pool knows: what a predictor flagging everyone scores;
- candidates_per_block_p50: users flagged per block of the range (blocks without a flag count 0);
- recall_liquidatable: share of (block, user) the Pool says are below 1 that are flagged at that block;
- calibration: the precision flags by ETA bucket: how many crossed within H, how long it took, the ETA's error;
- liquidations (LiquidationCall in the range): unflagged = no flag strictly before it since the user's previous
  liquidation (`liquidation_outcomes.join_predictions`, the lake's own rule); flagged late = flagged, but only
  once the Pool already said HF < 1 (`liquidation_late_blocks`: first flag - first block below 1, 0 when ahead);
- by_price_move: the crossing figures by the jump of the oracle at c (`moves.MOVE_BUCKETS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ..lake.datasets.liquidation_outcomes import LIQUIDATION_SCHEMA, join_predictions
from .moves import MOVE_BUCKETS, UNKNOWN, move_bucket
from .truth import crossings as truth_crossings

ETA_BUCKETS: tuple[tuple[float, str], ...] = (
    (0.0, "0s"),  # at or below the threshold already (HF < 1 + buffer) but not yet below 1
    (30.0, "0-30s"),
    (60.0, "30-60s"),
    (120.0, "60-120s"),
    (float("inf"), ">120s"),
)
DIGITS = 4


@dataclass(frozen=True)
class Window:
    from_block: int  # the graded range
    to_block: int
    horizon_sec: float  # PREDICTIVE_HORIZON_SEC: what "within the horizon" means


@dataclass(frozen=True)
class _Context:
    """What every predictor is graded against: computed once from the truth."""

    window: Window
    times: pl.DataFrame  # block, block_timestamp
    graded_blocks: pl.DataFrame  # block: every block of the range
    crossings: pl.DataFrame  # user, block, block_timestamp, bucket
    forward: pl.DataFrame  # block, user, crosses_within, time_to_liquidatable_s: HF >= 1, horizon judged
    below: pl.DataFrame  # block, user: the Pool says HF < 1 (blocks of the range)
    liquidations: pl.DataFrame  # LIQUIDATION_SCHEMA rows of the range, + since (first block below 1)
    timestamps: dict[int, int]
    first_block: int | None  # the first block predictions could come from: a run starting there began earlier
    block_moves: pl.DataFrame  # block, bucket: the move bucket of every graded block


def grade(
    truth: pl.DataFrame,
    blocks: pl.DataFrame,
    predictions: pl.DataFrame,
    liquidations: pl.DataFrame,
    moves: pl.DataFrame,
    window: Window,
    scenarios: Sequence[str] | None = None,
) -> dict:
    """The report: the overall figures at the top level, each scenario's under `scenarios` (default: every
    scenario in `predictions`)."""
    context = _context(truth, blocks, liquidations, moves, window)
    rows = _normalized(predictions).filter(pl.col("block") <= window.to_block)
    names = list(scenarios) if scenarios is not None else sorted(rows["scenario"].unique().to_list())
    report = _grade(rows, context)
    report["scenarios"] = {name: _grade(rows.filter(pl.col("scenario") == name), context) for name in names}
    return report


def crossing_leads(
    truth: pl.DataFrame,
    blocks: pl.DataFrame,
    predictions: pl.DataFrame,
    moves: pl.DataFrame,
    window: Window,
    scenarios: Sequence[str],
) -> pl.DataFrame:
    """(scenario, user, block, at_cross, ahead, lead_blocks, lead_s) per graded crossing, per scenario and overall
    (`lead_s` null: not flagged at or before the crossing)."""
    context = _context(truth, blocks, pl.DataFrame(schema=LIQUIDATION_SCHEMA), moves, window)
    rows = _normalized(predictions).filter(pl.col("block") <= window.to_block)
    parts = []
    for name in ("overall", *scenarios):
        chosen = rows if name == "overall" else rows.filter(pl.col("scenario") == name)
        crossed = _crossings(_flags(chosen), context)
        parts.append(
            crossed.select(
                pl.lit(name).alias("scenario"),
                "user",
                "block",
                "at_cross",
                "ahead",
                pl.col("lead_blocks").cast(pl.Int64),
                pl.col("lead_s").cast(pl.Float64),
            )
        )
    return pl.concat(parts)


def _normalized(predictions: pl.DataFrame) -> pl.DataFrame:
    hf = pl.col("hf_current") if "hf_current" in predictions.columns else pl.lit(None, pl.Float64)
    return predictions.select(
        pl.col("block").cast(pl.Int64),
        pl.col("user").cast(pl.String),
        pl.col("scenario").cast(pl.String),
        pl.col("eta_sec").cast(pl.Float64),
        hf.cast(pl.Float64).alias("hf_current"),
    )


def _context(
    truth: pl.DataFrame, blocks: pl.DataFrame, liquidations: pl.DataFrame, moves: pl.DataFrame, window: Window
) -> _Context:
    times = blocks.select(pl.col("block").cast(pl.Int64), pl.col("block_timestamp").cast(pl.Int64)).unique("block")
    in_range = pl.col("block").is_between(window.from_block, window.to_block)
    last = times.filter(pl.col("block") <= window.to_block)["block_timestamp"].max()
    states = (
        truth.select(pl.col("block").cast(pl.Int64), "user", "liquidatable")
        .join(times, on="block", how="left")
        .sort("user", "block")
    )
    crossed = (
        truth_crossings(states)
        .filter(in_range)
        .join(moves.select(pl.col("block").cast(pl.Int64), "move"), on="block", how="left")
        .with_columns(move_bucket(pl.col("move")).alias("bucket"))
    )
    return _Context(
        window=window,
        times=times,
        graded_blocks=times.filter(in_range).select("block"),
        crossings=crossed,
        forward=_forward(states, window, last).filter(in_range),
        below=states.filter(in_range & pl.col("liquidatable")).select("block", "user"),
        liquidations=_liquidations_since(states, liquidations, window),
        timestamps=dict(times.iter_rows()),
        first_block=times["block"].min(),
        block_moves=times.filter(in_range)
        .select("block")
        .join(moves.select(pl.col("block").cast(pl.Int64), "move"), on="block", how="left")
        .select("block", move_bucket(pl.col("move")).alias("bucket")),
    )


def _forward(states: pl.DataFrame, window: Window, last_timestamp: int | None) -> pl.DataFrame:
    """Per (block, user) at HF >= 1 whose horizon the truth covers: when the Pool next says HF < 1, and whether
    that is within the horizon."""
    below_at = pl.when(pl.col("liquidatable"))
    following = (
        states.with_columns(
            # the next block strictly after this one where the Pool says HF < 1 (rows sorted by user, block)
            below_at.then(pl.col("block_timestamp")).shift(-1).backward_fill().over("user").alias("_next_ts"),
        )
        .filter(~pl.col("liquidatable"))
        .with_columns((pl.col("_next_ts") - pl.col("block_timestamp")).alias("time_to_liquidatable_s"))
    )
    if last_timestamp is None:
        return following.clear().select(
            "block", "user", pl.lit(False).alias("crosses_within"), "time_to_liquidatable_s"
        )
    horizon = window.horizon_sec
    return following.filter(pl.col("block_timestamp") + horizon <= last_timestamp).select(
        "block",
        "user",
        (pl.col("time_to_liquidatable_s").is_not_null() & (pl.col("time_to_liquidatable_s") <= horizon)).alias(
            "crosses_within"
        ),
        "time_to_liquidatable_s",
    )


def _liquidations_since(states: pl.DataFrame, liquidations: pl.DataFrame, window: Window) -> pl.DataFrame:
    """The range's liquidations with `since`: the first block of the Pool's unbroken HF < 1 run holding the block
    before the liquidation, or the liquidation's own block when the Pool said HF >= 1 (or nothing) just before;
    never before the block after the user's previous liquidation."""
    runs = (
        states.with_columns(
            (
                (pl.col("liquidatable") != pl.col("liquidatable").shift(1).over("user"))
                | (pl.col("block") - pl.col("block").shift(1).over("user") != 1)
            )
            .fill_null(True)
            .alias("_change")
        )
        .with_columns(pl.col("_change").cum_sum().over("user").alias("_run"))
        .with_columns(pl.col("block").min().over("user", "_run").alias("_run_start"))
        .select("user", (pl.col("block") + 1).alias("block_number"), "liquidatable", "_run_start")
    )
    return (
        liquidations.select(list(LIQUIDATION_SCHEMA))
        .cast({"block_number": pl.Int64})
        .filter(pl.col("block_number").is_between(window.from_block, window.to_block))
        .join(runs, on=["user", "block_number"], how="left")
        .with_columns(
            pl.when(pl.col("liquidatable").fill_null(False))
            .then(pl.col("_run_start"))
            .otherwise(pl.col("block_number"))
            .alias("since")
        )
        .join(_previous_liquidation(liquidations), on=["user", "block_number"], how="left")
        # a user liquidated again while still below 1: the clock restarts after the previous liquidation
        .with_columns(pl.max_horizontal("since", pl.col("_previous") + 1).alias("since"))
        .drop("liquidatable", "_run_start", "_previous")
        .sort("block_number", "log_index")
    )


def _previous_liquidation(liquidations: pl.DataFrame) -> pl.DataFrame:
    """(user, block_number, _previous): the user's liquidation in an earlier block, as join_predictions' window."""
    return (
        liquidations.select("user", pl.col("block_number").cast(pl.Int64))
        .unique()
        .sort("user", "block_number")
        .with_columns(pl.col("block_number").shift(1).over("user").alias("_previous"))
    )


def _flags(rows: pl.DataFrame) -> pl.DataFrame:
    """(block, user) flagged, the smallest ETA there, and the run of consecutive flagged blocks it belongs to."""
    return (
        rows.group_by("block", "user")
        .agg(pl.col("eta_sec").min())
        .sort("user", "block")
        .with_columns((pl.col("block") - pl.col("block").shift(1).over("user") != 1).fill_null(True).alias("_new"))
        .with_columns(pl.col("_new").cum_sum().over("user").alias("_run"))
        .with_columns(
            pl.col("block").first().over("user", "_run").alias("run_start"),
            pl.col("eta_sec").first().over("user", "_run").alias("run_eta"),
        )
        .drop("_new", "_run")
    )


def _grade(rows: pl.DataFrame, ctx: _Context) -> dict:
    flags = _flags(rows)
    in_range = pl.col("block").is_between(ctx.window.from_block, ctx.window.to_block)
    graded = flags.filter(in_range)
    crossings = _crossings(flags, ctx)
    judged = graded.join(ctx.forward, on=["block", "user"], how="inner")
    counts = ctx.block_moves.join(graded.group_by("block").len(), on="block", how="left").select(
        "block", "bucket", pl.col("len").fill_null(0)
    )
    per_block = counts["len"]
    below = ctx.below.join(graded.select("block", "user", pl.lit(True).alias("_f")), on=["block", "user"], how="left")
    return {
        **_crossing_figures(crossings),
        "eta_error_p50_s": _median(crossings.filter(pl.col("ahead"))["eta_error_s"]),
        "precision_within_horizon": _mean(judged["crosses_within"]),
        "flags_judged": judged.height,
        "base_rate_within_horizon": _mean(ctx.forward["crosses_within"]),
        "candidates_per_block_p50": _median(per_block),
        "recall_liquidatable": _mean(below["_f"].is_not_null()),
        **_liquidation_figures(rows, ctx),
        "calibration": _calibration(judged),
        "by_price_move": _by_move(crossings, judged.join(ctx.block_moves, on="block", how="left"), counts),
    }


def _crossings(flags: pl.DataFrame, ctx: _Context) -> pl.DataFrame:
    at_cross = flags.select("user", "block", pl.lit(True).alias("at_cross"))
    ahead = flags.select("user", (pl.col("block") + 1).alias("block"), "run_start", "run_eta")
    first_times = ctx.times.rename({"block": "first_flag", "block_timestamp": "_first_ts"})
    return (
        ctx.crossings.join(at_cross, on=["user", "block"], how="left")
        .join(ahead, on=["user", "block"], how="left")
        .with_columns(pl.col("at_cross").fill_null(False), pl.col("run_start").is_not_null().alias("ahead"))
        .with_columns(
            pl.coalesce(pl.col("run_start"), pl.when(pl.col("at_cross")).then(pl.col("block"))).alias("first_flag")
        )
        .join(first_times, on="first_flag", how="left")
        .with_columns(
            (pl.col("block") - pl.col("first_flag")).alias("lead_blocks"),
            (pl.col("block_timestamp") - pl.col("_first_ts")).alias("lead_s"),
            (pl.col("first_flag") == pl.lit(ctx.first_block, pl.Int64)).fill_null(False).alias("lead_censored"),
        )
        .with_columns((pl.col("lead_s").cast(pl.Float64) - pl.col("run_eta")).alias("eta_error_s"))
    )


def _crossing_figures(crossings: pl.DataFrame) -> dict:
    return {
        "crossings": crossings.height,
        "recall_at_cross": _mean(crossings["at_cross"]),
        "flagged_ahead_share": _mean(crossings["ahead"]),
        "lead_time_p50_blocks": _median(crossings["lead_blocks"]),
        "lead_time_p50_s": _median(crossings["lead_s"]),
        "lead_censored": int(crossings["lead_censored"].sum()),
    }


def _liquidation_figures(rows: pl.DataFrame, ctx: _Context) -> dict:
    liquidations = ctx.liquidations
    outcomes = join_predictions(liquidations.select(list(LIQUIDATION_SCHEMA)), rows, ctx.timestamps)
    graded = outcomes.with_columns(liquidations["since"]).with_columns(
        pl.when(pl.col("flagged")).then((pl.col("flagged_block") - pl.col("since")).clip(lower_bound=0)).alias("late")
    )
    flagged = graded.filter(pl.col("flagged"))
    return {
        "liquidations_onchain": graded.height,
        "liquidations_unflagged": graded.height - flagged.height,
        "liquidations_flagged_late": int((flagged["late"] > 0).sum()),
        "liquidation_late_blocks_p50": _median(flagged["late"]),
        "liquidation_late_blocks_max": flagged["late"].max() if flagged.height else None,
        "liquidation_lead_blocks_p50": _median(flagged["lead_blocks"]),
    }


def _calibration(judged: pl.DataFrame) -> list[dict]:
    """Per ETA bucket of the judged flags: how many, the share that crossed within the horizon, and for those the
    time it took and the error of the ETA (time taken - ETA: > 0 later than predicted)."""
    if judged.height == 0:
        return []
    labelled = judged.with_columns(_eta_bucket(pl.col("eta_sec")).alias("eta_bucket"))
    crossed = pl.col("crosses_within")
    table = labelled.group_by("eta_bucket").agg(
        pl.len().alias("flags"),
        crossed.mean().alias("crossed_share"),
        pl.col("time_to_liquidatable_s").filter(crossed).median().alias("time_to_liquidatable_p50_s"),
        (pl.col("time_to_liquidatable_s") - pl.col("eta_sec")).filter(crossed).median().alias("eta_error_p50_s"),
    )
    order = {label: at for at, (_, label) in enumerate(ETA_BUCKETS)}
    rows = sorted(table.iter_rows(named=True), key=lambda row: order[row["eta_bucket"]])
    return [{key: _rounded(value) for key, value in row.items()} for row in rows]


def _eta_bucket(eta: pl.Expr) -> pl.Expr:
    expression = pl.when(eta <= ETA_BUCKETS[0][0]).then(pl.lit(ETA_BUCKETS[0][1]))
    for bound, label in ETA_BUCKETS[1:]:
        expression = expression.when(eta <= bound).then(pl.lit(label))
    return expression.otherwise(pl.lit(ETA_BUCKETS[-1][1]))


def _by_move(crossings: pl.DataFrame, judged: pl.DataFrame, counts: pl.DataFrame) -> dict[str, dict]:
    """Per move bucket: the crossings after such a move (at their block), and the flags raised and candidates held
    at blocks with such a move (precision, candidates per block: a shock's block against the quiet ones)."""
    labels = [label for _, label in MOVE_BUCKETS]
    if crossings.filter(pl.col("bucket") == UNKNOWN).height or counts.filter(pl.col("bucket") == UNKNOWN).height:
        labels.append(UNKNOWN)
    out = {}
    for label in labels:
        flags = judged.filter(pl.col("bucket") == label)
        blocks = counts.filter(pl.col("bucket") == label)
        out[label] = {
            **_crossing_figures(crossings.filter(pl.col("bucket") == label)),
            "blocks": blocks.height,
            "precision_within_horizon": _mean(flags["crosses_within"]),
            "flags_judged": flags.height,
            "candidates_per_block_p50": _median(blocks["len"]),
        }
    return out


def _mean(values: pl.Series) -> float | None:
    values = values.drop_nulls()
    return _rounded(values.cast(pl.Float64).mean()) if values.len() else None


def _median(values: pl.Series) -> float | None:
    values = values.drop_nulls()
    return _rounded(values.cast(pl.Float64).median()) if values.len() else None


def _rounded(value):
    return round(value, DIGITS) if isinstance(value, float) else value
