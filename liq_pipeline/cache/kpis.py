"""KPI values for the metrics exporter: a hash name -> msgpack [value, updated_at].

The exporter reads the whole hash each scrape (HGETALL) and can drop values older than it trusts; the writers
(watcher, Dagster runs) never talk to Prometheus themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .batching import chunked, send_chunks
from .codec import pack, unpack
from .context import MarketCache

KpiValue = float | int | str | bool | None


@dataclass(frozen=True)
class Kpi:
    value: KpiValue
    updated_at: float


def set_kpis(cache: MarketCache, values: Mapping[str, KpiValue], updated_at: float | None = None) -> None:
    now = cache.clock() if updated_at is None else updated_at
    fields: list = []
    for name, value in values.items():
        fields += [name, pack([value, now])]
    key = cache.keys.kpis
    send_chunks(cache, ([("HSET", key, *part)] for part in chunked(fields, 2 * cache.options.max_pipeline)))


def get_kpis(cache: MarketCache, names: Iterable[str] | None = None) -> dict[str, Kpi]:
    key = cache.keys.kpis
    if names is None:
        stored = {name.decode(): value for name, value in cache.client.hgetall(key).items()}
    else:
        wanted = list(names)
        stored = dict(zip(wanted, cache.client.hmget(key, wanted) if wanted else [], strict=True))
    out = {}
    for name, value in sorted(stored.items()):
        if value is not None:
            kpi_value, updated_at = unpack(value)
            out[name] = Kpi(kpi_value, float(updated_at))
    return out
