"""`liq backfill`: materialize the lake over any historical block range, in-process, recorded in the Dagster
instance (DAGSTER_HOME) so the UI shows the partitions as materialized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class BackfillReport:
    ranges: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def backfill(
    first_block: int, last_block: int, instance=None, progress: Callable[[str, int, int], None] | None = None
) -> BackfillReport:
    import dagster as dg

    from ..config import load_settings
    from ..defs.lake.assets import ALL_LAKE_ASSETS
    from ..defs.partitions import BLOCK_RANGES
    from ..defs.resources import RESOURCES, ChainResource
    from ..lake.partitions import ranges_covering

    settings = load_settings()
    head = ChainResource().head()
    final = head - settings.confirmations
    ranges = ranges_covering(first_block, last_block, settings.lake_range_blocks)
    if ranges and ranges[-1].end > final:
        raise ValueError(
            f"--to-block {last_block} lies in range {ranges[-1].key}, which is not final yet: the chain is at "
            f"{head} and CONFIRMATIONS={settings.confirmations} (last final block {final})"
        )
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
