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

# Dagster asset keys (defs/), longest first: `check_<asset>_<check>` is split at the asset these name. A KPI whose
# asset is not listed is split at its last underscore.
KNOWN_ASSETS: tuple[str, ...] = tuple(
    sorted(
        (
            "pool_events",
            "reserve_indices",
            "price_histories",
            "borrower_snapshots",
            "liquidation_candidates",
            "liquidation_outcomes",
        ),
        key=len,
        reverse=True,
    )
)
CHECK_PREFIX = "check_"


def check_kpi_name(asset: str, check: str) -> str:
    """The KPI name under which the Dagster side records a check's outcome (value 1 passed, 0 failed)."""
    return f"{CHECK_PREFIX}{asset}_{check}"


def parse_check_kpi(name: str) -> tuple[str, str] | None:
    """(asset, check) of a `check_<asset>_<check>` KPI name, or None when the name is not one."""
    if not name.startswith(CHECK_PREFIX):
        return None
    rest = name[len(CHECK_PREFIX) :]
    for asset in KNOWN_ASSETS:
        if rest.startswith(asset + "_") and len(rest) > len(asset) + 1:
            return asset, rest[len(asset) + 1 :]
    asset, sep, check = rest.rpartition("_")
    return (asset, check) if sep and asset and check else None


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
