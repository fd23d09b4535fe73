"""Integration fixtures: one real anvil per test session, running the real Aave V3 market from the state cache.

The cached state (deployed + TEST_BORROWERS borrowers, seed TEST_SEED) lives in pytest's cache directory and is
built on first use (~2 s); later sessions load it in well under a second. Each test that writes to the chain
runs between evm_snapshot and evm_revert, so tests never see each other's transactions.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from liq_pipeline.devnet import anvil, artifacts, state_cache
from liq_pipeline.devnet.market import Market
from liq_pipeline.devnet.rpc import Rpc

TEST_BORROWERS = 200
TEST_SEED = 42


@dataclass
class Devnet:
    node: anvil.AnvilNode
    rpc: Rpc
    w3: Web3
    market: Market
    users: list[str]
    entry: state_cache.CacheEntry
    data_dir: Path

    def contract(self, address: str, artifact: str):
        return self.w3.eth.contract(address=address, abi=artifacts.load(artifact).abi)

    @property
    def pool(self):
        return self.contract(self.market.pool, "Pool")

    @property
    def data_provider(self):
        return self.contract(self.market.data_provider, "AaveProtocolDataProvider")

    @property
    def oracle(self):
        return self.contract(self.market.oracle, "AaveOracle")


@pytest.fixture(scope="session")
def devnet_data_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Persistent across sessions (pytest's cache dir), so the market is built once per code version."""
    override = os.environ.get("LIQ_TEST_DEVNET_DIR")
    if override:
        return Path(override)
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("liq-devnet"))
    return tmp_path_factory.mktemp("liq-devnet")


@pytest.fixture(scope="session")
def devnet(devnet_data_dir: Path) -> Iterator[Devnet]:
    entry, _ = state_cache.ensure(devnet_data_dir, TEST_BORROWERS, TEST_SEED)
    node, market = state_cache.start_from(entry)
    rpc = Rpc(node.url)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        users = state_cache.read_borrowers(entry).users
        yield Devnet(node, rpc, w3, market, users, entry, devnet_data_dir)
    finally:
        rpc.close()
        anvil.stop(node)


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[Devnet]:
    """The session devnet, rolled back after the test."""
    snapshot = devnet.rpc.call("evm_snapshot")
    try:
        yield devnet
    finally:
        assert devnet.rpc.call("evm_revert", snapshot), "evm_revert failed: later tests would see this one's state"


@pytest.fixture
def build_cache(devnet_data_dir: Path, tmp_path: Path) -> Path:
    """A fresh data dir that shares only the compiled price feed (so it does not recompile)."""
    build = devnet_data_dir / "devnet" / "build"
    if build.is_dir():
        shutil.copytree(build, tmp_path / "devnet" / "build")
    return tmp_path
