"""A real Redis for the execution tests: the cache tests' embedded redis-server fixtures, reused."""

from __future__ import annotations

from liq_pipeline_tests.cache.conftest import own_server, redis_server

__all__ = ["own_server", "redis_server"]
