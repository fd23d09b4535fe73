"""`liq backfill` reads through chain.multicall.AggregatingRpcClient (the plain eth_calls of a batch at one block
sent as one aggregate3 call: anvil loads an old block's state from disk once per eth_call, issue #17). The lake it
writes must be the bytes the plain client writes, and the node must get far fewer eth_calls."""

from __future__ import annotations

import pytest

from liq_pipeline.chain.abi import function
from liq_pipeline.chain.discovery import discover_market
from liq_pipeline.chain.multicall import AggregatingRpcClient
from liq_pipeline.chain.rpc import RpcClient, RpcError
from liq_pipeline.lake.backfill import CHAIN_DATASETS, materialize_range
from liq_pipeline.lake.partitions import ranges_covering

pytestmark = pytest.mark.integration


class Counting(AggregatingRpcClient):
    """Counts the eth_call entries that reach the node (an aggregate counts once)."""

    def __init__(self, url: str, multicall: str | None):
        super().__init__(url, multicall, retries=0)
        self.eth_calls = 0

    def _send(self, items, chunk):
        self.eth_calls += sum(1 for index in chunk if items[index][0] == "eth_call")
        return super()._send(items, chunk)


def test_the_lake_read_through_aggregates_is_the_same_bytes(history, fresh_lake):
    with Counting(history.devnet.node.url, history.market.multicall) as rpc:
        market = discover_market(rpc, history.market.addresses_provider, history.b.end, history.rules)
        assert market == history.market
        for block_range in ranges_covering(0, history.b.end, fresh_lake.range_size):
            datasets = CHAIN_DATASETS if block_range in (history.a, history.b) else ("pool_events",)
            materialize_range(fresh_lake, rpc, market, history.rules, block_range, datasets)
    for dataset in CHAIN_DATASETS:
        for block_range in (history.a, history.b):
            expected = history.lake.path(dataset, block_range).read_bytes()
            assert fresh_lake.path(dataset, block_range).read_bytes() == expected, (dataset, block_range)


def test_a_discovery_costs_the_node_a_few_eth_calls_instead_of_one_per_read(history):
    block = history.b.end
    with Counting(history.devnet.node.url, history.market.multicall) as aggregated:
        discover_market(aggregated, history.market.addresses_provider, block, history.rules)
    with Counting(history.devnet.node.url, None) as plain:
        discover_market(plain, history.market.addresses_provider, block, history.rules)
    # measured on this V3.0 devnet: 8 against 21; on V3.2+ the plain discovery also sends 128 e-mode probes
    assert aggregated.eth_calls <= 10 and plain.eth_calls >= 2 * aggregated.eth_calls, (
        plain.eth_calls,
        aggregated.eth_calls,
    )


def test_reverts_and_a_missing_multicall_answer_as_plain_calls_do(history):
    market, block = history.market, history.b.end
    reserve = market.reserves[0]
    config = function("Pool", "getUserConfiguration").request(market.pool, history.victim, block=block)
    data = function("Pool", "getReserveData").request(market.pool, reserve.asset, block=block)
    reverts = function("Pool", "getUserConfiguration").request(reserve.a_token, history.victim, block=block)
    requests = [config, reverts, data, ("eth_blockNumber", []), config]
    with RpcClient(history.devnet.node.url) as plain:
        expected = plain.batch(requests, raise_on_error=False)
    assert isinstance(expected[1], RpcError) and all(isinstance(a, str) for a in expected[::2])

    with Counting(history.devnet.node.url, market.multicall) as rpc:
        answers = rpc.batch(requests, raise_on_error=False)
        assert rpc.eth_calls == 1  # four eth_calls at one block: one aggregate
        with pytest.raises(RpcError):
            rpc.batch(requests)
    assert isinstance(answers[1], RpcError)
    assert [a for i, a in enumerate(answers) if i != 1] == [a for i, a in enumerate(expected) if i != 1]

    # no contract at the "multicall": the calls go again as plain ones, and that block stays plain afterwards
    with Counting(history.devnet.node.url, "0x000000000000000000000000000000000000dEaD") as rpc:
        answers = rpc.batch(requests, raise_on_error=False)
        assert rpc.eth_calls == 1 + 4
        assert [a for i, a in enumerate(answers) if i != 1] == [a for i, a in enumerate(expected) if i != 1]
        assert isinstance(answers[1], RpcError)
        rpc.eth_calls = 0
        rpc.batch(requests, raise_on_error=False)
        assert rpc.eth_calls == 4
