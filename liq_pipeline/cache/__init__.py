"""Redis L2 cache: the hot state shared by the watcher, the Dagster runs and the metrics exporter.

Start here: `open_market_cache(settings, chain_id, pool)` gives a ResilientCache (writes never fail on an outage).
Modules: keys (layout), server (embedded redis-server), client (connecting), from_settings (REDIS_URL or the
embedded server), codec (msgpack, Arrow IPC),
batching (pipelining), candidates, positions, borrowers, market_state, dirty, kpis, alerts, resilience.
docs/redis-setup.md documents every key.
"""

from __future__ import annotations

from .alerts import Alert, append_alert, read_alerts
from .borrowers import borrower_count, read_borrowers, remove_borrowers, replace_borrower_index, update_borrower_index
from .candidates import candidates_block, read_candidates, write_candidates
from .client import connect, safe_url
from .codec import frame_to_ipc, ipc_to_frame, pack, unpack
from .context import CacheOptions, MarketCache
from .dirty import DirtyEntry, DirtyQueue
from .from_settings import client_for_settings, open_market_cache, redis_url_for
from .keys import MarketKeys
from .kpis import Kpi, get_kpis, set_kpis
from .market_state import get_price_windows, get_reserves, put_price_windows, put_reserves
from .positions import PositionsSnapshot, get_positions, positions_block, put_positions
from .resilience import ResilientCache
from .server import EmbeddedRedis

__all__ = [
    "Alert",
    "CacheOptions",
    "DirtyEntry",
    "DirtyQueue",
    "EmbeddedRedis",
    "Kpi",
    "MarketCache",
    "MarketKeys",
    "PositionsSnapshot",
    "ResilientCache",
    "append_alert",
    "borrower_count",
    "candidates_block",
    "client_for_settings",
    "connect",
    "frame_to_ipc",
    "get_kpis",
    "get_positions",
    "get_price_windows",
    "get_reserves",
    "ipc_to_frame",
    "open_market_cache",
    "pack",
    "positions_block",
    "put_positions",
    "put_price_windows",
    "put_reserves",
    "read_alerts",
    "read_borrowers",
    "read_candidates",
    "redis_url_for",
    "remove_borrowers",
    "replace_borrower_index",
    "safe_url",
    "set_kpis",
    "unpack",
    "update_borrower_index",
    "write_candidates",
]
