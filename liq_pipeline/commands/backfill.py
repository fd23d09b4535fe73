"""`liq backfill`: materialize the lake over any historical block range, recorded in the Dagster instance
(DAGSTER_HOME, default DATA_DIR/dagster) so the UI shows the partitions as materialized.

In-process, range after range; or, with `--parallel N`, N worker processes that run the ranges side by side, one
run per range started in block order (`run_ranges`): a range starts once every earlier range has its pool_events
(a range's borrower_snapshots reads them). The files are the same bytes either way; a worker that dies (OOM,
kill -9) has its range run again (lake files are written atomically: a killed range leaves no partial file).
Guide: docs/deployment.md."""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..chain.multicall import AggregatingRpcClient
from ..config import Settings, current_settings, load_settings
from ..defs.lake.assets import ALL_LAKE_ASSETS, CLI_BACKFILL_TAG, pool_events
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
    parallel: int = 1,
) -> BackfillReport:
    """Materialize every lake asset of the ranges covering [first_block, last_block], in block order.

    Blocks before the node's first block with state (partitions.first_state_block) are clamped: `say` gets one line
    saying so, and the ranges that end before it get their logs (pool_events) only, which the later ranges'
    borrower_snapshots need. Dagster's own log lines stay off the console unless LOG_LEVEL=DEBUG.

    `parallel` > 1: that many worker processes, each recording its runs in the instance of DAGSTER_HOME (which
    `instance`, if given, must be)."""
    settings = load_settings()
    with ChainResource().client() as rpc:
        head = rpc.quantity("eth_blockNumber")
        state_from = first_state_block(rpc, settings, head)
    ranges = final_ranges(first_block, last_block, settings, head)
    report = BackfillReport(first_block_with_state=state_from)
    if first_block < state_from and say:
        say(clamp_line(first_block, last_block, state_from))
    # The instance first, then the workers: on a new database the first process to open it creates Dagster's
    # tables (measured: 1.5 s, then 0.2 s per process); the workers and this process all doing it at once took
    # 1.9 s each on 2 cores. The workers' server is still importing Dagster meanwhile (started by cli.py).
    instance = instance or backfill_instance()
    pool, ready = _warm_pool(parallel) if parallel > 1 else (None, None)
    keys = [r.key for r in ranges]
    instance.add_dynamic_partitions(BLOCK_RANGES, keys)
    run_config = {} if settings.log_level == "DEBUG" else QUIET
    if pool is not None:
        try:
            outcomes = run_ranges(instance, keys, parallel, run_config, progress, pool, ready)
        finally:
            _stop_worker_server()
        for block_range in ranges:
            report.ranges.append(block_range.key)
            if block_range.end < state_from:
                report.logs_only.append(block_range.key)
            if outcomes[block_range.key] is not None:
                report.failed[block_range.key] = outcomes[block_range.key]
        return report
    backfill_id = uuid.uuid4().hex[:12]
    for done, block_range in enumerate(ranges):
        key = block_range.key
        if progress:
            progress(key, done, len(keys))
        failed = _materialize(instance, key, run_config, backfill_id)
        report.ranges.append(key)
        if block_range.end < state_from:
            report.logs_only.append(key)
        if failed is not None:
            report.failed[key] = failed
    if progress:
        progress("done", len(keys), len(keys))
    return report


class BackfillChain(ChainResource):
    """The chain resource of the backfill's runs: the same reads, costing the node far less.

    Measured on the bench devnet (20 ranges of 50 blocks, anvil 44.6 of 68 s CPU): every asset of a range (and
    the checks, and watcher_blocks at the head) discovered the market again, 8 discoveries of ~150 eth_calls per
    range, and anvil reads an old block's state from its disk cache for every eth_call (3-4 ms each; a discovery
    500-700 ms there, 23 ms near the head). So:
    - `client()` sends the plain eth_calls of a batch at one block as one aggregate3 call (chain/multicall.py,
      AggregatingRpcClient): a discovery costs ~10 state loads instead of ~150;
    - `market()` keeps the markets it discovered in this process, by node, provider, version and block: the
      ranges given to a backfill are final (CONFIRMATIONS), and a market read at a block is the same every time.
    (The settings are parsed once for all resources: config.current_settings.)
    """

    def client(self):
        plain = super().client()
        plain.close()
        settings = self.settings()
        return AggregatingRpcClient(
            plain.url, settings.multicall_address, max_parallel_posts=settings.rpc_max_parallel_posts
        )

    def market(self, rpc, block: int):
        settings = self.settings()
        key = (rpc.url, settings.aave_addresses_provider, settings.aave_protocol_version, settings.multicall_address)
        key += (block,)
        found = _MARKETS.get(key)
        if found is None:
            found = super().market(rpc, block)
            _MARKETS[key] = found
            while len(_MARKETS) > MARKETS_KEPT:
                _MARKETS.popitem(last=False)
        return found


MARKETS_KEPT = 64  # a range's end and the head, for many ranges; a market is a few kB
_MARKETS: OrderedDict[tuple, tuple] = OrderedDict()  # (node, provider, version, multicall, block) -> (market, rules)
BACKFILL_RESOURCES = {**RESOURCES, "chain": BackfillChain()}


def backfill_instance() -> dg.DagsterInstance:
    """DAGSTER_HOME's instance as the backfill's processes use it: pooled, and without compute logs unless
    LOG_LEVEL=DEBUG. A run's compute logs are its steps' raw stdout and stderr, mirrored by 2 `tail -F` and 2
    watcher Python processes per run (dagster's LocalComputeLogManager); the backfill's steps print nothing there
    (their lines and failures are in the run's event log, which stays). Without them the backfill's CPU went from
    9.6 to 8.6 s over 20 ranges of 50 blocks (`liq bench-backfill --size 50`, N=1)."""
    if current_settings().log_level == "DEBUG":
        return pooled(dg.DagsterInstance.get())
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return pooled(dg.DagsterInstance.get())  # Dagster's own error: DAGSTER_HOME is not set
    ref = InstanceRef.from_dir(home, overrides={"compute_logs": NO_COMPUTE_LOGS})
    return pooled(dg.DagsterInstance.from_ref(ref))


NO_COMPUTE_LOGS = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}


def pooled(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The instance, its storage connections kept open for the process's many runs. Dagster's Postgres storages
    open a connection per query by default (measured: 1,062 connections, 6.6 s of a 35 s backfill of 6 ranges);
    this is what its webserver does instead. Nothing changes on SQLite."""
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
    return instance


# Dagster's console logger (every step's DEBUG events, stack traces) off: failures are reported in one line each
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

# --parallel: the run tag, how often a range whose worker died is tried again, how often the parent looks for new
# pool_events while a worker waits for them
BACKFILL_TAG = CLI_BACKFILL_TAG  # every run of one `liq backfill` (its id)
PROCESS_TAG = "liq/backfill-pid"  # the process that ran it: a worker's, or the command's for the first ranges
# what the workers' server imports before forking them (cli.py names them too): this module, and the Postgres
# storage when installed (0.7 s to import on first use; a missing one is skipped)
WORKER_PRELOAD = [__name__, "dagster_postgres"]
WORKER_DEATHS = 2  # a range whose worker died this many times fails (one line) instead of being retried
POLL_SECONDS = 0.05
POOL_EVENTS = pool_events.key  # MARKET_NAME/pool_events for a named market


def run_ranges(
    instance: dg.DagsterInstance,
    keys: list[str],
    parallel: int,
    run_config: dict,
    progress: Callable[[str, int, int], None] | None = None,
    pool: ProcessPoolExecutor | None = None,
    ready: threading.Event | None = None,
) -> dict[str, str | None]:
    """One run per range (every lake asset), `parallel` at a time in worker processes kept for the whole backfill,
    started in block order: a range starts once every earlier range has its pool_events materialized (its
    borrower_snapshots reads them; pool_events is a run's first step) or its run has ended. Per range None
    (materialized) or why it failed (one line). Workers record their runs in the instance of DAGSTER_HOME, tagged
    liq/backfill=<id>. A pool whose worker died is replaced: the ranges it was running run again (their runs, left
    STARTED, are marked failed), up to WORKER_DEATHS times each.

    `ready`: set once a worker of `pool` is up (`_warm_pool`); until then this process, which has Dagster and the
    instance open already, runs the first ranges itself (measured: the workers were up 0.9 s after it, a range
    takes 0.7 s)."""
    plan = _Plan(keys)
    seen = _PoolEventsSeen(instance, keys)
    backfill_id = uuid.uuid4().hex[:12]
    deaths: dict[str, int] = {}
    pool = pool or _new_pool(parallel)
    in_flight: dict[Future, str] = {}
    try:
        while ready is not None and not ready.is_set() and (key := plan.next_range()) is not None:
            plan.record(key, _materialize(instance, key, run_config, backfill_id))
            _tell(progress, plan, key)
        while not plan.finished():
            broken = False
            while len(in_flight) < parallel and (key := plan.next_range()) is not None:
                try:
                    in_flight[pool.submit(_materialize_range, key, run_config, backfill_id)] = key
                except BrokenProcessPool:  # a worker died while idle (or starting): not this range's doing
                    plan.unstart(key)
                    broken = True
                    break
            if not in_flight and not broken:
                raise RuntimeError("backfill plan stalled")  # a bug: an idle pool always has a range to start
            done, _ = wait(in_flight, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            if len(in_flight) - len(done) < parallel and plan.waiting():
                plan.events_done(seen.new())  # a free worker waits for the pool_events of an earlier range
            for future in done:
                key = in_flight.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    broken = True
                    plan.retry(key)
                    continue
                plan.record(key, future.result() if error is None else _task_error(key, error))
                _tell(progress, plan, key)
            if not broken:
                continue
            pool.shutdown(wait=True, cancel_futures=True)  # every other worker of the pool is gone too
            for future, key in in_flight.items():
                if future.done() and future.exception() is None:
                    plan.record(key, future.result())
                    _tell(progress, plan, key)
                else:
                    plan.retry(key)
            in_flight.clear()
            _fail_orphan_runs(instance, backfill_id)
            for key in plan.retrying():
                deaths[key] = deaths.get(key, 0) + 1
                if deaths[key] >= WORKER_DEATHS:
                    plan.record(key, f"range {key}: its worker process died {WORKER_DEATHS} times")
                    _tell(progress, plan, key)
            plan.requeue()
            pool = _new_pool(parallel)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if progress:
        progress("done", len(keys), len(keys))
    return plan.outcomes()


def _task_error(key: str, error: BaseException) -> str:
    """A range that raised in its worker (not a failed run: the instance or the code broke), in one line."""
    text = " ".join(str(error).split())
    return f"range {key}: {type(error).__name__}: {text}"


def _tell(progress, plan: _Plan, key: str) -> None:
    if progress:
        progress(key, len(plan.results), len(plan.keys))


class _PoolEventsSeen:
    """The ranges whose pool_events were materialized since the backfill began (the instance's event log: the
    lake may be files or objects)."""

    def __init__(self, instance: dg.DagsterInstance, keys: list[str]):
        self.instance, self.keys = instance, set(keys)
        latest = instance.fetch_materializations(POOL_EVENTS, limit=1).records
        self.after = latest[0].storage_id if latest else 0

    def new(self) -> set[str]:
        found: set[str] = set()
        while True:
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=POOL_EVENTS, after_storage_id=self.after), limit=100, ascending=True
            ).records
            for record in records:
                self.after = max(self.after, record.storage_id)
                if record.partition_key in self.keys:
                    found.add(record.partition_key)
            if len(records) < 100:
                return found


class _Plan:
    """Which range starts next: the first one not started, once every earlier range has its pool_events or has
    ended."""

    def __init__(self, keys: list[str]):
        self.keys = sorted(keys)
        self.pending = list(self.keys)  # not started yet, in block order
        self.with_events: set[str] = set()
        self.results: dict[str, str | None] = {}
        self.to_retry: list[str] = []

    def _ready(self, key: str) -> bool:
        earlier = self.keys[: self.keys.index(key)]
        return all(k in self.with_events or k in self.results for k in earlier)

    def next_range(self) -> str | None:
        if self.pending and self._ready(self.pending[0]):
            return self.pending.pop(0)
        return None

    def waiting(self) -> bool:
        """A range could start but for an earlier range's pool_events."""
        return bool(self.pending) and not self._ready(self.pending[0])

    def events_done(self, keys: set[str]) -> None:
        self.with_events |= keys

    def record(self, key: str, why: str | None) -> None:
        self.results[key] = why

    def retry(self, key: str) -> None:
        self.to_retry.append(key)

    def unstart(self, key: str) -> None:
        """A range that could not be handed to a worker: first again, no death counted."""
        self.pending = sorted({*self.pending, key})

    def retrying(self) -> list[str]:
        return [key for key in self.to_retry if key not in self.results]

    def requeue(self) -> None:
        self.pending = sorted({*self.pending, *self.retrying()})
        self.to_retry = []

    def finished(self) -> bool:
        return not self.pending and not self.to_retry and len(self.results) == len(self.keys)

    def outcomes(self) -> dict[str, str | None]:
        return {k: self.results.get(k) for k in self.keys}


def _new_pool(parallel: int) -> ProcessPoolExecutor:
    """Workers with this process's environment as it is now (the devnet's RPC_URL, DAGSTER_HOME): their server may
    have started before those were set (`liq backfill --parallel` starts it first thing, see cli.py)."""
    return ProcessPoolExecutor(
        max_workers=parallel,
        mp_context=_worker_context(),
        initializer=_worker_init,
        initargs=(logging.getLogger().getEffectiveLevel(), dict(os.environ)),
    )


_worker_instance: dg.DagsterInstance | None = None  # one per worker process, for all its tasks


def _warm_pool(parallel: int) -> tuple[ProcessPoolExecutor, threading.Event]:
    """A new pool whose workers are starting and opening the instance ahead of their first range, and an event set
    once one of them is up (or the pool failed). They are started on a thread: starting one waits until their
    server has imported Dagster (measured: 0.9-2.8 s after this process did), time this process spends running the
    first ranges itself instead (run_ranges)."""
    pool, ready = _new_pool(parallel), threading.Event()
    starter = threading.Thread(target=_start_workers, args=(pool, parallel, ready), name="liq-backfill-workers")
    starter.daemon = True
    starter.start()
    return pool, ready


def _start_workers(pool: ProcessPoolExecutor, parallel: int, ready: threading.Event) -> None:
    try:
        for _ in range(parallel):
            pool.submit(_open_instance).add_done_callback(lambda _future: ready.set())
    except RuntimeError:  # BrokenProcessPool, or shut down already: run_ranges sees it on its own
        ready.set()


def _stop_worker_server() -> None:
    """Stop the server the workers were forked from, once they are gone. Left alone it exits when this process
    does, through the interpreter's teardown of everything it imported, holding this command's stdout and stderr
    open meanwhile (measured: 1.1-1.6 s after this process ended, in `liq bench-backfill --parallel 2`). It holds
    nothing to save: SIGTERM, then multiprocessing's own clean-up (3.11's private API; a later Python without it
    keeps the slow exit). The next pool starts a new server."""
    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None or not hasattr(server, "_stop"):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        server._stop()


def _open_instance() -> None:
    """The worker's instance, opened ahead of its first task; a failure is left for that task to report."""
    global _worker_instance
    try:
        _worker_instance = _worker_instance or backfill_instance()
    except Exception:
        return


def _worker_context():
    """Worker processes forked from a server that imported this module once (a spawned worker would import
    Dagster, web3 and polars again: ~2 s each, more on a busy machine)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def _worker_init(level: int, environment: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environment)
    use_one_blas_thread()
    logging.getLogger().setLevel(level)
    if level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("liq_pipeline.cache.from_settings").setLevel(logging.WARNING)


def _materialize_range(key: str, run_config: dict, backfill_id: str) -> str | None:
    """Every lake asset of one range, in a worker: None, or why it failed (one line)."""
    global _worker_instance
    _worker_instance = _worker_instance or backfill_instance()
    return _materialize(_worker_instance, key, run_config, backfill_id)


def _materialize(instance: dg.DagsterInstance, key: str, run_config: dict, backfill_id: str) -> str | None:
    """Every lake asset of one range, in this process: None, or why it failed (one line)."""
    result = dg.materialize(
        ALL_LAKE_ASSETS,
        partition_key=key,
        instance=instance,
        resources=BACKFILL_RESOURCES,
        raise_on_error=False,
        run_config=run_config,
        tags={BACKFILL_TAG: backfill_id, PROCESS_TAG: str(os.getpid())},
    )
    return None if result.success else failure_reason(result, key)


def _fail_orphan_runs(instance: dg.DagsterInstance, backfill_id: str) -> None:
    """The runs of this backfill that a dead worker left unfinished, marked failed (no worker is running now)."""
    unfinished = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}, statuses=unfinished)):
        instance.report_run_failed(run, "its backfill worker process died; the range runs again")


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


def main(from_block: int, to_block: int, parallel: int = 1) -> int:
    """Exit code 0, or 1 when a range failed."""
    if to_block < from_block:
        raise runtime.CommandError(f"--to-block {to_block} is before --from-block {from_block}")
    if parallel < 1:
        raise runtime.CommandError(f"--parallel {parallel}: expected a number of worker processes >= 1")
    settings = runtime.node_settings(runtime.settings())
    home = Path(settings.data_dir).absolute() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if "DAGSTER_HOME" not in os.environ:
        os.environ["DAGSTER_HOME"] = str(home)
        if not (home / "dagster.yaml").exists() and (ROOT / "dagster.yaml").exists():  # as `liq dev` does: no
            shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")  # warning, no telemetry banner
    with runtime.connect(settings) as rpc:  # CHAIN_ID, a node that answers, final ranges: before Dagster starts
        final_ranges(from_block, to_block, settings, rpc.quantity("eth_blockNumber"))
    use_one_blas_thread()
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
            parallel=parallel,
            progress=report,
            say=lambda line: progress.console.print(line, soft_wrap=True, markup=False, highlight=False),
        )
    for message in result.failed.values():
        runtime.error_line(message, prefix="failed")
    logs_only = [key for key in result.logs_only if key not in result.failed]
    note = f" ({len(logs_only)} before the first block with state: pool_events only)" if logs_only else ""
    print(f"{len(result.ranges) - len(result.failed)} of {len(result.ranges)} ranges materialized{note}")
    # The process ends now: the interpreter's last garbage collections would walk every object Dagster, polars
    # and web3 made (measured: 1.2-1.9 s after the last line was printed; 0.1 s with them frozen). Frozen objects
    # are only left out of later collections, nothing else changes.
    gc.freeze()
    return runtime.EXIT_UNHEALTHY if result.failed else 0
