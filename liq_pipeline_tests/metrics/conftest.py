"""The metrics tests' own real Redis (the exporter reads KPIs from it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liq_pipeline.cache import EmbeddedRedis
from liq_pipeline.cache.server import ServerInfo


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedRedis, ServerInfo]]:
    """A real redis-server of the test's own (short path: unix sockets allow ~100 bytes), stopped at the end."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("r") / "redis")
    info = server.ensure_running()
    try:
        yield server, info
    finally:
        server.stop()
