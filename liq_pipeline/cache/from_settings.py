"""The cache the settings ask for: REDIS_URL when set, else the embedded redis-server under DATA_DIR.

Above both `client` (connecting) and `server` (the embedded server), so neither imports the other's user.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis

from .client import connect, safe_url
from .context import CacheOptions, MarketCache
from .keys import MarketKeys
from .resilience import ResilientCache
from .server import EmbeddedRedis

log = logging.getLogger(__name__)


def redis_url_for(redis_url: Any, data_dir: Path | str, redis_dir: Path | str | None = None) -> str:
    """REDIS_URL when set (str or SecretStr), else the embedded server's URL (started if needed).

    `redis_dir` defaults to <DATA_DIR>/redis (a REDIS_DATA_DIR setting could override it).
    """
    if redis_url is not None and hasattr(redis_url, "get_secret_value"):
        redis_url = redis_url.get_secret_value()
    if redis_url:
        return str(redis_url)
    return EmbeddedRedis(Path(redis_dir) if redis_dir else Path(data_dir) / "redis").url()


def client_for_settings(settings: Any, **kwargs: Any) -> redis.Redis:
    """The client the settings ask for: REDIS_URL, or the embedded server under DATA_DIR."""
    url = redis_url_for(settings.redis_url, settings.data_dir)
    log.info("Redis: %s%s", safe_url(url), "" if settings.redis_url else " (embedded)")
    return connect(url, **kwargs)


def open_market_cache(settings: Any, chain_id: int, pool: str, **options: Any) -> ResilientCache:
    """The cache of one market as the settings ask for it (REDIS_URL or the embedded server under DATA_DIR).

    `options` go to CacheOptions (ipc_compression, staging_ttl_sec, ...) except `retry_interval`, which goes to
    ResilientCache.
    """
    retry_interval = options.pop("retry_interval", 1.0)
    cache = MarketCache(
        client_for_settings(settings),
        MarketKeys.for_market(chain_id, pool),
        CacheOptions.from_settings(settings, **options),
    )
    return ResilientCache(cache, retry_interval=retry_interval)
