"""Redis as an optional accelerator: every writer goes through ResilientCache, which never lets an outage stop it.

While Redis is unreachable:
- writes return "deferred" instead of raising; the LATEST state of each kind is kept in memory (candidates,
  positions, reserves, borrower index, KPIs, price windows) and incremental kinds are merged (index updates by
  user, dirty users, acks, a bounded tail of alerts), so memory stays bounded by the state, not the outage length;
- reads return None (consume returns []); `reachable` is False and `last_error` says why;
- the outage is logged once, at WARNING, and nothing more per call;
- Redis is probed at most every `retry_interval` seconds, each probe bounded by `probe_timeout` (a call in
  between costs no network round trip). `probe_in_background=True` (the watcher's hot path): the probes run in a
  thread of their own, so no caller ever waits for one: against a hung server (SIGSTOP) every probe costs its
  whole timeout, which a synchronous probe charged to a block once per `retry_interval`.
When a probe succeeds the kept state is written back (catch-up), in write order, and the recovery is logged once,
with the outage's length and the number of writes deferred meanwhile.
Writes are idempotent (replacements, ZADD/HSET of latest values), except XADD of alerts and dirty users, which may
be duplicated if Redis dies between applying one and answering: consumers tolerate that (at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

import polars as pl
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import alerts as alerts_mod
from . import borrowers, candidates, kpis, market_state, positions
from .context import MarketCache
from .dirty import DirtyEntry, DirtyQueue

log = logging.getLogger(__name__)

# Errors meaning "Redis is not usable right now" (not "this command is wrong"): down, timing out, loading its
# dataset, read-only after a failover, or out of memory. Anything else is a bug and is raised.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)

Outcome = Literal["written", "skipped_older", "deferred"]
T = TypeVar("T")


def describe_client(client: redis.Redis) -> str:
    """Scheme and host (or socket path) of a client, never its password."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    scheme = "rediss" if "ssl" in client.connection_pool.connection_class.__name__.lower() else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _probe_client(client: redis.Redis, timeout: float) -> redis.Redis:
    pool = client.connection_pool
    kwargs = {
        **pool.connection_kwargs,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


class ResilientCache:
    """One market's cache that degrades to memory when Redis is unreachable and catches up when it returns."""

    def __init__(
        self,
        cache: MarketCache,
        *,
        retry_interval: float = 1.0,
        probe_timeout: float = 0.25,
        max_pending_alerts: int = 1_000,
        claim_idle_ms: int = 30_000,
        monotonic: Callable[[], float] = time.monotonic,
        probe_in_background: bool = False,
    ) -> None:
        self.cache = cache
        self.where = describe_client(cache.client)
        self.retry_interval = retry_interval
        # Probes during an outage use their own short timeouts and no retry: against a host that drops packets a
        # probe costs at most `probe_timeout`, once per `retry_interval`, instead of the client's full timeouts.
        self._probe = _probe_client(cache.client, probe_timeout)
        self.dirty_queue = DirtyQueue(cache, claim_idle_ms=claim_idle_ms)
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._reachable = True  # optimistic: the first call finds out
        self._down_since = 0.0
        self._next_probe = 0.0
        self.last_error: str | None = None
        self.outages = 0  # outages seen (each logged once when it starts, once when it ends)
        self.deferred_writes = 0  # write calls answered "deferred", over the cache's life
        self._deferred_in_outage = 0
        self._background = probe_in_background
        self._probe_ok = threading.Event()  # set by the background probe: Redis answered, catch up on next call
        self._probe_stop = threading.Event()
        self._probe_wanted = threading.Event()
        self._probe_thread: threading.Thread | None = None
        # kind -> (label for the log, writer); insertion-ordered, written back in that order.
        self._pending: dict[str, tuple[str, Callable[[], Any]]] = {}
        self._results: dict[str, Any] = {}
        # Merged state of the incremental kinds.
        self._index_updates: dict[str, float] = {}
        self._index_removals: set[str] = set()
        self._kpis: dict[str, tuple[Any, float]] = {}
        self._prices: dict[str, tuple[int, pl.DataFrame]] = {}
        self._dirty: dict[str, int] = {}
        self._acks: dict[str, set[str]] = {}
        self._alerts: deque[alerts_mod.Alert] = deque(maxlen=max_pending_alerts)

    # --- status -------------------------------------------------------------------------------------------------
    @property
    def reachable(self) -> bool:
        """False from a failed call until a probe succeeds."""
        return self._reachable

    @property
    def pending(self) -> list[str]:
        """The kinds of state waiting to be written back (empty when Redis is in sync)."""
        return list(self._pending)

    def flush(self) -> bool:
        """Try to write back pending state now (e.g. once per watcher tick); True when nothing is left pending."""
        with self._lock:
            return self._flush()

    def note_unavailable(self, error: Exception) -> None:
        """A caller that talked to `cache.client` directly (the watcher's incremental candidate writes) met an
        outage: the cache goes down as if its own write had failed (one warning), and its next writes are kept."""
        with self._lock:
            self._unavailable(error)

    def close(self) -> None:
        """Stop the background probe, if any (it is a daemon thread: a process may also just exit)."""
        self._probe_stop.set()
        self._probe_wanted.set()

    # --- writes: latest state -------------------------------------------------------------------------------------
    def write_candidates(self, block: int, frame: pl.DataFrame) -> Outcome:
        return self._write_latest(
            "candidates",
            f"candidates (block {block}, {frame.height} rows)",
            lambda: candidates.write_candidates(self.cache, block, frame),
        )

    def put_positions(self, block: int, frame: pl.DataFrame, block_hash: str | None = None) -> Outcome:
        return self._write_latest(
            "positions",
            f"positions (block {block}, {frame.height} rows)",
            lambda: positions.put_positions(self.cache, block, frame, block_hash),
        )

    def put_reserves(self, block: int, reserves: Any) -> Outcome:
        return self._write_latest(
            "reserves", f"reserves (block {block})", lambda: market_state.put_reserves(self.cache, block, reserves)
        )

    def replace_borrower_index(self, block: int, frame: pl.DataFrame, hf_column: str = "hf") -> Outcome:
        with self._lock:
            # A full replacement supersedes the incremental updates made before it.
            self._index_updates.clear()
            self._index_removals.clear()
            self._pending.pop("index_updates", None)
        return self._write_latest(
            "index_replace",
            f"borrower index (block {block}, {frame.height} users)",
            lambda: borrowers.replace_borrower_index(self.cache, block, frame, hf_column),
        )

    # --- writes: merged -------------------------------------------------------------------------------------------
    def update_borrower_index(self, frame: pl.DataFrame, hf_column: str = "hf") -> Outcome:
        with self._lock:
            for user, hf in zip(frame["user"].to_list(), frame[hf_column].to_list(), strict=True):
                self._index_updates[user] = hf
                self._index_removals.discard(user)
            return self._merge("index_updates", self._write_index_updates)

    def remove_borrowers(self, users: Iterable[str]) -> Outcome:
        with self._lock:
            for user in users:
                self._index_removals.add(user)
                self._index_updates.pop(user, None)
            return self._merge("index_updates", self._write_index_updates)

    def set_kpis(self, values: Mapping[str, Any]) -> Outcome:
        with self._lock:
            now = self.cache.clock()
            self._kpis.update({name: (value, now) for name, value in values.items()})
            return self._merge("kpis", self._write_kpis)

    def put_price_windows(self, block: int, observations: pl.DataFrame) -> Outcome:
        with self._lock:
            for (asset,), part in observations.group_by("asset"):
                self._prices[asset] = (block, part)
            return self._merge("prices", self._write_prices)

    def publish_dirty(self, block: int, users: Iterable[str]) -> Outcome:
        with self._lock:
            for user in users:
                self._dirty[user] = max(block, self._dirty.get(user, block))
            return self._merge("dirty", self._write_dirty)

    def ack(self, group: str, ids: Iterable[str]) -> Outcome:
        with self._lock:
            self._acks.setdefault(group, set()).update(ids)
            return self._merge("acks", self._write_acks)

    def append_alert(self, alert: alerts_mod.Alert) -> Outcome:
        with self._lock:
            if not alert.at:  # stamp it now: a written-back alert keeps the time it was raised
                alert = alerts_mod.Alert(alert.kind, alert.message, alert.severity, self.cache.clock(), alert.details)
            self._alerts.append(alert)
            return self._merge("alerts", self._write_alerts)

    # --- reads ----------------------------------------------------------------------------------------------------
    def read_candidates(self, limit: int | None = None, max_eta: float = float("inf")) -> pl.DataFrame | None:
        return self._read(lambda: candidates.read_candidates(self.cache, limit, max_eta), None)

    def get_positions(self) -> positions.PositionsSnapshot | None:
        return self._read(lambda: positions.get_positions(self.cache), None)

    def get_reserves(self) -> market_state.ReserveSnapshot | None:
        return self._read(lambda: market_state.get_reserves(self.cache), None)

    def get_price_windows(self, assets: Iterable[str] | None = None) -> pl.DataFrame | None:
        return self._read(lambda: market_state.get_price_windows(self.cache, assets), None)

    def read_borrowers(
        self, min_hf: float = float("-inf"), max_hf: float = float("inf"), limit: int | None = None
    ) -> pl.DataFrame | None:
        return self._read(lambda: borrowers.read_borrowers(self.cache, min_hf, max_hf, limit), None)

    def get_kpis(self, names: Iterable[str] | None = None) -> dict[str, kpis.Kpi] | None:
        return self._read(lambda: kpis.get_kpis(self.cache, names), None)

    def read_alerts(self, after_id: str = "0", count: int = 100) -> list[alerts_mod.Alert] | None:
        return self._read(lambda: alerts_mod.read_alerts(self.cache, after_id, count), None)

    def consume(self, group: str, consumer: str, count: int = 100, block_ms: int | None = None) -> list[DirtyEntry]:
        return self._read(lambda: self.dirty_queue.consume(group, consumer, count, block_ms), [])

    # --- machinery --------------------------------------------------------------------------------------------------
    def _write_latest(self, kind: str, label: str, writer: Callable[[], Any]) -> Outcome:
        with self._lock:
            self._pending.pop(kind, None)  # the newer value replaces the kept one (and goes last)
            self._pending[kind] = (label, writer)
            return self._commit(kind)

    def _merge(self, kind: str, writer: Callable[[], Any]) -> Outcome:
        label = {
            "index_updates": f"borrower index updates ({len(self._index_updates) + len(self._index_removals)} users)",
            "kpis": f"KPIs ({len(self._kpis)})",
            "prices": f"price windows ({len(self._prices)} assets)",
            "dirty": f"dirty users ({len(self._dirty)})",
            "acks": f"acks ({sum(len(ids) for ids in self._acks.values())})",
            "alerts": f"alerts ({len(self._alerts)})",
        }[kind]
        self._pending[kind] = (label, writer)  # an already pending kind keeps its place: merged state is one write
        return self._commit(kind)

    def _commit(self, kind: str) -> Outcome:
        if not self._flush() and kind in self._pending:
            self.deferred_writes += 1
            self._deferred_in_outage += 1
            return "deferred"
        return "skipped_older" if self._results.pop(kind, True) is False else "written"

    def _flush(self) -> bool:
        """Write every pending kind in order; on an outage keep the rest. True when all were written."""
        if not self._pending and self._reachable:
            return True
        if not self._reachable:
            if self._background:
                if not self._probe_ok.is_set():
                    return False  # the probe thread has not heard Redis yet: no network round trip here
            elif self._monotonic() < self._next_probe:
                return False
            else:
                try:
                    self._probe.ping()
                except UNAVAILABLE as error:
                    self._unavailable(error)
                    return False
        caught_up = [] if self._reachable else [label for label, _ in self._pending.values()]
        try:
            for kind in list(self._pending):
                _label, writer = self._pending[kind]
                try:
                    self._results[kind] = writer()
                except UNAVAILABLE:
                    raise
                except Exception:
                    self._pending.pop(kind, None)  # a bad value or a bug: raised once, not retried forever
                    raise
                self._pending.pop(kind, None)
        except UNAVAILABLE as error:
            self._unavailable(error)
            return False
        if not self._reachable:
            self._recovered(caught_up)
        return True

    def _read(self, reader: Callable[[], T], default: T) -> T:
        with self._lock:
            if not self._reachable and not self._flush():
                log.debug("Redis at %s unreachable: read returns nothing", self.where)
                return default
            try:
                return reader()
            except UNAVAILABLE as error:
                self._unavailable(error)
                return default

    def _unavailable(self, error: Exception) -> None:
        now = self._monotonic()
        self._next_probe = now + self.retry_interval
        self.last_error = f"{type(error).__name__}: {error}"
        self._probe_ok.clear()
        if self._background:
            self._start_probe()
        if self._reachable:
            self._reachable = False
            self._down_since = now
            self._deferred_in_outage = 0
            self.outages += 1
            log.warning(
                "Redis at %s is unreachable (%s). Continuing without it: the latest state is kept in memory and "
                "written back when Redis returns; reads return nothing meanwhile. Probing every %.1fs.",
                self.where,
                self.last_error,
                self.retry_interval,
            )
        else:
            log.debug("Redis at %s still unreachable (%s)", self.where, self.last_error)

    def _recovered(self, caught_up: list[str]) -> None:
        self._reachable = True
        self.last_error = None
        wrote = ", ".join(caught_up) if caught_up else "nothing was pending"
        log.warning(
            "Redis at %s is reachable again after %.1fs; %d write(s) deferred meanwhile, caught up: %s.",
            self.where,
            self._monotonic() - self._down_since,
            self._deferred_in_outage,
            wrote,
        )

    def _start_probe(self) -> None:
        self._probe_wanted.set()
        if self._probe_thread is None:
            self._probe_thread = threading.Thread(target=self._probe_loop, name="redis-probe", daemon=True)
            self._probe_thread.start()

    def _probe_loop(self) -> None:
        """The background probe: once asked (`_probe_wanted`), PING every `retry_interval` (each bounded by
        `probe_timeout`) until Redis answers, then set `_probe_ok` and leave the catch-up to the next caller (the
        writes keep the caller's order, under its lock). `_probe_wanted` is cleared before a round, never after
        its ping: a caller that re-asks meanwhile (the catch-up failed) is never lost."""
        while not self._probe_stop.is_set():
            if not self._probe_wanted.wait(1.0):
                continue
            self._probe_wanted.clear()
            while not self._probe_stop.wait(self.retry_interval):
                try:
                    self._probe.ping()
                except UNAVAILABLE as error:
                    log.debug("Redis at %s still unreachable (%s)", self.where, type(error).__name__)
                    continue
                except Exception as error:  # an auth or protocol error is the caller's to meet: let it try
                    log.debug("Redis probe at %s: %s", self.where, type(error).__name__)
                self._probe_ok.set()
                break

    # --- writers of merged state (run under the lock; clear their state only once written) ----------------------
    def _write_index_updates(self) -> None:
        if self._index_updates:
            frame = pl.DataFrame(
                {"user": list(self._index_updates), "hf": list(self._index_updates.values())},
                schema={"user": pl.String, "hf": pl.Float64},
            )
            borrowers.update_borrower_index(self.cache, frame)
            self._index_updates.clear()
        if self._index_removals:
            borrowers.remove_borrowers(self.cache, sorted(self._index_removals))
            self._index_removals.clear()

    def _write_kpis(self) -> None:
        by_time: dict[float, dict[str, Any]] = {}
        for name, (value, at) in self._kpis.items():
            by_time.setdefault(at, {})[name] = value
        for at, values in by_time.items():
            kpis.set_kpis(self.cache, values, updated_at=at)
        self._kpis.clear()

    def _write_prices(self) -> None:
        by_block: dict[int, list[pl.DataFrame]] = {}
        for block, part in self._prices.values():
            by_block.setdefault(block, []).append(part)
        for block, parts in sorted(by_block.items()):
            market_state.put_price_windows(self.cache, block, pl.concat(parts, how="vertical_relaxed"))
        self._prices.clear()

    def _write_dirty(self) -> None:
        by_block: dict[int, list[str]] = {}
        for user, block in self._dirty.items():
            by_block.setdefault(block, []).append(user)
        for block, users in sorted(by_block.items()):
            self.dirty_queue.publish(block, users)
            for user in users:
                del self._dirty[user]

    def _write_acks(self) -> None:
        for group in list(self._acks):
            self.dirty_queue.ack(group, sorted(self._acks[group]))
            del self._acks[group]

    def _write_alerts(self) -> None:
        while self._alerts:
            alerts_mod.append_alert(self.cache, self._alerts[0])
            self._alerts.popleft()
