"""What every cache function needs: the client, the market's keys and the batching options."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from .codec import COMPRESSIONS
from .keys import MarketKeys


@dataclass(frozen=True)
class CacheOptions:
    """REDIS_ENABLE_PIPELINING / REDIS_MAX_PIPELINE plus knobs that have no setting yet (defaults are fine)."""

    pipelining: bool = True
    max_pipeline: int = 500  # entries (members, fields, users) per round trip
    ipc_compression: str = "lz4"  # 100k positions: 5 MB and ~45 ms with lz4; 37 MB and ~100 ms uncompressed
    staging_ttl_sec: int = 300  # a writer that dies mid-replacement leaves staging keys that expire by themselves
    dirty_maxlen: int = 100_000  # approximate cap of the dirty-user stream (entries, one per publish)
    alerts_maxlen: int = 10_000

    def __post_init__(self) -> None:
        if self.max_pipeline < 1:
            raise ValueError("max_pipeline must be at least 1")
        if self.ipc_compression not in COMPRESSIONS:
            raise ValueError(f"ipc_compression must be one of {', '.join(COMPRESSIONS)}")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CacheOptions:
        values = {"pipelining": settings.redis_enable_pipelining, "max_pipeline": settings.redis_max_pipeline}
        return cls(**{**values, **overrides})


@dataclass
class SendStats:
    """Counted by the batching layer: lets tests (and curious operators) see how writes were chunked."""

    round_trips: int = 0
    commands: int = 0

    def reset(self) -> None:
        self.round_trips = 0
        self.commands = 0


@dataclass
class MarketCache:
    """One market's view of Redis. Cheap to build; share the client between markets."""

    client: redis.Redis
    keys: MarketKeys
    options: CacheOptions = field(default_factory=CacheOptions)
    stats: SendStats = field(default_factory=SendStats)
    clock: Any = time.time  # seconds since the epoch for updated_at fields; replaceable in tests
