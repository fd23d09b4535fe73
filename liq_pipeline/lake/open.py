"""The lake with its datasets: the one way the platform opens it (the store itself is given its datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .datasets import DATASETS
from .partitions import DEFAULT_RANGE_SIZE
from .store import Lake


def lake_at(root: Path | str, range_size: int = DEFAULT_RANGE_SIZE) -> Lake:
    """The lake under `root` holding every dataset of `lake.datasets`."""
    return Lake(root, range_size, DATASETS)


def lake_root(settings: Any) -> Path:
    return Path(settings.data_dir) / "lake"


def open_lake(settings: Any) -> Lake:
    """The lake the settings ask for: DATA_DIR/lake, ranges of LAKE_RANGE_BLOCKS."""
    return lake_at(lake_root(settings), settings.lake_range_blocks)
