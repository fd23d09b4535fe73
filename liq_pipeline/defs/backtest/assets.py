"""The backtest (issue #14, docs/backtest.md) as Dagster assets, one partition per block range:

- `crossings`: the chain's truth over the range (Pool.getUserAccountData of every borrower at every block, the
  LiquidationCall events) and the crossings it implies (HF >= 1, then < 1);
- `predictions`: the watcher's Tracker and engine replayed block by block over the range (a price window early);
- `backtest_report`: the grading (`backtest.grading.grade`), the report (JSON, Markdown), its plots; the headline
  figures as numeric metadata, the plots as Markdown images in the UI.

Each partition is one backtest of its range, as `liq backtest --from-block START --to-block END` grades it (the same
library calls: `run.plan_range`, `read_chain_facts`, `replay_engine`, `grade`); its files go to
DATA_DIR/backtest/ranges/<key>/ (store.py). The engine graded is the one the settings describe (`engine_params`); the
report is `run_backtest`'s (`header`, `grade_replay`).

Checks on `backtest_report`, run in its step:
- `recall_at_cross` (blocking, ERROR): every crossing of the range flagged at its block (exact decisions: 1.0);
- `precision` (WARN): precision within the horizon at least BACKTEST_MIN_PRECISION;
- `lead_time` (WARN): lead time p50 at least BACKTEST_MIN_LEAD_TIME_S.
A figure with nothing to measure (no crossing, no flag judged) passes, and says so.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import base64
import json
import time

import dagster as dg
import polars as pl

from ...backtest import grading, plots
from ...backtest.grading import Window
from ...backtest.moves import price_moves
from ...backtest.replay import Replay
from ...backtest.report import render_markdown
from ...backtest.run import (
    BacktestError,
    ChainFacts,
    Plan,
    grade_replay,
    header,
    plan_range,
    read_chain_facts,
    replay_engine,
)
from ...backtest.truth import crossings as truth_crossings
from ...chain.discovery import ReaderError
from ...chain.rpc import NodeUnavailable, RpcError
from ...config import Settings
from ...evaluation.params import engine_params
from ...lake.errors import LakeError
from ..market import KEY_PREFIX, asset_key
from ..partitions import block_range_of, block_ranges
from ..resources import ChainResource
from .store import RangeFiles

GROUP = "backtest"
CHECK_RECALL = "recall_at_cross"
CHECK_PRECISION = "precision"
CHECK_LEAD_TIME = "lead_time"
# the report's headline figures, as numeric metadata of every materialization (plotted over partitions by the UI)
HEADLINE = (
    "crossings",
    "recall_at_cross",
    "flagged_ahead_share",
    "precision_within_horizon",
    "base_rate_within_horizon",
    "lead_time_p50_s",
    "candidates_per_block_p50",
    "liquidations_onchain",
    "liquidations_unflagged",
)
_FAILURES = (BacktestError, ReaderError, LakeError, RpcError, NodeUnavailable, ValueError)


def _fail(context, what: str, error: Exception) -> dg.Failure:
    text = " ".join(str(error).split())
    return dg.Failure(f"range {context.partition_key}: {what}: {text}")


def _progress(context):
    """The library's progress callback: one log line per stage when it ends."""

    def tick(stage: str, done: int, total: int) -> None:
        if total and done == total:
            context.log.info(f"{stage}: {done} of {total} done")

    return tick


def _stored_plan(context, files: RangeFiles) -> Plan:
    try:
        return files.plan()
    except FileNotFoundError:
        raise dg.Failure(
            f"range {context.partition_key}: no `crossings` of this range in {files.root}: materialize it first"
        ) from None


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"parquet"},
    description="The chain's truth over the range: Pool.getUserAccountData of every borrower at every block, the "
    "LiquidationCall events, and the crossings (the Pool says HF >= 1, then < 1). Graded from the node's first "
    "block with state at the earliest.",
)
def crossings(context: dg.AssetExecutionContext, chain: ChainResource) -> dg.MaterializeResult:
    began = time.perf_counter()
    settings = chain.settings()
    if settings.aave_addresses_provider is None:
        raise dg.Failure("AAVE_ADDRESSES_PROVIDER is not set")
    start, end = block_range_of(context)
    files = RangeFiles(settings, context.partition_key)
    with chain.client() as rpc:
        try:
            plan = plan_range(rpc, settings, start, end)
            facts = read_chain_facts(rpc, settings, plan, _progress(context))
        except _FAILURES as error:
            raise _fail(context, "crossings", error) from None
    crossed = truth_crossings(facts.truth).filter(pl.col("block").is_between(plan.graded_from, plan.to_block))
    files.write_plan(plan)
    files.write_truth(facts.truth, plan)
    files.write_frame("seen", facts.seen)
    files.write_frame("liquidations", facts.liquidations)
    files.write_frame("crossings", crossed)
    seconds = round(time.perf_counter() - began, 3)
    files.write_json("crossings", {"seconds": seconds})
    if plan.clamped:
        context.log.info(
            f"blocks {start}-{plan.graded_from - 1} have no state on this node (first block with state: "
            f"{plan.state_from}): grading {plan.graded_from}-{end}"
        )
    return dg.MaterializeResult(
        metadata={
            "crossings": crossed.height,
            "users_crossing": crossed["user"].n_unique(),
            "borrowers": int((facts.seen["first_block"] <= plan.to_block).sum()),
            "truth_reads": facts.truth.height,
            "liquidations_onchain": facts.liquidations.height,
            "graded_from_block": plan.graded_from,
            "last_block": plan.to_block,
            "blocks": plan.blocks,
            "first_block_with_state": plan.state_from,
            "duration_s": seconds,
            "path": dg.MetadataValue.path(str(files.root)),
        }
    )


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[crossings],
    description="The watcher's Tracker and engine replayed block by block over the range (from a price window "
    "before it), reading nothing from a later block: every candidate (HF, scenario HF, projected HF, ETA, sizing).",
)
def predictions(context: dg.AssetExecutionContext, chain: ChainResource) -> dg.MaterializeResult:
    began = time.perf_counter()
    settings = chain.settings()
    files = RangeFiles(settings, context.partition_key)
    plan = _stored_plan(context, files)
    params = engine_params(settings)
    with chain.client() as rpc:
        try:
            replayed = replay_engine(rpc, settings, plan, files.frame("seen"), params, _progress(context))
        except _FAILURES as error:
            raise _fail(context, "predictions", error) from None
    files.write_predictions(replayed.predictions, plan)
    files.write_frame("replay_blocks", replayed.blocks)
    files.write_frame("replay_prices", replayed.prices)
    seconds = round(time.perf_counter() - began, 3)
    files.write_json("predictions", {"seconds": seconds, "deferred_users": replayed.deferred_users})
    graded = replayed.predictions.filter(pl.col("block") >= plan.graded_from)
    return dg.MaterializeResult(
        metadata={
            "rows": replayed.predictions.height,
            "rows_graded_blocks": graded.height,
            "users_flagged": graded["user"].n_unique(),
            "replay_from_block": plan.replay_from,
            "last_block": plan.to_block,
            "deferred_users": replayed.deferred_users,
            "scenarios": ", ".join(spec.name for spec in params.scenarios),
            "predictive_enabled": settings.predictive_enabled,
            "duration_s": seconds,
            "path": dg.MetadataValue.path(str(files.lake.folder("predictions"))),
        }
    )


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"json", "markdown"},
    deps=[crossings, predictions],
    description="The engine graded by the chain over the range (docs/backtest.md): recall at the crossing, flagged "
    "ahead, lead time, precision within the horizon, candidates per block, liquidations never flagged; with plots.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_RECALL,
            asset=asset_key("backtest_report"),
            blocking=True,
            description="Every crossing of the range flagged at its block (recall at the crossing = 1.0)",
        ),
        dg.AssetCheckSpec(
            CHECK_PRECISION,
            asset=asset_key("backtest_report"),
            description="Precision within the horizon at least BACKTEST_MIN_PRECISION",
        ),
        dg.AssetCheckSpec(
            CHECK_LEAD_TIME,
            asset=asset_key("backtest_report"),
            description="Lead time p50 at least BACKTEST_MIN_LEAD_TIME_S",
        ),
    ],
)
def backtest_report(context: dg.AssetExecutionContext, chain: ChainResource) -> dg.MaterializeResult:
    began = time.perf_counter()
    settings = chain.settings()
    files = RangeFiles(settings, context.partition_key)
    plan = _stored_plan(context, files)
    try:
        report, pngs = build_report(files, plan, settings)
    except (LakeError, FileNotFoundError) as error:
        raise _fail(context, "backtest_report (materialize crossings and predictions first)", error) from None
    markdown = render_markdown(report)
    paths = files.write_report(report, markdown, pngs)
    metadata = {
        **headline_metadata(report),
        "graded_from_block": plan.graded_from,
        "last_block": plan.to_block,
        "duration_s": round(time.perf_counter() - began, 3),
        "path": dg.MetadataValue.path(str(files.report_path)),
        **{f"plot_{name}": png_markdown(name, pngs[name]) for name in plots.PLOTS},
        "report": dg.MetadataValue.md(markdown),
    }
    context.log.info(f"report: {files.report_path}; plots: {', '.join(str(p) for p in paths.values())}")
    return dg.MaterializeResult(metadata=metadata, check_results=report_checks(report, settings))


def build_report(files: RangeFiles, plan: Plan, settings: Settings) -> tuple[dict, dict[str, bytes]]:
    """The report as `liq backtest` writes it, from the partition's stored frames, and its plots."""
    clock = time.perf_counter()
    params = engine_params(settings)
    scenarios = [spec.name for spec in params.scenarios]
    truth, predicted = files.truth(plan), files.predictions(plan)
    blocks, prices = files.frame("replay_blocks"), files.frame("replay_prices")
    facts = ChainFacts(files.frame("seen"), truth, files.frame("liquidations"))
    replay_facts = files.json("predictions")
    replayed = Replay(predicted, blocks, prices, int(replay_facts.get("deferred_users", 0)))
    graded = grade_replay(plan, settings, params, facts, replayed)
    seconds = {
        "truth": files.json("crossings").get("seconds"),
        "replay": replay_facts.get("seconds"),
        "grading": round(time.perf_counter() - clock, 2),
    }
    report = {**header(plan, settings, params, facts, replayed), **graded, "seconds": seconds}
    window = Window(plan.graded_from, plan.to_block, float(settings.predictive_horizon_sec))  # as grade_replay's
    moves = price_moves(prices)
    leads = grading.crossing_leads(truth, blocks, predicted, moves, window, scenarios)
    candidates = plots.candidates_frame(predicted, window, scenarios)
    return report, plots.render_all(report, leads, candidates)


def headline_metadata(report: dict) -> dict:
    """The headline figures as numbers (null where there is nothing to measure), overall and per scenario."""
    out = {key: _number(report.get(key)) for key in HEADLINE}
    for name, values in report.get("scenarios", {}).items():
        for key in ("flagged_ahead_share", "precision_within_horizon", "lead_time_p50_s"):
            out[f"{name}_{key}"] = _number(values.get(key))
    return out


def png_markdown(name: str, png: bytes) -> dg.MetadataValue:
    """A PNG shown in the UI: Markdown metadata holding the image as a data URI."""
    return dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})")


def report_checks(report: dict, settings: Settings) -> list[dg.AssetCheckResult]:
    return [
        recall_check(report),
        precision_check(report, settings.backtest_min_precision),
        lead_time_check(report, settings.backtest_min_lead_time_s),
    ]


def recall_check(report: dict) -> dg.AssetCheckResult:
    recall = report.get("recall_at_cross")
    return dg.AssetCheckResult(
        check_name=CHECK_RECALL,
        passed=recall is None or recall >= 1.0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "recall_at_cross": _number(recall),
            "crossings": report.get("crossings", 0),
            "per_scenario": json.dumps({n: s.get("recall_at_cross") for n, s in report.get("scenarios", {}).items()}),
            "note": "no crossing in the range" if recall is None else "",
        },
    )


def precision_check(report: dict, floor: float) -> dg.AssetCheckResult:
    precision = report.get("precision_within_horizon")
    return dg.AssetCheckResult(
        check_name=CHECK_PRECISION,
        passed=precision is None or precision >= floor,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "precision_within_horizon": _number(precision),
            "floor": floor,
            "base_rate_within_horizon": _number(report.get("base_rate_within_horizon")),
            "flags_judged": report.get("flags_judged", 0),
            "note": "no flag could be judged" if precision is None else "",
        },
    )


def lead_time_check(report: dict, floor_s: float) -> dg.AssetCheckResult:
    lead = report.get("lead_time_p50_s")
    return dg.AssetCheckResult(
        check_name=CHECK_LEAD_TIME,
        passed=lead is None or lead >= floor_s,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "lead_time_p50_s": _number(lead),
            "floor_s": floor_s,
            "flagged_ahead_share": _number(report.get("flagged_ahead_share")),
            "note": "no crossing flagged at or before its block" if lead is None else "",
        },
    )


def _number(value) -> dg.MetadataValue:
    if value is None:
        return dg.MetadataValue.null()
    return dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(float(value))


BACKTEST_ASSETS = [crossings, predictions, backtest_report]

backtest_ranges_job = dg.define_asset_job(
    "backtest_ranges",
    selection=[a.key for a in BACKTEST_ASSETS],
    description="Backtest one block range: the chain's truth, the engine replayed, the report with its checks.",
)
