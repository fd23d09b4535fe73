"""`liq backfill`: materialize the lake over any historical block range, in-process, recorded in the Dagster
instance (DAGSTER_HOME, default DATA_DIR/dagster) so the UI shows the partitions as materialized."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import Settings, load_settings
from ..defs.lake.assets import ALL_LAKE_ASSETS
from ..defs.partitions import BLOCK_RANGES, first_state_block
from ..defs.resources import RESOURCES, ChainResource
from ..lake.partitions import BlockRange, ranges_covering
from ..risk.blas import use_one_blas_thread
from . import runtime

ROOT = Path(__file__).resolve().parents[2]  # the repository: its dagster.yaml (as `liq dev` copies it)


@dataclass
class BackfillReport:
    ranges: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> one line: why
    first_block_with_state: int = 0
    logs_only: list[str] = field(default_factory=list)  # ranges ending before it: pool_events only


def backfill(
    first_block: int,
    last_block: int,
    instance=None,
    progress: Callable[[str, int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> BackfillReport:
    """Materialize every lake asset of the ranges covering [first_block, last_block], in block order.

    Blocks before the node's first block with state (partitions.first_state_block) are clamped: `say` gets one line
    saying so, and the ranges that end before it get their logs (pool_events) only, which the later ranges'
    borrower_snapshots need. Dagster's own log lines stay off the console unless LOG_LEVEL=DEBUG."""
    settings = load_settings()
    with ChainResource().client() as rpc:
        head = rpc.quantity("eth_blockNumber")
        state_from = first_state_block(rpc, settings, head)
    ranges = final_ranges(first_block, last_block, settings, head)
    report = BackfillReport(first_block_with_state=state_from)
    if first_block < state_from and say:
        say(clamp_line(first_block, last_block, state_from))
    instance = instance or dg.DagsterInstance.get()
    keys = [r.key for r in ranges]
    instance.add_dynamic_partitions(BLOCK_RANGES, keys)
    run_config = {} if settings.log_level == "DEBUG" else QUIET
    for done, block_range in enumerate(ranges):
        key = block_range.key
        if progress:
            progress(key, done, len(keys))
        result = dg.materialize(
            ALL_LAKE_ASSETS,
            partition_key=key,
            instance=instance,
            resources=RESOURCES,
            raise_on_error=False,
            run_config=run_config,
        )
        report.ranges.append(key)
        if block_range.end < state_from:
            report.logs_only.append(key)
        if not result.success:
            report.failed[key] = failure_reason(result, key)
    if progress:
        progress("done", len(keys), len(keys))
    return report


# Dagster's console logger (every step's DEBUG events, stack traces) off: failures are reported in one line each
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def clamp_line(first_block: int, last_block: int, state_from: int) -> str:
    """The one line that says where the backfill starts reading state."""
    where = f"blocks {first_block}-{state_from - 1} have no state on this node (first block with state: {state_from})"
    if last_block < state_from:
        return f"{where}: their logs only (pool_events)"
    return f"{where}: backfilling from {state_from} (before it: logs only, pool_events)"


def failure_reason(result, key: str) -> str:
    """Why a range's run failed, in one line: the failed steps' own messages (a dg.Failure's description, or the
    innermost error of the user code), not Dagster's `Execution of step ... failed.`"""
    reasons: list[str] = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        text = data.user_failure_data.description if data.user_failure_data else None
        if not text and data.error is not None:
            error = data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause  # DagsterExecutionStepExecutionError wraps the user code's exception
            text = error.message.strip()
            text = f"range {key}: {event.step_key}: {text}"
        text = " ".join((text or f"range {key}: {event.step_key} failed").split())
        if text not in reasons:
            reasons.append(text)
    if not reasons:
        return f"range {key}: the run failed ({result.run_id})"
    more = f" (and {len(reasons) - 1} more failed steps)" if len(reasons) > 1 else ""
    return reasons[0] + more


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
    if "DAGSTER_HOME" not in os.environ:
        os.environ["DAGSTER_HOME"] = str(home)
        if not (home / "dagster.yaml").exists() and (ROOT / "dagster.yaml").exists():  # as `liq dev` does: no
            shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")  # warning, no telemetry banner
    if settings.log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's storage migrations
        logging.getLogger("liq_pipeline.cache.from_settings").setLevel(logging.WARNING)  # "Redis: ..." per asset
    err = Console(stderr=True, highlight=False)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("backfill", total=None)

        def report(key: str, done: int, total: int) -> None:
            progress.update(task, description=f"range {key}", completed=done, total=total)

        result = backfill(
            from_block,
            to_block,
            progress=report,
            say=lambda line: progress.console.print(line, soft_wrap=True, markup=False, highlight=False),
        )
    for message in result.failed.values():
        runtime.error_line(message, prefix="failed")
    logs_only = [key for key in result.logs_only if key not in result.failed]
    note = f" ({len(logs_only)} before the first block with state: pool_events only)" if logs_only else ""
    print(f"{len(result.ranges) - len(result.failed)} of {len(result.ranges)} ranges materialized{note}")
    return runtime.EXIT_UNHEALTHY if result.failed else 0
