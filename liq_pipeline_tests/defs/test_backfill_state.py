"""Issue #14: a backfill from block 0 on a node without the early state (the devnet loaded from its state cache, a
pruned node) works from the first block with state, says so once, and a range that fails says why in one line."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl
import pytest
import requests

from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.chain.state_history import first_block_with_state, has_state
from liq_pipeline.commands.backfill import backfill
from liq_pipeline.defs.lake.schedules import backfill_finished_ranges
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions
from liq_pipeline.lake.partitions import ranges_covering
from liq_pipeline_tests.commands.clirun import fake_node

pytestmark = pytest.mark.integration


class CountingClient(RpcClient):
    def __init__(self, url: str):
        super().__init__(url)
        self.calls = 0

    def call(self, method, *params):
        self.calls += 1
        return super().call(method, *params)


def _head(chain) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _first_with_state(chain) -> int:
    """Independently of the bisection: the lowest block at which eth_getCode answers, block by block."""
    address = chain.market.addresses_provider
    return next(b for b in range(_head(chain) + 1) if _answers(chain, address, b))


def _answers(chain, address: str, block: int) -> bool:
    try:
        chain.rpc.call("eth_getCode", address, hex(block))
    except Exception:
        return False
    return True


STATE_READS = {
    "eth_call": 1,
    "eth_getCode": 1,
    "eth_getBalance": 1,
    "eth_getTransactionCount": 1,
    "eth_getStorageAt": 2,
}
SIZE = 10  # LAKE_RANGE_BLOCKS' smallest value


def pruned(url: str, state_from: int):
    """A node like a pruned geth in front of the devnet: every state read below `state_from` answers geth's error
    (not anvil's), logs and headers are all there."""

    def answer(method: str, params: list[Any]) -> tuple[str, Any]:
        at = STATE_READS.get(method)
        tag = params[at] if at is not None and len(params) > at else None
        block = 0 if tag == "earliest" else int(tag, 16) if isinstance(tag, str) and tag.startswith("0x") else None
        if block is not None and block < state_from:
            return "error", {"code": -32000, "message": "missing trie node 9f3c1b0e (path ) state is not available"}
        reply = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30)
        body = reply.json()
        return ("error", body["error"]) if "error" in body else ("result", body["result"])

    return fake_node(answer)


@pytest.fixture
def fresh_user_env(chain, platform_env, monkeypatch):
    """What a new user has: STATE_HISTORY_FROM_BLOCK unset (an archive node assumed), CONFIRMATIONS=0, ranges of 10
    blocks, and a node that keeps state from block 25 only: ranges 0-9 and 10-19 lie wholly before it, 20-29
    straddles it, 30-39 is after it."""
    state_from, last = 25, 39
    assert _first_with_state(chain) <= state_from
    missing = last - _head(chain)
    if missing > 0:
        actions.mine_blocks(chain.rpc, missing)
    monkeypatch.delenv("STATE_HISTORY_FROM_BLOCK")
    monkeypatch.setenv("LAKE_RANGE_BLOCKS", str(SIZE))
    monkeypatch.setenv("CONFIRMATIONS", "0")
    with pruned(chain.node.url, state_from) as node:
        monkeypatch.setenv("RPC_URL", node.url())
        yield state_from, SIZE, last


def test_first_block_with_state_is_found_by_bisection(chain):
    actions.mine_blocks(chain.rpc, 3)
    expected = _first_with_state(chain)
    head = _head(chain)
    address = chain.market.addresses_provider
    with CountingClient(chain.node.url) as rpc:
        assert not has_state(rpc, address, expected - 1) and has_state(rpc, address, expected)
        rpc.calls = 0
        assert first_block_with_state(rpc, address, head=head) == expected
        assert rpc.calls <= head.bit_length() + 2
        rpc.calls = 0  # STATE_HISTORY_FROM_BLOCK at or after it: taken as is, one call
        assert first_block_with_state(rpc, address, low=expected + 1, head=head) == expected + 1
        assert rpc.calls == 1
        rpc.calls = 0  # an earlier answer is confirmed (state there, none before), not bisected again
        assert first_block_with_state(rpc, address, head=head, guess=expected) == expected
        assert rpc.calls == 3
        for wrong in (expected - 1, expected + 1, head + 5):  # a stale answer is not taken
            assert first_block_with_state(rpc, address, head=head, guess=wrong) == expected


def test_backfill_from_block_0_starts_at_the_first_block_with_state(chain, fresh_user_env, platform_env, instance):
    state_from, size, last = fresh_user_env
    said: list[str] = []
    report = backfill(0, last, instance=instance, say=said.append)

    assert said == [
        f"blocks 0-{state_from - 1} have no state on this node (first block with state: {state_from}): "
        f"backfilling from {state_from} (before it: logs only, pool_events)"
    ]
    ranges = ranges_covering(0, last, size)
    assert report.failed == {}
    assert report.ranges == [r.key for r in ranges]
    assert report.first_block_with_state == state_from
    assert report.logs_only == [r.key for r in ranges if r.end < state_from]
    lake = platform_env / "lake"
    for block_range in ranges:
        name = f"{block_range.start:012d}_to_{block_range.end:012d}.parquet"
        assert (lake / "pool_events" / f"pool_events__{name}").exists()
        has_state_datasets = block_range.end >= state_from
        for dataset in ("reserve_indices", "borrower_snapshots"):
            assert (lake / dataset / f"{dataset}__{name}").exists() == has_state_datasets, (dataset, block_range)
    # the first range with state knows every seeded borrower (their events lie in the ranges before it)
    first = next(r for r in ranges if r.end >= state_from)
    snapshot = pl.read_parquet(
        lake / "borrower_snapshots" / f"borrower_snapshots__{first.start:012d}_to_{first.end:012d}.parquet"
    )
    assert set(chain.users) <= set(snapshot["user"].to_list())
    assert len(report.logs_only) == 2
    prices = pl.read_parquet(list((lake / "price_histories").glob("*.parquet")))
    oracle_blocks = sorted(prices.filter(pl.col("source") == "oracle")["block_number"].unique().to_list())
    assert oracle_blocks == list(range(state_from, ranges[-1].end + 1))
    # the schedule sees nothing left to do: ranges before the first block with state hold their logs only
    with dg.build_schedule_context(instance=instance, resources=RESOURCES) as context:
        outcome = backfill_finished_ranges(context)
    assert isinstance(outcome, dg.SkipReason), outcome


def test_a_range_whose_earlier_events_are_missing_says_why_in_one_line(chain, fresh_user_env, instance):
    state_from, size, last = fresh_user_env
    later = ranges_covering(state_from, last, size)[-1]  # the ranges before it were never built
    report = backfill(later.start, later.end, instance=instance)
    message = report.failed[later.key]
    assert "\n" not in message and "Execution of step" not in message
    assert message.startswith(
        f"range {later.key}: borrower_snapshots: cannot know the borrowers before block {later.start}: pool_events: "
    )
    assert f"not materialized: {ranges_covering(0, 0, size)[0].key}" in message
