"""The watcher's Prometheus metrics, in a registry of their own (never prometheus_client's global REGISTRY).

The watcher builds one `BlockMetrics`, serves `metrics.registry` (`metrics.server.serve_metrics`) and calls, once per
evaluated block:

    metrics.observe(block, latency_s, users, batch_seconds, candidates_per_scenario, crossings_confirmed_per_scenario,
                    hf_values, behind)

and, when they happen, `rpc_error(kind)`, `redis_up(bool)`, `set_miss_rate(rate)`, `asset_check(asset, check, ok)`.
The executor's metrics (`liq_execution_*`, metrics/execution.py) live in the same registry: `BlockMetrics.execution`.

Names kept from the TypeScript bot (docs/predictive-hf.md §10): `predictive_candidates_total`,
`predictive_crossings_confirmed_total`, `hf_calc_users_per_sec`, `hf_calc_batch_seconds`,
`opportunity_latency_seconds`; the rest are `liq_*`.
docs/operations.md lists every metric and the alerts built on them.

Cost: `observe()` with 100k health factors costs well under a millisecond (the HF distribution is counted with one
vectorized comparison per bucket bound, not 100k `Histogram.observe()` calls; see `liq_pipeline_tests/metrics`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeHistogramMetricFamily, Metric

from ..config import SCENARIO_NAMES
from .execution import FINE_LATENCY_BUCKETS, ExecutionMetrics, labelled

# Block seen -> candidates written, and one engine batch: 1 ms .. 10 s, finest around the watcher's ~20 ms budget.
LATENCY_BUCKETS: tuple[float, ...] = (
    *FINE_LATENCY_BUCKETS,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Block available -> candidates written: the same, then up to a minute (a stalled loop's blocks land there).
AVAILABLE_BUCKETS: tuple[float, ...] = (*LATENCY_BUCKETS, 20.0, 30.0, 60.0)

# Current health factors: finest just above 1 (where users are about to cross), coarse far from it.
HF_BUCKETS: tuple[float, ...] = (
    0.8,
    0.9,
    0.95,
    0.98,
    1.0,
    1.01,
    1.02,
    1.05,
    1.1,
    1.2,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
)

# Created at 0 from the start so that rate() has a baseline; other kinds appear on first use.
RPC_ERROR_KINDS: tuple[str, ...] = ("timeout", "connection", "http", "rpc")


class HfDistribution:
    """Collector of `liq_hf_distribution`: a gauge histogram of the CURRENT health factors (a snapshot, not a count
    of observations over time).

    Exposed as `liq_hf_distribution_bucket{le}` (users with HF <= le, cumulative; +Inf = every user with a HF),
    `liq_hf_distribution_gcount` (users) and `liq_hf_distribution_gsum` (sum of the finite HFs). Being a snapshot,
    query it without rate(): `histogram_quantile(0.5, liq_hf_distribution_bucket)`.

    `set()` counts with one vectorized comparison per bound (~0.2 ms for 100k values); NaN and nulls are left out,
    +inf (no debt) lands in the +Inf bucket only. The scrape thread reads an immutable snapshot swapped in one step.
    """

    def __init__(self, name: str = "liq_hf_distribution", bounds: Sequence[float] = HF_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be increasing and unique")
        self.name = name
        self.documentation = "Current health factors of the watched borrowers (snapshot of the last evaluated block)"
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self._labels = [_le(b) for b in bounds] + ["+Inf"]
        self._snapshot: tuple[tuple[int, ...], float] = ((0,) * (len(bounds) + 1), 0.0)

    def set(self, values: Any) -> None:
        """Replace the distribution by `values` (a polars Series, numpy array or any float sequence)."""
        array = _as_float_array(values)
        finite_or_inf = array.size - int(np.count_nonzero(np.isnan(array)))
        counts = (*(int(np.count_nonzero(array <= bound)) for bound in self.bounds), finite_or_inf)
        total = float(np.sum(array, where=np.isfinite(array)))
        self._snapshot = (counts, total)

    @property
    def counts(self) -> tuple[int, ...]:
        """Cumulative counts per bucket, +Inf last."""
        return self._snapshot[0]

    def collect(self) -> Iterator[Metric]:
        counts, total = self._snapshot
        yield GaugeHistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(self._labels, counts, strict=True)),
            gsum_value=total,
        )

    def describe(self) -> Iterator[Metric]:
        yield GaugeHistogramMetricFamily(self.name, self.documentation)


class BlockMetrics:
    """Every metric the watcher exports, and the calls that feed them (thread-safe: prometheus_client's metrics
    are; the HF distribution swaps an immutable snapshot)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        scenarios: Iterable[str] = SCENARIO_NAMES,
        rpc_error_kinds: Iterable[str] = RPC_ERROR_KINDS,
        hf_buckets: Sequence[float] = HF_BUCKETS,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
        clock=time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()  # guards the child caches below (label sets created on first use)
        r = self.registry
        # --- names kept from the TypeScript bot ----------------------------------------------------------------
        self.candidates_total = Counter(
            "predictive_candidates",
            "Candidates emitted per scenario, summed over evaluated blocks (a user stays counted every block it "
            "remains a candidate; the current set size is liq_candidates)",
            ["scenario"],
            registry=r,
        )
        self.crossings_confirmed_total = Counter(
            "predictive_crossings_confirmed",
            "Predicted crossings that happened: candidates whose HF went below 1 as predicted, per scenario",
            ["scenario"],
            registry=r,
        )
        self.users_per_sec = Gauge(
            "hf_calc_users_per_sec", "Users evaluated per second by the last engine batch", registry=r
        )
        self.batch_seconds = Histogram(
            "hf_calc_batch_seconds",
            "Duration of one engine batch (every user, every scenario)",
            buckets=latency_buckets,
            registry=r,
        )
        self.opportunity_latency = Histogram(
            "opportunity_latency_seconds",
            "Block seen -> its candidates written (the watcher's end-to-end latency)",
            buckets=latency_buckets,
            registry=r,
        )
        # --- liq_* --------------------------------------------------------------------------------------------
        # from the block's availability (watch/heads.py), so a watcher held up (a hung Redis, a stuck call) shows:
        # buckets past opportunity_latency's 10 s, a 12 s stall was measured
        self.available_latency = Histogram(
            "liq_block_available_to_written_seconds",
            "Block available (first seen by the head observer or the loop) -> its candidates written",
            buckets=AVAILABLE_BUCKETS,
            registry=r,
        )
        self.node_stalls = Counter(
            "liq_node_head_stalls",
            "Stalls of the node: no new head for WATCH_HEAD_STALL_BLOCKS block times (each counted once)",
            registry=r,
        )
        self.redis_deferred = Counter(
            "liq_redis_deferred_writes",
            "Watcher writes kept in memory because Redis was unreachable (written back when it answers again)",
            registry=r,
        )
        self._redis_deferred_seen = 0
        self.candidates = Gauge(
            "liq_candidates", "Candidates of the last evaluated block, per scenario", ["scenario"], registry=r
        )
        self.miss_rate = Gauge(
            "liq_miss_rate",
            "Share of liquidations that were not flagged in advance (0..1; NaN = no liquidations)",
            registry=r,
        )
        self.miss_rate.set(float("nan"))
        self.blocks_behind = Gauge("liq_blocks_behind_head", "Chain head minus the last evaluated block", registry=r)
        self.rpc_errors = Counter("liq_rpc_errors", "RPC errors by kind", ["kind"], registry=r)
        self.redis = Gauge(
            "liq_redis_up",
            "1 when Redis answered at the last attempt, 0 when not, NaN before any (or without Redis)",
            registry=r,
        )
        self.redis.set(float("nan"))  # a watcher run with --no-redis must not look like "Redis down"
        self.last_block = Gauge("liq_last_evaluated_block", "Last block the watcher evaluated", registry=r)
        self.last_block_time = Gauge(
            "liq_watcher_last_block_timestamp_seconds",
            "Unix time of the last observe(), or of the start before the first block (a stalled loop stops it)",
            registry=r,
        )
        self.last_block_time.set(clock())
        self.users = Gauge("liq_watched_users", "Users evaluated in the last block", registry=r)
        self.check_passed = Gauge(
            "liq_asset_check_passed",
            "1 when the check passed at its last evaluation, 0 when it failed",
            ["asset", "check"],
            registry=r,
        )
        self.hf_distribution = HfDistribution(bounds=hf_buckets)
        r.register(self.hf_distribution)
        # The executor acts right after the watcher's evaluation: its metrics are served with the watcher's.
        self.execution = ExecutionMetrics(r)

        self._scenario_children: dict[str, tuple[Any, Any, Any]] = {}
        for scenario in scenarios:
            self._scenario(scenario)
        self._rpc_children = {kind: self.rpc_errors.labels(kind) for kind in rpc_error_kinds}

    # --- the per-block call ---------------------------------------------------------------------------------------
    def observe(
        self,
        block: int,
        latency_s: float,
        users: int,
        batch_seconds: float,
        candidates_per_scenario: Mapping[str, int] | None = None,
        crossings_confirmed_per_scenario: Mapping[str, int] | None = None,
        hf_values: Any = None,
        behind: int | None = None,
    ) -> None:
        """Record one evaluated block.

        block: the block evaluated; latency_s: block seen -> its candidates written (s); users: users evaluated;
        batch_seconds: the engine batch alone (s); candidates_per_scenario: candidates of this block per scenario
        (the set's size: adds to predictive_candidates_total, sets liq_candidates; a scenario left out counts 0;
        None: no evaluation of candidates this block, nothing changes); crossings_confirmed_per_scenario:
        predicted crossings confirmed in this block (adds); hf_values: current HF of every watched user (polars
        Series / numpy array; None keeps the previous distribution); behind: head - block (None: unchanged).
        """
        self.last_block.set(block)
        self.last_block_time.set(self._clock())
        self.opportunity_latency.observe(latency_s)
        self.batch_seconds.observe(batch_seconds)
        self.users.set(users)
        if batch_seconds > 0:
            self.users_per_sec.set(users / batch_seconds)
        if candidates_per_scenario is not None:
            for scenario in candidates_per_scenario.keys() - self._scenario_children.keys():
                self._scenario(scenario)  # a scenario seen for the first time
            for scenario, (total, _, current) in list(self._scenario_children.items()):
                count = candidates_per_scenario.get(scenario, 0)  # a scenario left out had no candidates
                if count:
                    total.inc(count)
                current.set(count)
        if crossings_confirmed_per_scenario:
            for scenario, count in crossings_confirmed_per_scenario.items():
                if count:
                    self._scenario(scenario)[1].inc(count)
        if hf_values is not None:
            self.hf_distribution.set(hf_values)
        if behind is not None:
            self.blocks_behind.set(behind)

    # --- events ---------------------------------------------------------------------------------------------------
    def rpc_error(self, kind: str, count: int = 1) -> None:
        """An RPC call failed; kind e.g. timeout / connection / http / rpc (JSON-RPC error) / rate_limited."""
        labelled(self._rpc_children, kind, self.rpc_errors.labels, self._lock).inc(count)

    def redis_up(self, up: bool) -> None:
        self.redis.set(1 if up else 0)

    def observe_available(self, seconds: float) -> None:
        """One block: available -> candidates written (s)."""
        self.available_latency.observe(seconds)

    def node_stall(self) -> None:
        self.node_stalls.inc()

    def redis_deferred_writes(self, total: int) -> None:
        """The cache's running count of deferred writes: the counter follows it (a new cache restarts from 0)."""
        with self._lock:
            grown = total - self._redis_deferred_seen if total >= self._redis_deferred_seen else total
            self._redis_deferred_seen = total
        if grown > 0:
            self.redis_deferred.inc(grown)

    def set_blocks_behind(self, blocks: int) -> None:
        """Head minus last evaluated block, when the head is learnt between blocks (observe() also sets it)."""
        self.blocks_behind.set(blocks)

    def set_miss_rate(self, rate: float | None) -> None:
        """Share of liquidations missed (0..1); None = no liquidations to judge (exported as NaN)."""
        self.miss_rate.set(float("nan") if rate is None else rate)

    def asset_check(self, asset: str, check: str, passed: bool) -> None:
        self.check_passed.labels(asset, check).set(1 if passed else 0)

    # --- helpers --------------------------------------------------------------------------------------------------
    def _scenario(self, scenario: str) -> tuple[Any, Any, Any]:
        children = self._scenario_children.get(scenario)
        if children is None:
            with self._lock:
                children = self._scenario_children.get(scenario)
                if children is None:
                    children = (
                        self.candidates_total.labels(scenario),
                        self.crossings_confirmed_total.labels(scenario),
                        self.candidates.labels(scenario),
                    )
                    self._scenario_children[scenario] = children
        return children


def exposed_names(*sources: Any) -> set[str]:
    """Every series name the sources can expose (`_total`, `_bucket`, `_count`, `_sum`, `_gcount`, ... included).

    A source is a registry or a collector; describe() is used where there is one (the exporter's collector then
    reads no Redis), else collect().
    """
    names: set[str] = set()
    for source in sources:
        describe = getattr(source, "describe", None)
        for family in describe() if describe is not None else source.collect():
            names |= _series_names(family)
    return names


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def _series_names(family: Metric) -> set[str]:
    names = {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names | {sample.name for sample in family.samples}


def _le(bound: float) -> str:
    return repr(float(bound))


def _as_float_array(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and hasattr(values, "dtype") and hasattr(values, "null_count"):  # polars Series
        if values.dtype != pl.Float64:
            values = values.cast(pl.Float64)
        if values.null_count():
            values = values.fill_null(float("nan"))
        return values.to_numpy()
    return np.asarray(values, dtype=np.float64)
