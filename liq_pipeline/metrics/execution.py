"""The executor's Prometheus metrics (issue #13): attempts by outcome, profit, block seen -> transaction sent, fee
bumps, and the recorder's own failures.

The watcher's `BlockMetrics` holds one (`BlockMetrics.execution`, served on the watcher's /metrics, job
`liq-watcher`) since the executor acts right after the watcher's evaluation; an executor running alone builds its
own `ExecutionMetrics()` (own registry) and serves it with `metrics.server.serve_metrics`.

Fed by `execution.records.AttemptRecorder` (one call per attempt record, docs/operations.md); directly:

    metrics.sent(mode, latency_s)                          # once per attempt, when its transaction went out
    metrics.outcome(mode, outcome, expected_profit_usd, realized_profit_usd)   # once, when its outcome is final
    metrics.replaced(count)                                # fee-bump replacements sent
    metrics.record_failure(kind)                           # an attempt record not written ("redis", "dropped")

The TypeScript bot never executed, so no name of its fits: all are `liq_execution_*`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

# Block seen -> transaction sent: 1 ms .. 500 ms, finest around the 60 ms target (issue #13: p99 <= 60 ms).
SEND_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.06,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
)

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
        self.attempts = Counter(
            "liq_execution_attempts",
            "Executor attempts by final outcome (dry_run, included, reverted, replaced, dropped, lost, cancelled, "
            "skipped) and mode (dry_run, live); counted once, when the outcome is known",
            ["mode", "outcome"],
            registry=r,
        )
        self.profit_expected = Counter(
            "liq_execution_profit_expected_usd",
            "Expected profit (USD, net of all costs) of the attempts, by final outcome",
            ["outcome"],
            registry=r,
        )
        self.profit_realized = Counter(
            "liq_execution_profit_realized_usd",
            "Realized profit (USD) of the attempts that made money (included transactions)",
            registry=r,
        )
        self.loss = Counter(
            "liq_execution_loss_usd",
            "Money lost by attempts whose realized profit was negative (USD, as a positive amount: gas of reverts)",
            registry=r,
        )
        self.send_latency = Histogram(
            "liq_execution_send_latency_seconds",
            "Block seen -> its liquidation transaction sent (accepted by the node; dry-run: when it would be sent)",
            ["mode"],
            buckets=latency_buckets,
            registry=r,
        )
        self.replacements = Counter(
            "liq_execution_replacements",
            "Fee-bump replacement transactions sent (the gas ladder's bumps)",
            registry=r,
        )
        self.record_failures = Counter(
            "liq_execution_record_failures",
            "Attempt records not written to Redis: redis (the write failed, retried), dropped (queue full, lost)",
            ["kind"],
            registry=r,
        )
        self._attempts = {(m, o): self.attempts.labels(m, o) for m in modes for o in outcomes}
        self._expected = {o: self.profit_expected.labels(o) for o in outcomes}
        self._latency = {m: self.send_latency.labels(m) for m in modes}
        self._failures = {k: self.record_failures.labels(k) for k in RECORD_FAILURE_KINDS}

    def sent(self, mode: str, latency_s: float) -> None:
        """An attempt's transaction went out `latency_s` after its block was seen (once per attempt)."""
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
        child = cache.get(key)
        if child is None:
            with self._lock:
                child = cache.setdefault(key, make(key))
        return child
