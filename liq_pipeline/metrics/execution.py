"""The executor's Prometheus metrics (issue #13): attempts by outcome, profit, block seen -> transaction sent, fee
bumps, and the recorder's own failures.

The watcher's `BlockMetrics` holds one (`BlockMetrics.execution`, served on the watcher's /metrics, job
`liq-watcher`) since the executor acts right after the watcher's evaluation; an executor running alone builds its
own `ExecutionMetrics()` (own registry) and serves it with `metrics.server.serve_metrics`.

Fed by `execution.records.AttemptRecorder` (one call per attempt record, docs/operations.md); directly:

    metrics.sent(mode, latency_s, trigger)                 # once per attempt, when its transaction went out
    metrics.outcome(mode, outcome, expected_profit_usd, realized_profit_usd)   # once, when its outcome is final
    metrics.replaced(count)                                # fee-bump replacements sent
    metrics.record_failure(kind)                           # an attempt record not written ("redis", "dropped")

The TypeScript bot never executed, so no name of its fits: all are `liq_execution_*`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# The finest latency buckets, 1 ms .. 30 ms: the watcher's (registry.LATENCY_BUCKETS) and the executor's start so.
FINE_LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03)
# Block seen -> transaction sent: 1 ms .. 500 ms, finest around the 60 ms target (issue #13: p99 <= 60 ms).
SEND_LATENCY_BUCKETS: tuple[float, ...] = (*FINE_LATENCY_BUCKETS, 0.04, 0.05, 0.06, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)

# Created at 0 from the start (rate() needs a baseline; "no included transaction" needs the series to exist).
EXECUTION_MODES: tuple[str, ...] = ("dry_run", "live")
EXECUTION_OUTCOMES: tuple[str, ...] = (
    "dry_run",
    "included",
    "reverted",
    "replaced",
    "dropped",
    "lost",
    "cancelled",
    "skipped",
)
RECORD_FAILURE_KINDS: tuple[str, ...] = ("redis", "dropped")

# The executor's counters: attribute of ExecutionMetrics -> (name, documentation, label names).
COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "attempts": (
        "liq_execution_attempts",
        "Executor attempts by final outcome (dry_run, included, reverted, replaced, dropped, lost, cancelled, "
        "skipped) and mode (dry_run, live); counted once, when the outcome is known",
        ("mode", "outcome"),
    ),
    "profit_expected": (
        "liq_execution_profit_expected_usd",
        "Expected profit (USD, net of all costs) of the attempts, by final outcome",
        ("outcome",),
    ),
    "profit_realized": (
        "liq_execution_profit_realized_usd",
        "Realized profit (USD) of the attempts that made money (included transactions)",
        (),
    ),
    "loss": (
        "liq_execution_loss_usd",
        "Money lost by attempts whose realized profit was negative (USD, as a positive amount: gas of reverts)",
        (),
    ),
    "replacements": (
        "liq_execution_replacements",
        "Fee-bump replacement transactions sent (the gas ladder's bumps)",
        (),
    ),
    "record_failures": (
        "liq_execution_record_failures",
        "Attempt records not written to Redis: redis (the write failed, retried), dropped (queue full, lost)",
        ("kind",),
    ),
}


class ExecutionMetrics:
    """Every metric of the executor, in `registry` (a new one of its own when None). Thread-safe."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        modes: Iterable[str] = EXECUTION_MODES,
        outcomes: Iterable[str] = EXECUTION_OUTCOMES,
        latency_buckets: Sequence[float] = SEND_LATENCY_BUCKETS,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        for attribute, (name, documentation, labels) in COUNTERS.items():
            setattr(self, attribute, Counter(name, documentation, labels, registry=r))
        self.send_latency = Histogram(
            "liq_execution_send_latency_seconds",
            "Block seen -> its liquidation transaction sent (accepted by the node; dry-run: when it would be sent)",
            ["mode"],
            buckets=latency_buckets,
            registry=r,
        )
        self.pending_latency = Histogram(
            "liq_execution_pending_to_sent_seconds",
            "Pending price update seen (before its block is sealed) -> the liquidation it made possible sent (the "
            "pre-confirmation lane, trigger=pending; dry-run: when it would be sent)",
            ["mode"],
            buckets=latency_buckets,
            registry=r,
        )
        self._pending = {m: self.pending_latency.labels(m) for m in modes}
        self._attempts = {(m, o): self.attempts.labels(m, o) for m in modes for o in outcomes}
        self._expected = {o: self.profit_expected.labels(o) for o in outcomes}
        self._latency = {m: self.send_latency.labels(m) for m in modes}
        self._failures = {k: self.record_failures.labels(k) for k in RECORD_FAILURE_KINDS}

    def sent(self, mode: str, latency_s: float, trigger: str = "sealed") -> None:
        """An attempt's transaction went out `latency_s` after its block was seen (trigger "sealed"), or after the
        pending price update that made it possible was seen ("pending"); once per attempt."""
        if trigger == "pending":
            self._child(self._pending, mode, self.pending_latency.labels).observe(max(0.0, latency_s))
            return
        self._child(self._latency, mode, self.send_latency.labels).observe(max(0.0, latency_s))

    def outcome(
        self,
        mode: str,
        outcome: str,
        expected_profit_usd: float | None = None,
        realized_profit_usd: float | None = None,
    ) -> None:
        """An attempt's final outcome (once per attempt): counts it, adds its expected and realized profit."""
        self._child(self._attempts, (mode, outcome), lambda key: self.attempts.labels(*key)).inc()
        if expected_profit_usd is not None and expected_profit_usd > 0:
            self._child(self._expected, outcome, self.profit_expected.labels).inc(expected_profit_usd)
        if realized_profit_usd is not None:
            if realized_profit_usd > 0:
                self.profit_realized.inc(realized_profit_usd)
            elif realized_profit_usd < 0:
                self.loss.inc(-realized_profit_usd)

    def replaced(self, count: int = 1) -> None:
        if count > 0:
            self.replacements.inc(count)

    def record_failure(self, kind: str, count: int = 1) -> None:
        self._child(self._failures, kind, self.record_failures.labels).inc(count)

    def _child(self, cache: dict, key, make):
        return labelled(cache, key, make, self._lock)


def labelled(cache: dict, key, make: Callable[[Any], Any], lock: threading.Lock) -> Any:
    """cache[key]: a metric's child for a label set, made by `make(key)` (under `lock`) on first use."""
    child = cache.get(key)
    if child is None:
        with lock:
            child = cache.setdefault(key, make(key))
    return child
