"""`liq arena`, `liq bench`, `liq bench-watch` (`--synthetic`: on generated blocks), `liq bench-cache`,
`liq bench-lake`, `liq bench-seed`: the benchmarks of bench/, each printing one JSON object on stdout (`arena`,
`bench` and `bench-watch` print aligned lines without `--json`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from ..bench.arena import run_arena
from ..bench.cache import run_cache_bench
from ..bench.devnet_seed import run_seed_bench
from ..bench.engine import run_bench
from ..bench.lake import run_lake_bench
from ..bench.synthetic_watch import run_bench_watch_synthetic
from ..bench.watch import run_bench_watch
from ..config import PROTOCOL_VERSIONS
from ..risk.blas import use_one_blas_thread
from . import runtime


def _lines(result: dict[str, Any], width: int) -> None:
    out = Console(highlight=False)
    for key, value in result.items():
        out.print(f"{key:>{width}}  {value}")


def _run(bench: Callable[..., dict[str, Any]], as_json: bool, doing: str, width: int) -> None:
    """`bench()`'s report as one JSON object (as_json), or `bench(say=...)` under a status line `doing` on stderr,
    then its aligned lines."""
    if as_json:
        print(json.dumps(bench()))
        return
    with Console(stderr=True).status(doing) as status:
        result = bench(say=status.update)
    _lines(result, width)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine(
    users: int, scenarios: int, repeats: int, loop_sample: int, exact_sample: int, version: str, as_json: bool
) -> None:
    settings = runtime.settings()
    chosen = version or settings.aave_protocol_version
    if chosen not in PROTOCOL_VERSIONS:
        raise runtime.CommandError(f"--version {chosen!r} is not valid: expected one of {', '.join(PROTOCOL_VERSIONS)}")
    use_one_blas_thread()
    if as_json:
        print(json.dumps(run_bench(users, scenarios, repeats, loop_sample, exact_sample, chosen)))
        return
    with Console(stderr=True).status("benchmarking") as status:
        result = run_bench(users, scenarios, repeats, loop_sample, exact_sample, chosen, status.update)
    _lines(result, 22)


def watch(
    borrowers: int,
    blocks: int,
    as_json: bool,
    *,
    shocks: bool,
    seed: int,
    vol_scale: float,
    execute: bool = False,
    inventory_usd: float = 0.0,
    rtt_ms: float = 0.0,
) -> None:
    settings = runtime.settings()
    use_one_blas_thread()
    options = {"seed": seed, "shocks": shocks, "vol_scale": vol_scale}
    options |= {"execute": execute, "inventory_usd": inventory_usd, "rtt_ms": rtt_ms}
    _run(partial(run_bench_watch, settings, borrowers, blocks, **options), as_json, "benchmarking the watcher", 24)


def watch_synthetic(
    users: int,
    blocks: int,
    as_json: bool,
    *,
    shocks: bool,
    seed: int,
    vol_scale: float,
    touched: float,
    protocol: str | None = None,
) -> None:
    settings = runtime.settings()
    use_one_blas_thread()
    version = protocol or settings.aave_protocol_version
    options = {"seed": seed, "shocks": shocks, "vol_scale": vol_scale, "touched": touched, "version": version}
    bench = partial(run_bench_watch_synthetic, settings, users, blocks, **options)
    _run(bench, as_json, "benchmarking the watcher on generated blocks", 28)


def cache(users: int, candidates: int, repeat: int, per_user: bool) -> None:
    runtime.settings()
    use_one_blas_thread()
    print(json.dumps(run_cache_bench(users=users, candidates=candidates, repeat=repeat, per_user=per_user)))


def lake(size: int, data_dir: Path | None, quiet_chain: bool, candidate_step: int) -> None:
    runtime.settings()
    use_one_blas_thread()
    result = run_lake_bench(
        size=size, data_dir=data_dir, quiet_chain=quiet_chain, candidate_step=candidate_step, say=_stderr
    )
    print(json.dumps(result))


def seed(borrowers: int, repeats: int, sim_blocks: int) -> None:
    runtime.settings()
    use_one_blas_thread()
    print(json.dumps(run_seed_bench(borrowers=borrowers, repeats=repeats, sim_blocks=sim_blocks)))


def arena(
    blocks: int,
    competitor_delay: int,
    borrowers: int,
    seed: int,
    vol_scale: float,
    inventory_usd: float,
    restock: bool,
    protocol: str | None,
    as_json: bool,
    pace: dict | None = None,
) -> None:
    settings = runtime.settings()
    options = {
        **(pace or {}),
        "competitor_delay": competitor_delay,
        "borrowers": borrowers,
        "seed": seed,
        "vol_scale": vol_scale,
        "inventory_usd": inventory_usd,
        "restock": restock,
        "protocol": protocol,
    }
    if as_json:
        print(json.dumps(run_arena(settings, blocks, say=_stderr, **options)))
        return
    with Console(stderr=True).status("the executor against the competitor") as status:
        result = run_arena(settings, blocks, say=status.update, **options)
    _lines(result, 28)
