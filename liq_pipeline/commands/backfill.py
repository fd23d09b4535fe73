"""`liq backfill`: materialize the lake over any historical block range, in-process, recorded in the Dagster
instance (DAGSTER_HOME, default DATA_DIR/dagster) so the UI shows the partitions as materialized."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import Settings, load_settings
from ..defs.lake.assets import ALL_LAKE_ASSETS
from ..defs.partitions import BLOCK_RANGES
from ..defs.resources import RESOURCES, ChainResource
from ..lake.partitions import BlockRange, ranges_covering
from ..risk.blas import use_one_blas_thread
from . import runtime


@dataclass
class BackfillReport:
    ranges: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def backfill(
    first_block: int, last_block: int, instance=None, progress: Callable[[str, int, int], None] | None = None
) -> BackfillReport:
    settings = load_settings()
    ranges = final_ranges(first_block, last_block, settings, ChainResource().head())
    instance = instance or dg.DagsterInstance.get()
    keys = [r.key for r in ranges]
    instance.add_dynamic_partitions(BLOCK_RANGES, keys)
    report = BackfillReport()
    for done, key in enumerate(keys):
        if progress:
            progress(key, done, len(keys))
        result = dg.materialize(
            ALL_LAKE_ASSETS, partition_key=key, instance=instance, resources=RESOURCES, raise_on_error=False
        )
        report.ranges.append(key)
        if not result.success:
            failure = next((e.message for e in result.all_events if e.is_failure), "failed")
            report.failed[key] = failure
    if progress:
        progress("done", len(keys), len(keys))
    return report


def final_ranges(first_block: int, last_block: int, settings: Settings, head: int) -> list[BlockRange]:
    """The ranges covering the blocks, all final at this head (CommandError otherwise)."""
    final = head - settings.confirmations
    ranges = ranges_covering(first_block, last_block, settings.lake_range_blocks)
    if ranges and ranges[-1].end > final:
        raise runtime.CommandError(
            f"--to-block {last_block} lies in range {ranges[-1].key}, which is not final yet: the chain is at "
            f"{head} and CONFIRMATIONS={settings.confirmations} (last final block {final})"
        )
    return ranges


def main(from_block: int, to_block: int) -> int:
    """Exit code 0, or 1 when a range failed."""
    if to_block < from_block:
        raise runtime.CommandError(f"--to-block {to_block} is before --from-block {from_block}")
    settings = runtime.node_settings(runtime.settings())
    with runtime.connect(settings) as rpc:  # CHAIN_ID, a node that answers, final ranges: before Dagster starts
        final_ranges(from_block, to_block, settings, rpc.quantity("eth_blockNumber"))
    use_one_blas_thread()
    home = Path(settings.data_dir).absolute() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    err = Console(stderr=True, highlight=False)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("backfill", total=None)

        def report(key: str, done: int, total: int) -> None:
            progress.update(task, description=f"range {key}", completed=done, total=total)

        result = backfill(from_block, to_block, progress=report)
    for key, message in result.failed.items():
        runtime.error_line(f"{key}: {message}", prefix="failed")
    print(f"{len(result.ranges) - len(result.failed)} of {len(result.ranges)} ranges materialized")
    return runtime.EXIT_UNHEALTHY if result.failed else 0
