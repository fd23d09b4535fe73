"""Connecting: the REDIS_URL (or the embedded server's) to a redis-py client, and a URL safe to log.

Timeouts are short and retries few on purpose: when Redis is down the resilience layer takes over, and a caller
must not sit in redis-py's default exponential backoff on every call.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def safe_url(url: str) -> str:
    """Scheme and host (or socket path) only: never the password, the user name or query options."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{unquote(parts.path)}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def connect(
    url: str,
    *,
    connect_timeout: float = 1.0,
    timeout: float = 5.0,
    retries: int = 1,
    retry_timeouts: bool = True,
    **kwargs: Any,
):
    """A client for `url` (redis://, rediss:// with TLS options in the query, unix://, password in the URL).

    One immediate retry re-opens a connection that a server restart broke; more is the resilience layer's job.
    `retry_timeouts=False`: only a broken connection is retried, not a timeout. A hung server (SIGSTOP, a
    partition without resets) accepts connections into its backlog and never answers, so a retried timeout costs
    the timeout twice (measured: 0.1 s timeout, one retry: 0.20 s per call instead of 0.10 s).
    Connecting is lazy: nothing is sent until the first command.
    """
    retry = Retry(NoBackoff(), retries) if retry_timeouts else Retry(NoBackoff(), retries, (redis.ConnectionError,))
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,  # values of tens of MB (positions of 1M users) take tens of ms on loopback
        retry=retry,
        **kwargs,
    )


def hot_path_client(url: str, timeout: float, **kwargs: Any):
    """The watcher's client: `timeout` (REDIS_HOT_PATH_TIMEOUT_MS) for connecting and for every answer, a broken
    connection retried once (a restarted server), a timeout never: a hung Redis costs the hot path one timeout
    per outage, then the resilience layer answers from memory (cache/resilience.py)."""
    return connect(url, connect_timeout=timeout, timeout=timeout, retries=1, retry_timeouts=False, **kwargs)
