"""Block-range partitions: Dagster has no integer-range partitions and refuses custom definitions, so ranges are
dynamic partitions with zero-padded keys (`000000012000-000000012999`, see lake/partitions.py) added by the sensor."""

from __future__ import annotations

import dagster as dg

from ..config import load_settings
from ..lake.partitions import parse_key

BLOCK_RANGES = "block_ranges"
block_ranges = dg.DynamicPartitionsDefinition(name=BLOCK_RANGES)


def block_range_of(context) -> tuple[int, int]:
    """The partition's blocks; a key that is not a block range fails the run with the lake's clear message."""
    try:
        parsed = parse_key(context.partition_key, _range_size())
    except ValueError as error:
        raise dg.Failure(str(error)) from None
    return parsed.start, parsed.end


def _range_size() -> int:
    return load_settings().lake_range_blocks
