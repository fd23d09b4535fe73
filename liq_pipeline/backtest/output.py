"""What a backtest leaves in its directory: the report (Markdown and JSON) and its frames as lake datasets.

DIR/report.md, DIR/report.json
DIR/lake/predictions/predictions__{start}_to_{end}.parquet        the replayed engine's candidates
DIR/lake/account_health/account_health__{start}_to_{end}.parquet  the Pool's getUserAccountData
DIR/sweep/point-{n}/lake/flags/flags__{start}_to_{end}.parquet    a sweep's: each point's flags (what grading reads)
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ..lake.files import write_bytes_atomic
from .datasets import FLAGS, PREDICTIONS, backtest_lake, write_frames
from .replay_many import flags
from .report import render_markdown
from .run import Backtest
from .sweep import Sweep
from .truth import NAME as TRUTH


def write_outputs(backtest: Backtest, out_dir: Path, range_size: int) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = backtest.plan
    lake = backtest_lake(out_dir / "lake", range_size)
    # predictions from the replay's first block: flags before the graded range count for lead times
    write_frames(lake, PREDICTIONS, backtest.replay.predictions, plan.replay_from, plan.to_block)
    write_frames(lake, TRUTH, backtest.facts.truth, plan.truth_from, plan.to_block)
    paths = {"markdown": out_dir / "report.md", "json": out_dir / "report.json", "lake": lake.root}
    _write_text(paths["markdown"], render_markdown(backtest.report))
    _write_text(paths["json"], json.dumps(backtest.report, indent=2, allow_nan=False) + "\n")
    return paths


def _write_text(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a report."""
    write_bytes_atomic(path, text.encode())


def write_sweep(sweep: Sweep, out_dir: Path, range_size: int) -> dict[str, Path]:
    """The current point's report (with the sweep's keys) and datasets, then every point's predictions."""
    paths = write_outputs(sweep.backtest, out_dir, range_size)
    plan = sweep.backtest.plan
    for point, replayed in zip(sweep.points, sweep.replays, strict=True):
        lake = backtest_lake(out_dir / "sweep" / f"point-{point['point']}" / "lake", range_size)
        rows = flags(replayed.predictions).cast({"user": pl.String, "scenario": pl.String})
        write_frames(lake, FLAGS, rows, plan.replay_from, plan.to_block)
    return paths
