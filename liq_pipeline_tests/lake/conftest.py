"""Devnet fixtures for the lake's integration tests.

On top of the session devnet (real anvil, real Aave V3, 200 seeded borrowers; `fixtures/devnet.py`), `history`
writes a short, known chain history once for this package, between evm_snapshot and evm_revert:

    range A = [base, base+99]        a 1 % WETH move at base+40, otherwise empty blocks
    range B = [base+100, base+199]   a price shock at base+120, a real liquidationCall at base+130

`base` is the first 100-block range after the loaded state (anvil keeps no state below the block it loaded:
eth_call there fails, logs and headers remain). Ranges of 100 blocks keep the package well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from liq_pipeline.chain.discovery import Market, discover_market
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet import actions
from liq_pipeline.lake.backfill import materialize_range
from liq_pipeline.lake.open import lake_at
from liq_pipeline.lake.partitions import BlockRange, ranges_covering
from liq_pipeline.lake.store import Lake
from liq_pipeline.risk.versions import ProtocolRules, rules_for
from liq_pipeline_tests.fixtures.devnet import Devnet

SIZE = 100
SHOCK = {"WETH": 70, "WBTC": 70, "AERO": 50}  # percent of the price left after the shock


@dataclass
class History:
    devnet: Devnet
    rpc: RpcClient
    market: Market
    rules: ProtocolRules
    a: BlockRange
    b: BlockRange
    loaded_head: int
    weth_move_block: int
    shock_block: int
    liquidation_block: int
    victim: str
    prices_before_shock: dict[str, int]
    lake: Lake  # pool_events of every range up to B, and the chain datasets of A and B

    @property
    def head(self) -> int:
        return self.b.end


def _mine_to(net: Devnet, block: int) -> None:
    head = int(net.rpc.call("eth_blockNumber"), 16)
    assert head <= block, f"the chain is at {head}, past {block}"
    if block > head:
        actions.mine_blocks(net.rpc, block - head)


def _next_block_is(net: Devnet, block: int) -> None:
    _mine_to(net, block - 1)


@pytest.fixture(scope="package")
def history(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    snapshot = devnet.rpc.call("evm_snapshot")
    rpc = RpcClient(devnet.node.url)
    try:
        loaded = int(devnet.rpc.call("eth_blockNumber"), 16)
        base = (loaded // SIZE + 1) * SIZE
        a, b = BlockRange(base, base + SIZE - 1), BlockRange(base + SIZE, base + 2 * SIZE - 1)
        market_spec = devnet.market
        prices = actions.oracle_prices(devnet.rpc, market_spec)

        _next_block_is(devnet, base + 40)
        actions.set_prices(devnet.rpc, market_spec, {"WETH": prices["WETH"] * 101 // 100})
        weth_move = int(devnet.rpc.call("eth_blockNumber"), 16)

        _next_block_is(devnet, base + 120)
        before_shock = actions.oracle_prices(devnet.rpc, market_spec)
        actions.set_prices(devnet.rpc, market_spec, {s: before_shock[s] * p // 100 for s, p in SHOCK.items()})
        shock = int(devnet.rpc.call("eth_blockNumber"), 16)
        underwater = sorted(
            user
            for user, data in zip(
                devnet.users, actions.account_data(devnet.rpc, market_spec.pool, devnet.users), strict=True
            )
            if data.health_factor < 10**18
        )
        assert underwater, "the shock must push some seeded borrowers below HF 1"

        _next_block_is(devnet, base + 130)
        event = actions.liquidate(devnet.rpc, market_spec, underwater[0])
        _mine_to(devnet, b.end)

        rules = rules_for(market_spec.protocol_version)
        market = discover_market(rpc, market_spec.addresses_provider, b.end, rules)
        lake = lake_at(tmp_path_factory.mktemp("lake"), range_size=SIZE)
        for block_range in ranges_covering(0, b.end, SIZE):
            chain_data = block_range in (a, b)
            datasets = ("pool_events", "reserve_indices", "price_histories", "borrower_snapshots")
            materialize_range(lake, rpc, market, rules, block_range, datasets if chain_data else ("pool_events",))
        yield History(
            devnet=devnet,
            rpc=rpc,
            market=market,
            rules=rules,
            a=a,
            b=b,
            loaded_head=loaded,
            weth_move_block=weth_move,
            shock_block=shock,
            liquidation_block=event.block,
            victim=event.user,
            prices_before_shock=before_shock,
            lake=lake,
        )
    finally:
        rpc.close()
        assert devnet.rpc.call("evm_revert", snapshot), "evm_revert failed: later tests would see this history"


@pytest.fixture
def fresh_lake(tmp_path: Path) -> Lake:
    return lake_at(tmp_path / "lake", range_size=SIZE)
