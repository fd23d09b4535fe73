"""Connecting: the REDIS_URL (or the embedded server's) to a redis-py client, and a URL safe to log.

Timeouts are short and retries few on purpose: when Redis is down the resilience layer takes over, and a caller
must not sit in redis-py's default exponential backoff on every call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


def safe_url(url: str) -> str:
    """Scheme and host (or socket path) only: never the password, the user name or query options."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{unquote(parts.path)}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def connect(url: str, *, connect_timeout: float = 1.0, timeout: float = 5.0, retries: int = 1, **kwargs: Any):
    """A client for `url` (redis://, rediss:// with TLS options in the query, unix://, password in the URL).

    One immediate retry re-opens a connection that a server restart broke; more is the resilience layer's job.
    Connecting is lazy: nothing is sent until the first command.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,  # values of tens of MB (positions of 1M users) take tens of ms on loopback
        retry=Retry(NoBackoff(), retries),
        **kwargs,
    )


def redis_url_for(redis_url: Any, data_dir: Path | str, redis_dir: Path | str | None = None) -> str:
    """REDIS_URL when set (str or SecretStr), else the embedded server's URL (started if needed).

    `redis_dir` defaults to <DATA_DIR>/redis (a REDIS_DATA_DIR setting could override it).
    """
    if redis_url is not None and hasattr(redis_url, "get_secret_value"):
        redis_url = redis_url.get_secret_value()
    if redis_url:
        return str(redis_url)
    from .server import EmbeddedRedis  # the embedded server only when it is used

    return EmbeddedRedis(Path(redis_dir) if redis_dir else Path(data_dir) / "redis").url()


def client_for_settings(settings: Any, **kwargs: Any) -> redis.Redis:
    """The client the settings ask for: REDIS_URL, or the embedded server under DATA_DIR."""
    url = redis_url_for(settings.redis_url, settings.data_dir)
    log.info("Redis: %s%s", safe_url(url), "" if settings.redis_url else " (embedded)")
    return connect(url, **kwargs)
