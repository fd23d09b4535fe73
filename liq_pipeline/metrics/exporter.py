"""The long-lived KPI exporter: what Dagster runs compute, served to Prometheus from Redis.

Each Dagster run is a fresh process, so runs never talk to Prometheus: they write KPI values to the market's Redis
hash `kpi` (`cache.set_kpis`), and this exporter reads that hash on every scrape (one HGETALL per market, ~1-2 ms)
and turns it into gauges. (prometheus_client's multiprocess mode was measured at 10,060 files for 30 runs; the
Pushgateway keeps only the last push per group.)

    liq exporter [--port 9465] [--host 127.0.0.1] [--market CHAIN_ID:POOL ...]
    run_exporter(settings, port)          # what `liq exporter` calls; blocks until SIGINT / SIGTERM

Markets: those given, else every market that has a KPI hash in Redis (found with SCAN, again every 30 s), limited to
CHAIN_ID when that setting is set. Every market series carries `chain_id` and `pool` labels.

KPI names -> series (docs/operations.md has the table):
    last_evaluated_block      -> liq_last_evaluated_block, liq_last_evaluation_timestamp_seconds (its updated_at)
    latency_ms_last / _p95    -> liq_evaluation_latency_last_seconds / liq_evaluation_latency_p95_seconds
    users                     -> liq_evaluated_users
    candidates_<scenario>     -> liq_candidates{scenario}
    miss_rate                 -> liq_miss_rate
    check_<asset>_<check>     -> liq_asset_check_passed{asset, check} (1 passed, 0 failed)
    any numeric KPI           -> liq_kpi{kpi} (raw, so a new KPI is visible before it gets a name of its own)
A scrape never fails: Redis unreachable gives `liq_redis_up 0` and no market series; a bad KPI value is skipped and
counted in `liq_exporter_errors_total{kind="decode"}`.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..cache import connect, redis_url_for, safe_url
from ..cache.context import CacheOptions, MarketCache
from ..cache.keys import PREFIX, MarketKeys
from ..cache.kpis import get_kpis, parse_check_kpi
from .server import DEFAULT_HOST, serve_metrics

log = logging.getLogger(__name__)

DEFAULT_PORT = 9465

_KPI_KEY_RE = re.compile(rf"^{PREFIX}:\{{(\d+):(0x[0-9a-f]{{40}})\}}:kpi$")

Market = tuple[int, str]  # (chain id, pool lower case)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class KpiCollector:
    """A prometheus_client collector reading the markets' KPI hashes from Redis at each scrape.

    `client`: a redis-py client, or a callable returning one, called until it succeeds (at most every
    `factory_retry` s), then kept: redis-py reconnects by itself after an outage. Give the client short timeouts:
    a scrape waits at most for them (client_factory uses 0.5 s to connect, 1 s per command, no retry).
    """

    def __init__(
        self,
        client: redis.Redis | Callable[[], redis.Redis],
        markets: Sequence[Market] | None = None,
        *,
        chain_id: int | None = None,
        rescan_interval: float = 30.0,
        factory_retry: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client if callable(client) and not isinstance(client, redis.Redis) else None
        self._client: redis.Redis | None = None if self._client_factory else client  # type: ignore[assignment]
        self._fixed = [MarketKeys.for_market(c, p) for c, p in markets] if markets else None
        self._chain_id = chain_id
        self._rescan_interval = rescan_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()  # scrapes may overlap (threaded server): one Redis read at a time
        self._markets: list[MarketKeys] = list(self._fixed or [])
        self._next_scan = 0.0
        self._factory_retry = factory_retry
        self._next_factory_try = 0.0
        self._up: bool | None = None
        self._warned: set[str] = set()
        self._errors: dict[str, int] = {"redis": 0, "decode": 0, "internal": 0}
        self.last_read_seconds = 0.0

    # --- prometheus_client protocol -----------------------------------------------------------------------------
    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()
        yield self._errors_family()

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # built under the lock, yielded after it
            families = self._families()
            started = time.perf_counter()
            try:
                readings, up = self._read(), True
            except (redis.RedisError, OSError) as error:  # unreachable, timing out, refused, auth, no client yet
                readings, up = [], False
                self._errors["redis"] += 1
                self._note_down(error)
            except Exception:  # a bug must not fail the scrape either: logged, counted, Redis judged by a PING
                log.exception("exporter: reading the KPIs failed")
                self._errors["internal"] += 1
                readings, up = [], self._ping()
            else:
                self._note_up()
            self.last_read_seconds = time.perf_counter() - started
            families["liq_redis_up"].add_metric([], 1.0 if up else 0.0)
            families["liq_exporter_markets"].add_metric([], float(len(readings)))
            families["liq_exporter_read_seconds"].add_metric([], self.last_read_seconds)
            for keys, kpis in readings:
                try:
                    self._export_market(families, keys, kpis)
                except Exception:
                    log.exception("exporter: exporting the KPIs of %s failed", keys.kpis)
                    self._errors["internal"] += 1
            out = [*families.values(), self._errors_family()]
        yield from out

    # --- reading ----------------------------------------------------------------------------------------------------
    def _connection(self) -> redis.Redis:
        """The client; built by the factory once (redis-py reconnects by itself after an outage). A factory that
        fails (e.g. the embedded server cannot start) is retried at most every `factory_retry` seconds."""
        if self._client is None:
            assert self._client_factory is not None
            now = self._monotonic()
            if now < self._next_factory_try:
                raise ConnectionError("no Redis client yet (the last attempt to connect failed)")
            self._next_factory_try = now + self._factory_retry
            try:
                self._client = self._client_factory()
            except Exception as error:  # e.g. the embedded server failed to start: a Redis outage to the scraper
                raise ConnectionError(f"cannot connect to Redis: {type(error).__name__}: {error}") from error
        return self._client

    def connect(self) -> bool:
        """Build the client now (run_exporter does, so that starting the embedded server never delays a scrape)."""
        try:
            self._connection()
            return True
        except ConnectionError as error:
            self._note_down(error)
            return False

    def _read(self) -> list[tuple[MarketKeys, dict]]:
        client = self._connection()
        markets = self._current_markets(client)
        out = []
        for keys in markets:
            try:
                kpis = get_kpis(MarketCache(client, keys, CacheOptions()))
            except redis.ResponseError:  # e.g. WRONGTYPE: not a KPI hash; skip the market, keep the scrape
                self._skipped(keys, "is not a readable KPI hash")
                continue
            except (ValueError, TypeError):  # an undecodable value (get_kpis decodes the whole hash)
                self._skipped(keys, "holds an undecodable value")
                continue
            out.append((keys, kpis))
        return out

    def _skipped(self, keys: MarketKeys, why: str) -> None:
        self._errors["decode"] += 1
        if keys.kpis not in self._warned:  # once per key, not once per scrape
            self._warned.add(keys.kpis)
            log.warning("KPI key %s %s; skipped (counted in liq_exporter_errors_total)", keys.kpis, why)

    def _current_markets(self, client: redis.Redis) -> list[MarketKeys]:
        if self._fixed is not None:
            return self._fixed
        now = self._monotonic()
        if now >= self._next_scan:
            found = []
            for raw in client.scan_iter(match=f"{PREFIX}:{{*}}:kpi", count=1000):
                match = _KPI_KEY_RE.match(raw.decode() if isinstance(raw, bytes) else raw)
                if match and (self._chain_id is None or int(match[1]) == self._chain_id):
                    found.append(MarketKeys.for_market(int(match[1]), match[2]))
            self._markets = sorted(set(found), key=lambda k: (k.chain_id, k.pool))
            self._next_scan = now + self._rescan_interval if self._markets else now + 1.0
        return self._markets

    # --- exporting --------------------------------------------------------------------------------------------------
    def _export_market(self, families: dict[str, Metric], keys: MarketKeys, kpis: dict) -> None:
        market = [str(keys.chain_id), keys.pool]
        for name, kpi in kpis.items():
            value = _number(kpi.value)
            if value is None:
                continue  # strings (e.g. latency_ms_recent, a JSON list) are not gauges
            families["liq_kpi"].add_metric([*market, name], value)
            if name == "last_evaluated_block":
                families["liq_last_evaluated_block"].add_metric(market, value)
                families["liq_last_evaluation_timestamp_seconds"].add_metric(market, kpi.updated_at)
            elif name == "latency_ms_last":
                families["liq_evaluation_latency_last_seconds"].add_metric(market, value / 1000.0)
            elif name == "latency_ms_p95":
                families["liq_evaluation_latency_p95_seconds"].add_metric(market, value / 1000.0)
            elif name == "users":
                families["liq_evaluated_users"].add_metric(market, value)
            elif name == "miss_rate":
                families["liq_miss_rate"].add_metric(market, value)
            elif name.startswith("candidates_"):
                families["liq_candidates"].add_metric([*market, name[len("candidates_") :]], value)
            elif (parsed := parse_check_kpi(name)) is not None:
                families["liq_asset_check_passed"].add_metric([*market, *parsed], 1.0 if value else 0.0)

    @staticmethod
    def _families() -> dict[str, Metric]:
        m = ["chain_id", "pool"]

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=list(labels))

        families = [
            gauge("liq_redis_up", "1 when the exporter's last Redis read succeeded, else 0"),
            gauge("liq_exporter_markets", "Markets whose KPIs were read at this scrape"),
            gauge("liq_exporter_read_seconds", "Duration of this scrape's Redis reads"),
            gauge("liq_last_evaluated_block", "Last block an evaluation (Dagster run or watcher) recorded", m),
            gauge("liq_last_evaluation_timestamp_seconds", "Unix time last_evaluated_block was written", m),
            gauge("liq_evaluation_latency_last_seconds", "Block seen -> candidates written, last evaluation", m),
            gauge("liq_evaluation_latency_p95_seconds", "Block seen -> candidates written, p95 of recent runs", m),
            gauge("liq_evaluated_users", "Users in the last evaluation", m),
            gauge("liq_candidates", "Candidates of the last evaluation per scenario", [*m, "scenario"]),
            gauge("liq_miss_rate", "Share of liquidations not flagged in advance (0..1)", m),
            gauge("liq_asset_check_passed", "1: the check passed at its last run, 0: failed", [*m, "asset", "check"]),
            gauge("liq_kpi", "Every numeric KPI of the market's Redis hash, raw", [*m, "kpi"]),
        ]
        return {family.name: family for family in families}

    def _errors_family(self) -> CounterMetricFamily:
        family = CounterMetricFamily("liq_exporter_errors", "Failed Redis reads, skipped KPI values", labels=["kind"])
        for kind, count in self._errors.items():
            family.add_metric([kind], float(count))
        return family

    def _ping(self) -> bool:
        try:
            return bool(self._connection().ping())
        except Exception:
            return False

    def _note_down(self, error: Exception) -> None:
        if self._up is not False:
            log.warning("exporter: Redis unreachable (%s); liq_redis_up 0 until it answers", type(error).__name__)
        self._up = False

    def _note_up(self) -> None:
        if self._up is False:
            log.warning("exporter: Redis answers again")
        self._up = True


def exporter_registry(
    client: redis.Redis | Callable[[], redis.Redis], markets: Sequence[Market] | None = None, **options: Any
) -> tuple[CollectorRegistry, KpiCollector]:
    """A registry holding only the KPI collector (no process or platform collectors: one job, one set of names)."""
    registry = CollectorRegistry()
    collector = KpiCollector(client, markets, **options)
    registry.register(collector)
    return registry, collector


def client_factory(settings: Any, *, timeout: float = 1.0) -> Callable[[], redis.Redis]:
    """Connect the way the settings say (REDIS_URL or the embedded server), with scrape-sized timeouts."""

    def make() -> redis.Redis:
        url = redis_url_for(settings.redis_url, settings.data_dir)
        log.info("exporter reads Redis at %s", safe_url(url))
        return connect(url, connect_timeout=min(timeout, 0.5), timeout=timeout, retries=0)

    return make


def run_exporter(
    settings: Any,
    port: int | None = None,
    *,
    host: str | None = None,
    markets: Sequence[Market] | None = None,
    stop: threading.Event | None = None,
    ready: Callable[[int], None] | None = None,
) -> int:
    """Serve the KPI exporter until SIGINT / SIGTERM (or `stop` is set). Returns 0.

    port: EXPORTER_PORT (default 9465) when None; 0 picks a free port (passed to `ready`). host: METRICS_HOST
    (default 127.0.0.1).
    """
    port = int(getattr(settings, "exporter_port", DEFAULT_PORT)) if port is None else port
    host = host or getattr(settings, "metrics_host", None) or DEFAULT_HOST
    chain_id = getattr(settings, "chain_id", None)
    registry, collector = exporter_registry(client_factory(settings), markets, chain_id=chain_id)
    collector.connect()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    with serve_metrics(registry, port, host) as server:
        log.info("KPI exporter serving on %s", server.url)
        if ready is not None:
            ready(server.port)
        while not stop.wait(0.5):
            pass
    log.info("KPI exporter stopped")
    return 0


def parse_market(text: str) -> Market:
    """CHAIN_ID:POOL_ADDRESS (as `liq exporter --market` takes it) -> (chain id, pool lower case); ValueError."""
    chain, sep, pool = text.partition(":")
    if not sep:
        raise ValueError(f"expected CHAIN_ID:POOL_ADDRESS, got {text!r}")
    try:
        keys = MarketKeys.for_market(int(chain), pool)
    except ValueError as error:
        raise ValueError(f"expected CHAIN_ID:POOL_ADDRESS, got {text!r} ({error})") from None
    return keys.chain_id, keys.pool
