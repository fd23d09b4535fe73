"""`liq bench-backfill --ranges 20 --parallel 1,2,4 [--size 1000] [--data-dir DIR] [--json]`: backfill throughput of
`liq backfill --parallel N` on a devnet, with the production Dagster profile (deploy/production/dagster.yaml) on
PostgreSQL (not part of the test suite).

Starts its own anvil from the devnet state cache (200 seeded borrowers; built on first use under `data_dir`, or in
a temporary folder removed at the end) and mines empty blocks up to `ranges * size - 1`; PostgreSQL is the server
DAGSTER_PG_* name, else a throwaway one (bench/postgres.py). Then, for each N, in a fresh DATA_DIR (lake, embedded
Redis) and a fresh database (Dagster's tables made before the timing: `phases.schema_s`): `liq backfill
--from-block 0 --to-block <last> --parallel N` as a user runs it, timed from start to exit (Python start-up
included). Ranges are LAKE_RANGE_BLOCKS' default size (1,000 blocks), what `liq backfill` runs, unless `size`
says otherwise. `efficiency` is the speed-up over N=1 divided by N (1.0: perfect
scaling); `speedup` is the speed-up itself; `same_bytes` says every setting wrote the lake files of N=1, byte for
byte; `cpu_s` the CPU seconds of the backfill (command and workers), anvil and PostgreSQL (when started here), and
`cpu_busy` their sum over the wall time (2.0 = both cores of a 2-core machine, all the time); `load_1m` the
machine's load average as the run ended (other work on the machine shows there). `cpu_ceiling` is the speed-up
N processes of pure arithmetic get on this machine right now, before and after: the most a backfill can get.
`phases` says where the wall time went, from the runs' start and end times in the database (`run_phases`): the
start-up before the first run, the runs, the exit after the last, a run's mean duration and how many ran at once.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

from ..cache.server import EmbeddedRedis
from ..config import Settings, settings_fields
from ..devnet import actions, anvil
from ..devnet.paths import market_json_path
from .postgres import Postgres, from_environment, temporary_postgres
from .report import BenchRun, Stopwatch, quiet, scratch_dir
from .services import live_devnet

BORROWERS, SEED = 200, 42
DEFAULT_RANGE_BLOCKS = Settings.model_fields["lake_range_blocks"].default  # what `liq backfill` runs (1,000)
PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "production" / "dagster.yaml"


class BenchError(Exception):
    """The bench cannot run (one line for the user)."""


def parse_parallel(text: str) -> list[int]:
    """`1,2,4` -> [1, 2, 4]; BenchError naming the option and the value otherwise."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise BenchError(f"--parallel {text!r}: expected worker counts >= 1 separated by commas, like 1,2,4")
    return sorted(set(values))


@contextmanager
def _postgres() -> Iterator[Postgres]:
    own = from_environment()
    if own is not None:
        yield own
        return
    with temporary_postgres("dagster") as server:
        yield server


def run_backfill_bench(
    ranges: int = 20,
    parallel: list[int] | None = None,
    size: int = DEFAULT_RANGE_BLOCKS,
    data_dir: Path | None = None,
    say: Callable[[str], None] = quiet,
) -> dict:
    settings = sorted(set(parallel or [1, 2, 4]) | {1})  # efficiency is measured against N=1
    if not PROFILE.is_file():
        raise BenchError(f"the production profile {PROFILE} is missing (run from a checkout of the repository)")
    params = {"ranges": ranges, "parallel": settings, "size": size, "data_dir": str(data_dir) if data_dir else None}
    run = BenchRun("backfill", params)
    last = ranges * size - 1
    with ExitStack() as stack:
        state_dir = data_dir or stack.enter_context(scratch_dir("liq-backfill-bench-devnet-"))
        say(f"starting the devnet ({BORROWERS} borrowers; its state is built on first use)")
        chain = stack.enter_context(live_devnet(state_dir, BORROWERS, SEED))
        say(f"mining up to block {last} ({ranges} ranges of {size} blocks)")
        actions.mine_blocks(chain.devnet, max(0, last - chain.head()))
        say("starting PostgreSQL" if from_environment() is None else "PostgreSQL: DAGSTER_PG_HOST")
        server = stack.enter_context(_postgres())
        work = stack.enter_context(scratch_dir("liq-backfill-bench-"))
        ceiling_before = cpu_ceiling(settings)
        results, reference = [], None
        for n in settings:
            say(f"liq backfill --parallel {n}")
            seconds, files, cpu, phases = _one(chain.node, chain.market, server, work / f"p{n}", n, last, size)
            reference = reference if reference is not None else files
            result = {"parallel": n, "seconds": round(seconds, 2), "same_bytes": files == reference, "phases": phases}
            busy = round(sum(cpu.values()) / seconds, 2)
            results.append(result | {"cpu_s": cpu, "cpu_busy": busy, "load_1m": round(os.getloadavg()[0], 2)})
        base = next(r for r in results if r["parallel"] == 1)["seconds"]
        for result in results:
            result["ranges_per_min"] = round(ranges * 60 / result["seconds"], 2)
            result["speedup"] = round(base / result["seconds"], 3)
            result["efficiency"] = round(base / result["seconds"] / result["parallel"], 3)
        report = {
            "ranges": ranges,
            "size": size,
            "files": len(reference or {}),
            "cpu_count": os.cpu_count(),
            "results": results,
            "cpu_ceiling": {"before": ceiling_before, "after": cpu_ceiling(settings)},
            "prepare_s": round(chain.prepare_s, 2),
            "state_cache_built": chain.built,
        }
    return run.report(report)


def _one(node, market, server: Postgres, folder: Path, n: int, last: int, size: int) -> tuple[float, dict, dict, dict]:
    """One timed `liq backfill --parallel n` in a fresh DATA_DIR and database; the lake files' digests, the CPU
    seconds, the phases."""
    data_dir, home = folder / "data", folder / "dagster"
    home.mkdir(parents=True)
    anvil.write_pid_file(data_dir, node)
    market.save(market_json_path(data_dir))
    shutil.copyfile(PROFILE, home / "dagster.yaml")
    database = f"liq_backfill_bench_{os.getpid()}_p{n}"
    server.create_database(database)
    env = {k: v for k, v in os.environ.items() if k not in settings_fields() and not k.startswith("DAGSTER_")}
    env |= {"DATA_DIR": str(data_dir), "LAKE_RANGE_BLOCKS": str(size), "CONFIRMATIONS": "0", "DAGSTER_HOME": str(home)}
    env |= server.env(database)
    schema_s = _create_schema(env, folder)
    argv = [sys.executable, "-m", "liq_pipeline.commands.cli", "backfill", "--from-block", "0"]
    argv += ["--to-block", str(last), "--parallel", str(n)]
    meters = {"anvil": CpuMeter([node.pid])}
    if server.process is not None:
        meters["postgres"] = CpuMeter([server.process.pid])
    try:
        began = time.time()  # the clock of the runs' start and end times
        with Stopwatch() as took:
            process = subprocess.Popen(
                argv, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            meters["backfill"] = CpuMeter([process.pid])
            while process.poll() is None:
                for meter in meters.values():
                    meter.sample()
                time.sleep(0.25)
            out, err = process.communicate()
            done = subprocess.CompletedProcess(argv, process.returncode, out, err)
        ended = time.time()
    finally:
        EmbeddedRedis(data_dir / "redis").stop()
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BenchError(f"liq backfill --parallel {n} exited {done.returncode}: {tail}")
    lake = data_dir / "lake"
    files = {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(lake.rglob("*.parquet"))
    }
    runs = server.query("SELECT start_time, end_time FROM runs WHERE end_time IS NOT NULL", database)
    phases = run_phases(began, ended, [(float(start), float(end)) for start, end in runs])
    phases["schema_s"] = schema_s
    return took.seconds, files, {name: round(meter.seconds(), 1) for name, meter in meters.items()}, phases


def _create_schema(env: dict[str, str], folder: Path) -> float:
    """Dagster's tables in the new database, before the timing (as `dagster instance migrate` or the first
    webserver start makes them on a deployment, once): the first process to open an empty database creates them,
    1.0-1.3 s measured, a cost of the deployment's first day, not of each backfill. Its seconds."""
    argv = [sys.executable, "-c", "import dagster; dagster.DagsterInstance.get()"]
    with Stopwatch() as took:
        done = subprocess.run(argv, env=env, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BenchError(f"creating Dagster's tables in PostgreSQL failed: {tail}")
    return round(took.seconds, 2)


def run_phases(began: float, ended: float, runs: list[tuple[float, float]]) -> dict[str, float]:
    """Where a backfill's wall time went, from its runs' (start, end) times: `startup_s` from the command's start to
    the first run's (imports, the instance, the workers), `runs_s` from there to the last run's end, `exit_s` the
    rest; `range_s` a run's mean duration; `in_flight` the runs' summed durations over `runs_s`: how many ran at
    once on average (N workers that always overlap: N; ranges that wait for each other or a fixed cost: less)."""
    if not runs:
        return {}
    first, last = min(start for start, _ in runs), max(end for _, end in runs)
    busy = sum(end - start for start, end in runs)
    span = last - first
    return {
        "startup_s": round(first - began, 2),
        "runs_s": round(span, 2),
        "exit_s": round(ended - last, 2),
        "range_s": round(busy / len(runs), 2),
        "in_flight": round(busy / span, 2) if span > 0 else 1.0,
    }


def _spin(_unit: int) -> int:
    total = 0
    for i in range(10_000_000):
        total += i
    return total


def cpu_ceiling(counts: list[int]) -> dict[str, float]:
    """Per N: how much faster N processes of pure Python arithmetic do N units of work than one process does them
    one after the other (an idle 2-core machine: 2.0 at N >= 2). The most any backfill can gain right now; other
    work on the machine lowers it."""
    context = multiprocessing.get_context("fork")  # nothing to import: the spinning starts at once
    with Stopwatch() as one:
        _spin(0)
    out = {}
    for n in counts:
        with context.Pool(n) as pool, Stopwatch() as took:
            pool.map(_spin, range(n))
        out[str(n)] = round(n * one.seconds / took.seconds, 2)
    return out


class CpuMeter:
    """CPU seconds (user + system) of processes and their descendants since it was made, sampled: a process that
    ends between two samples loses its last interval (the workers live as long as the backfill)."""

    def __init__(self, pids: list[int]):
        self.roots = [psutil.Process(pid) for pid in pids]
        self.base: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self.sample(base=True)

    def sample(self, base: bool = False) -> None:
        for root in self.roots:
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in family:
                try:
                    key = (process.pid, process.create_time())
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                used = times.user + times.system
                if base:
                    self.base[key] = used
                self.last[key] = used

    def seconds(self) -> float:
        self.sample()
        return sum(used - self.base.get(key, 0.0) for key, used in self.last.items())
