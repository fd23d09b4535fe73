"""The backtest's frames as lake datasets, block-range partitioned like the platform's (docs/lake.md).

Written to a lake of their own under the backtest's output directory, not to DATA_DIR/lake: predictions depend
on the engine's parameters (a sweep writes one set per parameter set), and the truth is only as wide as the range
asked. A range file holds the rows of the graded blocks inside that range (the first and last files may cover
part of their range: `meta.json` of the output directory says which blocks).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..lake.partitions import ranges_covering
from ..lake.spec import DatasetSpec
from ..lake.store import Lake
from ..risk.evaluation import CANDIDATE_SCHEMA
from . import truth
from .replay_many import FLAG_SCHEMA

PREDICTIONS = "predictions"
PREDICTIONS_SPEC = DatasetSpec(
    PREDICTIONS, dict(CANDIDATE_SCHEMA), key=("block", "user", "scenario"), block_column="block"
)
# a sweep's other points: what grading reads of their predictions (replay_many.flags), user and scenario as text
FLAGS = "flags"
FLAGS_SPEC = DatasetSpec(
    FLAGS,
    {name: pl.String if kind == pl.Categorical else kind for name, kind in FLAG_SCHEMA.items()},
    key=("block", "user", "scenario"),
    block_column="block",
)
TRUTH_SPEC = DatasetSpec(truth.NAME, truth.SCHEMA, key=("block", "user"), block_column="block")
SPECS = {PREDICTIONS: PREDICTIONS_SPEC, FLAGS: FLAGS_SPEC, truth.NAME: TRUTH_SPEC}


def backtest_lake(root: Path | str, range_size: int) -> Lake:
    return Lake(root, range_size, SPECS)


def write_frames(lake: Lake, dataset: str, frame: pl.DataFrame, first: int, last: int) -> list[Path]:
    """Every range covering [first, last] written (an empty one too: it says the blocks were graded)."""
    block = pl.col(lake.spec(dataset).block_column)
    written = []
    for block_range in ranges_covering(first, last, lake.range_size):
        rows = frame.filter(block.is_between(max(first, block_range.start), min(last, block_range.end)))
        written.append(lake.write(dataset, block_range, rows))
    return written
