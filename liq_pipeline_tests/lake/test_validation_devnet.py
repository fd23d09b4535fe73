"""An answer that cannot be decoded for one block stops the build with an error naming the dataset, the block
and the address; no Parquet file (not even a partial one) appears, and files already stored stay as they were."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from liq_pipeline.chain.abi import function
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.lake.backfill import materialize_range
from liq_pipeline.lake.errors import DatasetError
from liq_pipeline.lake.partitions import ranges_covering

pytestmark = pytest.mark.integration


class CorruptingRpc(RpcClient):
    """The real node, except that answers to requests matching `spoil` are replaced by `answer`."""

    def __init__(self, url: str, spoil: Callable[[str, list[Any]], bool], answer: Any = "0x1234"):
        super().__init__(url, retries=0)
        self.spoil, self.answer, self.spoiled = spoil, answer, 0

    def batch(self, requests_, *, raise_on_error=True):
        items = list(requests_)
        results = super().batch(items, raise_on_error=raise_on_error)
        for i, (method, params) in enumerate(items):
            if self.spoil(method, list(params)):
                results[i] = self.answer(results[i]) if callable(self.answer) else self.answer
                self.spoiled += 1
        return results


def _eth_call(selector_of: str, block: int, to: str | None = None, argument: str | None = None):
    contract, name = selector_of.split(".")
    selector = "0x" + function(contract, name).selector.hex()

    def spoil(method: str, params: list[Any]) -> bool:
        if method != "eth_call" or params[1] != hex(block) or not params[0]["data"].startswith(selector):
            return False
        if to is not None and params[0]["to"].lower() != to.lower():
            return False
        return argument is None or argument.lower()[2:] in params[0]["data"].lower()

    return spoil


def _case(history, dataset: str, block_range):
    """(which request to spoil, the block and the address the error must name) for a build of `block_range`."""
    weth = history.market.reserves[0]
    if dataset == "price_histories":
        block = block_range.start + 7
        return _eth_call("AaveOracle.getAssetsPrices", block), block, history.market.oracle
    if dataset == "reserve_indices":
        block = block_range.end
        return _eth_call("Pool.getReserveData", block, argument=weth.asset), block, history.market.pool
    block = block_range.end
    return _eth_call("AToken.scaledBalanceOf", block, argument=history.victim), block, history.victim


@pytest.mark.parametrize("dataset", ["price_histories", "reserve_indices", "borrower_snapshots"])
def test_an_undecodable_answer_names_dataset_block_and_address_and_writes_nothing(history, fresh_lake, dataset):
    # the lake a good node builds: pool_events of every range up to B, `dataset` of A and B. The history's lake
    # holds exactly these files, built from the same node and market (byte for byte what a fresh build writes:
    # test_datasets_devnet.py), so they are copied rather than built again (one read of the whole chain per case)
    everything = ranges_covering(0, history.b.end, fresh_lake.range_size)
    for name, ranges in (("pool_events", everything), (dataset, [history.a, history.b])):
        fresh_lake.folder(name).mkdir(parents=True, exist_ok=True)
        for block_range in ranges:
            shutil.copyfile(history.lake.path(name, block_range), fresh_lake.path(name, block_range))
    assert fresh_lake.missing("pool_events", 0, history.b.end) == []
    assert fresh_lake.ranges(dataset) == [history.a, history.b]
    stored = fresh_lake.path(dataset, history.a)
    before = (stored.read_bytes(), stored.stat().st_mtime_ns)
    fresh_lake.path(dataset, history.b).unlink()  # B will be built again, from a node that answers badly once

    spoil, block, address = _case(history, dataset, history.b)
    bad = CorruptingRpc(history.devnet.node.url, spoil)
    # plain batches: the spoiler corrupts single eth_calls (through Multicall3 the same decoding names the same
    # address: test_multicall_reads.py)
    market = dataclasses.replace(history.market, multicall=None)
    with pytest.raises(DatasetError) as caught:
        materialize_range(fresh_lake, bad, market, history.rules, history.b, (dataset,))
    error = caught.value
    assert bad.spoiled >= 1
    assert (error.dataset, error.block, error.address.lower()) == (dataset, block, address.lower())
    message = str(error)
    assert message.startswith(f"{dataset}: ") and f"block {block}" in message and address in message

    # rebuilding the stored range A from a node that answers badly fails too, and leaves A's file alone
    bad_for_a = CorruptingRpc(history.devnet.node.url, _case(history, dataset, history.a)[0])
    with pytest.raises(DatasetError):
        materialize_range(fresh_lake, bad_for_a, market, history.rules, history.a, (dataset,))
    assert (stored.read_bytes(), stored.stat().st_mtime_ns) == before
    assert not fresh_lake.exists(dataset, history.b)
    assert fresh_lake.stale_temp_files(dataset) == []
    assert [p.name for p in fresh_lake.folder(dataset).iterdir() if p.suffix != ".lock"] == [stored.name]


def test_an_undecodable_log_stops_pool_events(history, fresh_lake):
    def truncate_borrow_logs(logs):
        borrow = next(log for log in logs if len(log["topics"]) == 4 and log["data"] != "0x")
        return [dict(log, data="0x12") if log is borrow else log for log in logs]

    bad = CorruptingRpc(history.devnet.node.url, lambda m, p: m == "eth_getLogs", truncate_borrow_logs)
    with pytest.raises(DatasetError) as caught:
        materialize_range(fresh_lake, bad, history.market, history.rules, history.b, ("pool_events",))
    assert caught.value.dataset == "pool_events"
    # the first log of B with three indexed topics and data is the LiquidationCall, emitted by the Pool
    assert caught.value.block == history.liquidation_block and caught.value.address == history.market.pool
    assert fresh_lake.ranges("pool_events") == [] and fresh_lake.stale_temp_files("pool_events") == []
