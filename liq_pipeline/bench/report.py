"""What every benchmark's JSON has in common, and the timing helpers the benchmarks share.

A benchmark opens a `BenchRun` with its name and the parameters it runs with, measures, and passes its results to
`BenchRun.report`. The report is one flat dict: the benchmark's own result keys, unchanged (other tools and
docs/performance.md read them at the top level), plus the common fields

- `bench`: which benchmark (`engine`, `watch`, `cache`, `lake`, `devnet_seed`);
- `peak_rss_mb`: this process's peak resident memory (a server the bench starts is another process);
- `elapsed_s`: wall time of the whole run, set-up included;
- `params`: the parameters it ran with;
- `machine`: `cpu_count`, `python`, `numpy`, `polars`, `platform`;
- `timestamp`: when the run started (UTC, ISO 8601).

`render` gives the JSON text of a report, `render_text` one aligned `key  value` line per field.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

COMMON_FIELDS = ("bench", "peak_rss_mb", "elapsed_s", "params", "machine", "timestamp")


def quiet(_message: str) -> None:
    """The default progress callback: says nothing."""


class Stopwatch:
    """Seconds since it was made or entered; frozen when its `with` block ends."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.ended: float | None = None

    def __enter__(self) -> Stopwatch:
        self.began, self.ended = time.perf_counter(), None
        return self

    def __exit__(self, *_exc: object) -> None:
        self.ended = time.perf_counter()

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.began

    def ms(self, digits: int = 1) -> float:
        return round(1e3 * self.seconds, digits)


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls, each after a garbage collection (so that none pays for another's)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        with Stopwatch() as took:
            function()
        times.append(took.seconds)
    return statistics.median(times)


def interleaved_medians(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function over `repeats` rounds, each round calling every function once in turn
    (after a garbage collection each): a slow minute of this shared machine slows every function of a round, so
    their ratios hold where timing each `repeats` times in a row did not (the engine and the bare kernel timed one
    after the other: `engine_vs_kernel` 0.33-0.45 over four runs of the same code, 2026-12-07)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            gc.collect()
            with Stopwatch() as took:
                function()
            times[name].append(took.seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def median(values: Iterable[float], digits: int = 3) -> float | None:
    """The median, rounded; None when there are no values."""
    values = list(values)
    return round(statistics.median(values), digits) if values else None


def percentile(values: Iterable[float], q: float) -> float:
    """The value at rank q * n of the sorted values (no interpolation): p99 of 100 values is the largest; 0 if none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder, removed with everything in it when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


def machine() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "polars": pl.__version__,
        "platform": platform.platform(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class BenchRun:
    """One run of a benchmark, from its start (the timestamp and the wall clock) to its report."""

    bench: str
    params: dict[str, object]
    timestamp: str = field(default_factory=_now)
    clock: Stopwatch = field(default_factory=Stopwatch)

    def report(self, results: Mapping[str, object]) -> dict[str, object]:
        clash = set(results) & set(COMMON_FIELDS)
        if clash:
            raise ValueError(f"results may not use the common fields {sorted(clash)}")
        return {
            "bench": self.bench,
            **results,
            "peak_rss_mb": peak_rss_mb(),
            "elapsed_s": round(self.clock.seconds, 2),
            "params": dict(self.params),
            "machine": machine(),
            "timestamp": self.timestamp,
        }


def render(report: Mapping[str, object], indent: int | None = None) -> str:
    """The JSON text of a report: one line, or indented; a value JSON has no type for (a Path) as its str."""
    return json.dumps(report, indent=indent, default=str)


def render_text(report: Mapping[str, object]) -> str:
    """One `key  value` line per field, keys right-aligned; a nested value as compact JSON."""
    width = max((len(key) for key in report), default=0)
    lines = []
    for key, value in report.items():
        shown = render(value) if isinstance(value, dict | list) else value
        lines.append(f"{key:>{width}}  {shown}")
    return "\n".join(lines)
