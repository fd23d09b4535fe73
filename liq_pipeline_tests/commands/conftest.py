"""Fixtures shared by the command tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.devnet import anvil
from liq_pipeline.devnet.paths import market_json_path


@pytest.fixture
def devnet_home(chain, tmp_path: Path) -> Iterator[Path]:
    """A DATA_DIR whose running devnet is the session's (its pid file and market.json, as `liq devnet up` writes).
    The embedded Redis a command started there (`liq backfill` does) is stopped after the test."""
    data_dir = tmp_path / "data"
    anvil.write_pid_file(data_dir, chain.node)
    chain.market.save(market_json_path(data_dir))
    yield data_dir
    EmbeddedRedis(data_dir / "redis").stop()
