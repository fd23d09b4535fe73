"""What a backtest leaves in its directory: the report (Markdown and JSON) and its frames as lake datasets.

DIR/report.md, DIR/report.json
DIR/plots/{lead_time_histogram,frontier,eta_calibration,candidates_per_block}.png   (a sweep adds sweep_frontier)
DIR/lake/predictions/predictions__{start}_to_{end}.parquet        the replayed engine's candidates
DIR/lake/account_health/account_health__{start}_to_{end}.parquet  the Pool's getUserAccountData
DIR/sweep/point-{n}/lake/flags/flags__{start}_to_{end}.parquet    a sweep's: each point's flags (what grading reads)
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ..lake.files import write_bytes_atomic
from . import plots
from .datasets import FLAGS, PREDICTIONS, backtest_lake, write_frames
from .grading import Window, crossing_leads
from .moves import price_moves
from .replay_many import flags
from .report import render_markdown
from .run import Backtest
from .sweep import Sweep
from .truth import NAME as TRUTH


def write_outputs(
    backtest: Backtest, out_dir: Path, range_size: int, extra_plots: dict[str, bytes] | None = None
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = backtest.plan
    lake = backtest_lake(out_dir / "lake", range_size)
    # predictions from the replay's first block: flags before the graded range count for lead times
    write_frames(lake, PREDICTIONS, backtest.replay.predictions, plan.replay_from, plan.to_block)
    write_frames(lake, TRUTH, backtest.facts.truth, plan.truth_from, plan.to_block)
    paths = {"markdown": out_dir / "report.md", "json": out_dir / "report.json", "lake": lake.root}
    images = {}
    for name, png in {**render_plots(backtest), **(extra_plots or {})}.items():
        write_bytes_atomic(out_dir / "plots" / f"{name}.png", png)
        images[name.replace("_", " ")] = f"plots/{name}.png"
    _write_text(paths["markdown"], render_markdown(backtest.report, images))
    _write_text(paths["json"], json.dumps(backtest.report, indent=2, allow_nan=False) + "\n")
    return paths


def render_plots(backtest: Backtest) -> dict[str, bytes]:
    """The report's four plots (plots.PLOTS), from the frames it was graded from (as the Dagster asset draws them)."""
    report, plan, replayed = backtest.report, backtest.plan, backtest.replay
    engine = report["engine"]
    window = Window(plan.graded_from, plan.to_block, float(engine["graded_horizon_sec"]))
    scenarios = list(engine["scenarios"])
    leads = crossing_leads(
        backtest.facts.truth, replayed.blocks, replayed.predictions, price_moves(replayed.prices), window, scenarios
    )
    return plots.render_all(report, leads, plots.candidates_frame(replayed.predictions, window, scenarios))


def sweep_frontier(report: dict) -> bytes:
    """Every sweep point (overall figures): grey, the frontier's black, the recommendation red; today's settings and
    the recommendation named."""
    frontier_at = {p["point"] for p in report.get("frontier", [])}
    best = (report.get("recommended") or {}).get("point")
    shown = []
    for point in report["sweep"]:
        color = "#d62728" if point["point"] == best else "#222222" if point["point"] in frontier_at else "#bbbbbb"
        shown.append(
            {
                "name": _point_names(point, best),
                "color": color,
                "precision": point.get("precision_within_horizon"),
                "recall_ahead": point.get("flagged_ahead_share"),
                "lead_s": point.get("lead_time_p50_s"),
                "labelled": bool(_point_names(point, best)),
            }
        )
    title = f"{len(shown)} settings, blocks {report['graded_from_block']}-{report['to_block']}"
    return plots.frontier(shown, report.get("base_rate_within_horizon"), title, zoom=True)


def _write_text(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a report."""
    write_bytes_atomic(path, text.encode())


def _point_names(point: dict, best: int | None) -> str:
    names = ["current"] if point["label"] == "current" else []
    return " = ".join([*names, "recommended"] if point["point"] == best else names)


def write_sweep(sweep: Sweep, out_dir: Path, range_size: int) -> dict[str, Path]:
    """The current point's report (with the sweep's keys) and datasets, then every point's predictions."""
    frontier_png = sweep_frontier(sweep.backtest.report)
    paths = write_outputs(sweep.backtest, out_dir, range_size, {"sweep_frontier": frontier_png})
    plan = sweep.backtest.plan
    for point, replayed in zip(sweep.points, sweep.replays, strict=True):
        lake = backtest_lake(out_dir / "sweep" / f"point-{point['point']}" / "lake", range_size)
        rows = flags(replayed.predictions).cast({"user": pl.String, "scenario": pl.String})
        write_frames(lake, FLAGS, rows, plan.replay_from, plan.to_block)
    return paths
