"""The executor's records: one `ExecutionAttempt` per attempt, appended to Redis and counted for Prometheus.

The executor calls `recorder.record(attempt)` when it decides (outcome `sent`, or directly `dry_run` / `skipped`)
and again with `attempt.with_outcome(...)` each time what it knows changes (a fee bump: `replacements`; the end:
`included`, `reverted`, `lost`, ...). Each call appends the WHOLE record to the market's Redis Stream
`liq:{<chain>:<pool>}:execution:attempts` (XADD MAXLEN ~ `max_len`, several records in one redis-py pipeline); the
last record of an attempt key is the attempt (the `liquidation_executions` lake dataset keeps it, by `block_seen`).

Never in the executor's way: `record()` only updates the metrics (in memory) and queues the record; a background
thread writes the queue. Redis down, hung or refusing: the records wait in the bounded queue (oldest dropped when it
is full, counted) and are retried every `retry_interval` s; the outage is logged once when it starts and once when
it ends, and counted in `liq_execution_record_failures_total{kind}`. `record()` never raises on a Redis problem.

The record's columns and their types are the lake's (`lake/datasets/liquidation_executions.py`: the lake sits below
execution/ in the layers and must not import it).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from ..cache.client import connect
from ..cache.from_settings import redis_url_for
from ..cache.keys import MarketKeys
from ..lake.datasets.liquidation_executions import (
    DRY_RUN,
    FINAL_OUTCOMES,
    MODES,
    NULL,
    OUTCOMES,
    SCHEMA,
    SENT,
    SKIPPED,
    TRIGGERS,
    stream_key,
)
from ..metrics.execution import ExecutionMetrics
from .idempotency import Opportunity

log = logging.getLogger(__name__)

# Bounds: the stream keeps about this many records per market (XADD MAXLEN ~); at ~2 records an attempt that is
# weeks of attempts on Base. The Dagster asset moves them to the lake range by range long before.
DEFAULT_MAX_LEN = 200_000
DEFAULT_QUEUE_SIZE = 10_000  # records waiting for Redis (an outage) before the oldest are dropped
_BATCH = 500  # records per pipeline
_TRACKED = 100_000  # attempts whose metrics state is remembered (a record seen again is not counted twice)
_UINT256_MAX = 2**256 - 1
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_REDIS_ERRORS = (redis.RedisError, OSError)


def new_attempt_key(block_seen: int) -> str:
    """A unique attempt key when no idempotency claim token is at hand (a `skipped` attempt): `<block>:<random>`.
    A granted claim's `Claim.token` (`<owner>:<block>:<random>`) is the natural key of an attempt that sends."""
    return f"{block_seen}:{secrets.token_hex(8)}"


def _address(value: Any, what: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise ValueError(f"{what} must be a 0x-prefixed 20-byte hex address, got {value!r}")
    return value.lower()


def _uint(value: Any, what: str, *, signed: bool = False) -> str:
    """An integer amount as a decimal string (the record's form of a uint256)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be an integer (int or decimal string), got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{what} must be a decimal integer, got {value!r}") from None
    if number > _UINT256_MAX or (number < 0 and not signed) or number < -_UINT256_MAX:
        raise ValueError(f"{what} out of range for a uint256: {value!r}")
    return str(number)


@dataclass(frozen=True)
class ExecutionAttempt:
    """One attempt at one opportunity (a row of `liquidation_executions`). Times are unix seconds (float), amounts
    in the debt asset's smallest unit, fees in wei. Build the first record when the executor decides; derive the
    later ones with `with_outcome(...)` (same `attempt_key`)."""

    market: MarketKeys
    attempt_key: str
    mode: str  # "dry_run" or "live"
    block_seen: int
    seen_at: float
    user: str
    collateral_asset: str
    debt_asset: str
    debt_to_cover: str  # uint256 as a decimal string (an int is accepted and converted)
    expected_profit_usd: float
    expected_profit_debt: str  # in debt-asset units, decimal string (may be negative)
    outcome: str = SENT  # sent (in flight), then one of FINAL_OUTCOMES
    trigger: str = "sealed"  # "sealed" (a block's evaluation); "pending" (a price update before its block)
    sent_at: float | None = None
    block_sent: int | None = None
    gas_limit: int | None = None
    priority_fee_wei: int | None = None
    max_fee_wei: int | None = None
    l1_fee_wei: int | None = None
    tx_hash: str | None = None
    nonce: int | None = None
    replacements: int = 0
    block_included: int | None = None
    gas_used: int | None = None
    realized_profit_usd: float | None = None
    competitor_tx: str | None = None
    competitor: str | None = None
    lost_by_blocks: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.market, MarketKeys):
            raise ValueError(f"market must be a MarketKeys, got {self.market!r}")
        if not isinstance(self.attempt_key, str) or not self.attempt_key:
            raise ValueError(f"attempt_key must be a non-empty string, got {self.attempt_key!r}")
        for name, allowed in (("mode", MODES), ("trigger", TRIGGERS), ("outcome", OUTCOMES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.outcome == DRY_RUN and self.mode != "dry_run":
            raise ValueError("outcome dry_run is for mode dry_run only")
        set_ = object.__setattr__
        set_(self, "user", _address(self.user, "user"))
        set_(self, "collateral_asset", _address(self.collateral_asset, "collateral_asset"))
        set_(self, "debt_asset", _address(self.debt_asset, "debt_asset"))
        set_(self, "competitor", _address(self.competitor, "competitor", optional=True))
        set_(self, "debt_to_cover", _uint(self.debt_to_cover, "debt_to_cover"))
        set_(self, "expected_profit_debt", _uint(self.expected_profit_debt, "expected_profit_debt", signed=True))
        for name in ("tx_hash", "competitor_tx"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and _HASH_RE.match(value)):
                raise ValueError(f"{name} must be a 0x-prefixed 32-byte hex hash, got {value!r}")
            if value is not None:
                set_(self, name, value.lower())
        if self.replacements < 0:
            raise ValueError(f"replacements must be >= 0, got {self.replacements}")
        if self.reason == NULL:
            set_(self, "reason", None)  # "" is the stream's null: keep one spelling of "no reason"

    # --- derived ------------------------------------------------------------------------------------------------
    @property
    def opportunity(self) -> Opportunity:
        """The opportunity the idempotency guard claims for this attempt."""
        return Opportunity(self.market, self.user, self.debt_asset, self.collateral_asset)

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES

    @property
    def latency_s(self) -> float | None:
        """Block seen -> transaction sent (None before it is sent)."""
        return None if self.sent_at is None else self.sent_at - self.seen_at

    def with_outcome(self, outcome: str, **changes: Any) -> ExecutionAttempt:
        """The same attempt, its outcome (and any other field) changed: what `record()` is called with next."""
        return dataclasses.replace(self, outcome=outcome, **changes)

    # --- the stream's form: {column: string}, "" for None ---------------------------------------------------------
    def to_fields(self) -> dict[str, str]:
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "market"}
        values |= {"chain_id": self.market.chain_id, "pool": self.market.pool}
        return {name: _field_text(values[name]) for name in SCHEMA}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> ExecutionAttempt:
        """Back from `to_fields()` (a stream entry, decoded to str)."""
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, text in fields.items():
            if name in ("chain_id", "pool") or name not in kinds or text == NULL:
                continue
            kind = str(kinds[name])
            values[name] = int(text) if kind.startswith("int") else float(text) if kind.startswith("float") else text
        return cls(market=MarketKeys.for_market(int(fields["chain_id"]), fields["pool"]), **values)


def _field_text(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, float):
        return repr(value)
    return str(value)


class AttemptRecorder:
    """Appends attempt records to Redis without ever holding up or failing the executor, and feeds the metrics.

    `record(attempt)`: metrics now (latency once per attempt when it has `sent_at`, the outcome once when final,
    replacements as they grow), the record queued for the writer thread. `flush(timeout)` waits for the queue to be
    written (shutdown, tests); `close()` flushes and stops the thread.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        metrics: ExecutionMetrics | None = None,
        max_len: int = DEFAULT_MAX_LEN,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        retry_interval: float = 1.0,
    ) -> None:
        if max_len < 1 or queue_size < 1:
            raise ValueError("max_len and queue_size must be >= 1")
        self.client = client
        self.metrics = metrics
        self.max_len = max_len
        self.queue_size = queue_size
        self.retry_interval = retry_interval
        self.written = 0  # records XADDed
        self.failures = 0  # pipelines that failed (each retried)
        self.dropped = 0  # records lost to a full queue
        self._queue: collections.deque[tuple[str, dict[str, str]]] = collections.deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._stop = threading.Event()  # wakes the writer out of its retry pause on close()
        self._down = False
        self._thread: threading.Thread | None = None
        self._tracked: collections.OrderedDict[str, tuple[bool, bool, int]] = collections.OrderedDict()
        self._track_lock = threading.Lock()

    # --- the executor's call -----------------------------------------------------------------------------------------
    def record(self, attempt: ExecutionAttempt) -> None:
        """Record (a new state of) an attempt. Never blocks on Redis, never raises because of it."""
        self._observe(attempt)
        entry = (stream_key(attempt.market), attempt.to_fields())
        with self._cond:
            if self._closed:
                self._drop(1)
                return
            self._queue.append(entry)
            overflow = len(self._queue) - self.queue_size
            for _ in range(max(0, overflow)):
                self._queue.popleft()  # the oldest: a later record of the same attempt may follow anyway
            if overflow > 0:
                self._drop(overflow)
            self._ensure_thread()
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is written; False if that did not happen within `timeout` (Redis down)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 2.0) -> bool:
        """Flush (up to `timeout`), then stop the writer; records still queued are dropped (and counted)."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
            left = len(self._queue)
            self._queue.clear()
            self._stop.set()
            self._cond.notify_all()
        if left:
            self._drop(left)
        if self._thread is not None:
            self._thread.join(timeout=max(self.retry_interval, 1.0) + 1.0)
        return flushed

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    # --- metrics -----------------------------------------------------------------------------------------------------
    def _observe(self, attempt: ExecutionAttempt) -> None:
        if self.metrics is None:
            return
        with self._track_lock:
            sent_seen, final_seen, replacements = self._tracked.pop(attempt.attempt_key, (False, False, 0))
            if not sent_seen and attempt.sent_at is not None and attempt.outcome != SKIPPED:
                self.metrics.sent(attempt.mode, attempt.sent_at - attempt.seen_at, attempt.trigger)
                sent_seen = True
            if attempt.replacements > replacements:
                self.metrics.replaced(attempt.replacements - replacements)
                replacements = attempt.replacements
            if not final_seen and attempt.final:
                self.metrics.outcome(
                    attempt.mode, attempt.outcome, attempt.expected_profit_usd, attempt.realized_profit_usd
                )
                final_seen = True
            self._tracked[attempt.attempt_key] = (sent_seen, final_seen, replacements)
            while len(self._tracked) > _TRACKED:
                self._tracked.popitem(last=False)

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self.metrics is not None:
            self.metrics.record_failure("dropped", count)

    # --- the writer thread -------------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="attempt-recorder", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                self._in_flight = len(batch)
            ok = self._write(batch)
            with self._cond:
                self._in_flight = 0
                if not ok and not self._closed:
                    self._queue.extendleft(reversed(batch))  # in order, ahead of newer records
                    overflow = len(self._queue) - self.queue_size
                    for _ in range(max(0, overflow)):
                        self._queue.popleft()
                    if overflow > 0:
                        self._drop(overflow)
                self._cond.notify_all()
            if not ok:
                self._stop.wait(self.retry_interval)  # new records do not shorten the pause; close() does

    def _write(self, batch: list[tuple[str, dict[str, str]]]) -> bool:
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, fields in batch:
                pipe.xadd(key, fields, maxlen=self.max_len, approximate=True)
            pipe.execute()
        except _REDIS_ERRORS as error:
            self.failures += 1
            if self.metrics is not None:
                self.metrics.record_failure("redis")
            if not self._down:
                self._down = True
                log.warning(
                    "Redis unreachable for execution records (%s): %d record(s) kept in memory and retried, the "
                    "executor is not held up",
                    type(error).__name__,
                    len(batch),
                )
            return False
        except Exception:  # never let the writer die silently: log it, keep the records, retry
            self.failures += 1
            log.exception("writing execution records failed; retrying")
            return False
        self.written += len(batch)
        if self._down:
            self._down = False
            log.warning("Redis answers again: execution records written (%d waiting)", len(self._queue))
        return True


def open_recorder(settings: Any, metrics: ExecutionMetrics | None = None, **options: Any) -> AttemptRecorder:
    """The recorder the settings ask for: REDIS_URL or the embedded server under DATA_DIR; a client with short
    timeouts and no retry (the writer thread retries whole batches itself)."""
    url = redis_url_for(settings.redis_url, settings.data_dir)
    return AttemptRecorder(connect(url, connect_timeout=0.5, timeout=1.0, retries=0), metrics=metrics, **options)
