"""watcher_blocks: one row per block the watcher processed, from its Redis Stream `blocks`.

The watcher appends (block, hash, timestamps seen and written, users, touched users, candidates per scenario) per
block; this dataset keeps them per block range so that the latency KPI has a history and gaps can be seen.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from ..spec import DatasetSpec

NAME = "watcher_blocks"
SCHEMA = {
    "block": pl.Int64,
    "hash": pl.String,
    "timestamp": pl.Int64,
    "seen_at": pl.Float64,
    "written_at": pl.Float64,
    "latency_ms": pl.Float64,
    "users": pl.Int64,
    "touched": pl.Int64,
    "exact_redecided": pl.Int64,
    "reorg_depth": pl.Int64,
    "candidates_baseline": pl.Int64,
    "candidates_adverse": pl.Int64,
    "candidates_extreme": pl.Int64,
}
SPEC = DatasetSpec(NAME, SCHEMA, key=("block",), block_column="block")


def build_watcher_blocks(entries: Iterable[dict[str, str]], start: int, end: int) -> pl.DataFrame:
    """Rows of the stream entries whose block lies in [start, end]; a block processed twice (a reorg, a restart)
    keeps its last record."""
    rows = []
    for fields in entries:
        block = int(fields["block"])
        if start <= block <= end:
            rows.append({name: fields.get(name) for name in SCHEMA})
    if not rows:
        return pl.DataFrame(schema=SCHEMA)
    frame = pl.DataFrame(rows, schema={name: pl.String for name in SCHEMA}).cast(SCHEMA)
    return frame.unique(subset=["block"], keep="last", maintain_order=True).sort("block")
