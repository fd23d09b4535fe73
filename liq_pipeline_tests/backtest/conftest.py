"""Fixtures of the backtest's devnet tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from liq_pipeline.devnet import anvil
from liq_pipeline.devnet.paths import market_json_path


@pytest.fixture
def devnet_data_dir_of(chain, tmp_path: Path) -> Path:
    """./data of `tmp_path`: a DATA_DIR whose running devnet is the session's (its pid file and market.json, as
    `liq devnet up` writes them), so `liq` with RPC_URL empty uses it."""
    data_dir = tmp_path / "data"
    anvil.write_pid_file(data_dir, chain.node)
    chain.market.save(market_json_path(data_dir))
    return data_dir
