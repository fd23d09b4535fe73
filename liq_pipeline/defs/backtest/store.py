"""Where the backtest assets keep one partition's frames: DATA_DIR/backtest/ranges/<partition key>/, laid out like
`liq backtest --out DIR` (backtest/output.py) plus the frames the next asset needs:

    plan.json                          the range as planned (run.plan_range): graded, truth and replay blocks
    lake/account_health/...            the truth (backtest/datasets.py), blocks truth_from..to_block
    lake/predictions/...               the replayed engine's candidates, blocks replay_from..to_block
    frames/{seen,liquidations,crossings,replay_blocks,replay_prices}.parquet
    stages/{crossings,predictions}.json      each stage's seconds; the replay's deferred users
    report.json, report.md, plots/<name>.png

Each asset writes only its own files, each atomically; a rerun replaces them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import polars as pl

from ...backtest.datasets import PREDICTIONS, backtest_lake, write_frames
from ...backtest.run import Plan
from ...backtest.truth import NAME as TRUTH
from ...config import Settings
from ...lake.files import write_bytes_atomic, write_parquet_atomic

FRAMES = ("seen", "liquidations", "crossings", "replay_blocks", "replay_prices")


class RangeFiles:
    def __init__(self, settings: Settings, key: str):
        self.root = Path(settings.data_dir) / "backtest" / "ranges" / key
        self.lake = backtest_lake(self.root / "lake", settings.lake_range_blocks)

    # --- the plan ------------------------------------------------------------------------------------------
    def write_plan(self, plan: Plan) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.root / "plan.json", (json.dumps(asdict(plan)) + "\n").encode())

    def plan(self) -> Plan:
        return Plan(**json.loads((self.root / "plan.json").read_text()))

    def write_json(self, stage: str, values: dict) -> None:
        """What a stage noted for the next (its seconds, the replay's deferred users): stages/<stage>.json."""
        write_bytes_atomic(self.root / "stages" / f"{stage}.json", (json.dumps(values) + "\n").encode())

    def json(self, stage: str) -> dict:
        path = self.root / "stages" / f"{stage}.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    # --- frames --------------------------------------------------------------------------------------------
    def frame_path(self, name: str) -> Path:
        assert name in FRAMES, name
        return self.root / "frames" / f"{name}.parquet"

    def write_frame(self, name: str, frame: pl.DataFrame) -> Path:
        return write_parquet_atomic(frame, self.frame_path(name))

    def frame(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.frame_path(name))

    def write_truth(self, truth: pl.DataFrame, plan: Plan) -> list[Path]:
        return write_frames(self.lake, TRUTH, truth, plan.truth_from, plan.to_block)

    def truth(self, plan: Plan) -> pl.DataFrame:
        return self.lake.scan(TRUTH, plan.truth_from, plan.to_block).collect()

    def write_predictions(self, predictions: pl.DataFrame, plan: Plan) -> list[Path]:
        return write_frames(self.lake, PREDICTIONS, predictions, plan.replay_from, plan.to_block)

    def predictions(self, plan: Plan) -> pl.DataFrame:
        return self.lake.scan(PREDICTIONS, plan.replay_from, plan.to_block).collect()

    # --- the report ----------------------------------------------------------------------------------------
    @property
    def report_path(self) -> Path:
        return self.root / "report.json"

    def write_report(self, report: dict, markdown: str, plots: dict[str, bytes]) -> dict[str, Path]:
        folder = self.root / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, png in plots.items():
            paths[name] = folder / f"{name}.png"
            write_bytes_atomic(paths[name], png)
        write_bytes_atomic(self.root / "report.md", markdown.encode())
        write_bytes_atomic(self.report_path, (json.dumps(report, indent=2, allow_nan=False) + "\n").encode())
        return paths
