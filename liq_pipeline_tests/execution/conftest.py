"""A real Redis for the execution tests: the cache tests' embedded redis-server fixtures, reused (a client, and a
fresh market's keys per test)."""

from __future__ import annotations

from liq_pipeline_tests.cache.conftest import client, keys, own_server, redis_server

__all__ = ["client", "keys", "own_server", "redis_server"]
