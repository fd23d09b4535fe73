"""Platform tests: Dagster assets, checks and sensors in-process, against the real devnet and a real Redis.

Reuses the integration fixtures (one anvil per session running the real Aave V3 contracts). Each test gets its own
DATA_DIR (lake, embedded Redis) and settings pointing at the devnet, and a fresh Dagster instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import settings_fields


@pytest.fixture
def platform_env(chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings for a run against the session devnet; the embedded Redis is stopped afterwards."""
    for name in settings_fields():
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "d"  # short: unix socket paths are limited to ~100 bytes
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RPC_URL", chain.node.url)
    monkeypatch.setenv("AAVE_ADDRESSES_PROVIDER", chain.market.addresses_provider)
    monkeypatch.setenv("AAVE_PROTOCOL_VERSION", "3.0")
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("LAKE_RANGE_BLOCKS", "100")
    monkeypatch.setenv("CONFIRMATIONS", "2")
    monkeypatch.setenv("HF_CHECK_SAMPLE", "1000")
    monkeypatch.setenv("STABLE_ASSET_SYMBOLS", "USDC,DAI")
    monkeypatch.setenv("PREDICTIVE_ENABLED", "true")
    monkeypatch.setenv("BORROWERS_INDEX_MODE", "redis")
    # the devnet was loaded from a state dump: blocks before the load have logs but no state
    monkeypatch.setenv("STATE_HISTORY_FROM_BLOCK", str(int(chain.rpc.call("eth_blockNumber"), 16)))
    yield data
    EmbeddedRedis(data / "redis").stop()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance
