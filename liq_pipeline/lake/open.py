"""The lake with its datasets: the one way the platform opens it (the store itself is given its datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .datasets import DATASETS
from .files import LakePath
from .objects import ObjectPath, object_root
from .partitions import DEFAULT_RANGE_SIZE
from .store import Lake


def lake_at(root: Path | str | ObjectPath, range_size: int = DEFAULT_RANGE_SIZE) -> Lake:
    """The lake under `root` (a folder, or an s3://bucket/prefix URL) holding every dataset of `lake.datasets`."""
    return Lake(root, range_size, DATASETS)


def lake_location(settings: Any) -> Path | str:
    """LAKE_URL (s3://bucket/prefix) when set, else the folder DATA_DIR/lake."""
    url = getattr(settings, "lake_url", None)
    return url if url else Path(settings.data_dir) / "lake"


def lake_root(settings: Any) -> LakePath:
    """Where the lake lives: the folder DATA_DIR/lake, or the prefix of LAKE_URL (an `ObjectPath`, whose
    `is_dir()` says whether any object is under it)."""
    location = lake_location(settings)
    return object_root(location) if isinstance(location, str) else location


def open_lake(settings: Any) -> Lake:
    """The lake the settings ask for: LAKE_URL or DATA_DIR/lake, ranges of LAKE_RANGE_BLOCKS."""
    return lake_at(lake_root(settings), settings.lake_range_blocks)
