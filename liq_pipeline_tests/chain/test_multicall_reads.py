"""Position reads through Multicall3 on the real devnet: the same frame as plain batches, in one request, with a
per-call error where a call reverts and a plain batch where the multicall address holds no code."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from polars.testing import assert_frame_equal

from liq_pipeline.chain.abi import function
from liq_pipeline.chain.discovery import ReaderError, discover_market, read_market_state
from liq_pipeline.chain.multicall import MULTICALL3, eth_calls
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient, RpcError
from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.versions import rules_for

pytestmark = pytest.mark.integration
RULES = rules_for("3.0")


class CountingRpc(RpcClient):
    """A real client that counts the HTTP requests and JSON-RPC entries it sends."""

    def __init__(self, url: str):
        super().__init__(url)
        self.posts = 0
        self.entries = 0

    def _send(self, items, chunk):
        self.posts += 1
        self.entries += len(chunk)
        return super()._send(items, chunk)


@pytest.fixture
def reader(chain):
    with CountingRpc(chain.node.url) as rpc:
        yield rpc


def _market(chain, reader):
    head = int(reader.call("eth_blockNumber"), 16)
    return discover_market(reader, chain.market.addresses_provider, head, RULES), head


def test_the_devnet_has_multicall_and_discovery_finds_it(chain, reader):
    market, head = _market(chain, reader)
    assert market.multicall == MULTICALL3
    assert discover_market(reader, chain.market.addresses_provider, head, RULES, multicall=None).multicall is None


@pytest.mark.parametrize(("count", "rounds"), [(5, 1), (300, 2)])  # config and every leg at once; then legs
def test_reads_through_multicall_equal_plain_batches(chain, reader, count, rounds):
    market, head = _market(chain, reader)
    users = chain.users[:count]
    plain = read_positions(reader, dataclasses.replace(market, multicall=None), users, head, RULES)
    reader.posts = reader.entries = 0
    through = read_positions(reader, market, users, head, RULES)
    assert_frame_equal(through, plain)
    assert through.height > 0
    # ~17 calls a user in one round, or 2 calls a user then 2-3 per leg: a few aggregate calls, not thousands
    assert reader.posts == rounds and reader.entries <= 2 * (1 + count * 17 // 500)


def test_no_code_at_the_multicall_address_falls_back_to_plain_batches(chain, reader, caplog, monkeypatch):
    import liq_pipeline.chain.multicall as multicall_module

    monkeypatch.setattr(multicall_module, "_refused", set())  # warned once per process: start as a new one
    market, head = _market(chain, reader)
    users = chain.users[:40]
    plain = read_positions(reader, dataclasses.replace(market, multicall=None), users, head, RULES)
    nowhere = dataclasses.replace(market, multicall="0x000000000000000000000000000000000000dEaD")
    reader.posts = reader.entries = 0
    caplog.set_level(logging.WARNING, logger="liq_pipeline.chain.multicall")
    assert_frame_equal(read_positions(reader, nowhere, users, head, RULES), plain)
    # per round: the aggregate call tried (one entry), then the same calls as a plain batch (one entry each)
    assert reader.posts == 4 and reader.entries > 2 + 2 * len(users)
    warned = [r for r in caplog.records if "0x000000000000000000000000000000000000dEaD" in r.getMessage()]
    assert len(warned) == 1 and "MULTICALL_ADDRESS" in warned[0].getMessage()  # once, naming the setting


def test_a_reverting_call_is_answered_as_an_error_in_its_place(chain, reader):
    market, head = _market(chain, reader)
    user = chain.users[0]
    config = function("Pool", "getUserConfiguration").request(market.pool, user, block=head)
    reverts = function("Pool", "getUserConfiguration").request(market.oracle, user, block=head)  # not the oracle's
    plain = reader.batch([config, reverts], raise_on_error=False)
    answers = eth_calls(reader, [config, reverts, config], market.multicall)
    assert answers[0] == answers[2] == plain[0]
    assert isinstance(plain[1], RpcError) and isinstance(answers[1], RpcError)


def test_an_undecodable_answer_inside_the_multicall_names_the_reserve_and_user(chain, reader):
    market, head = _market(chain, reader)
    first = market.reserves[0]
    # an aToken address without code: its call "succeeds" with no data, which no balance decodes from
    broken = dataclasses.replace(first, a_token="0x000000000000000000000000000000000000dEaD")
    market = dataclasses.replace(market, reserves=(broken, *market.reserves[1:]))
    holders = read_positions(
        reader, dataclasses.replace(market, reserves=(first, *market.reserves[1:])), chain.users[:50], head, RULES
    )
    user = holders.filter(holders[f"coll_{first.reserve_id}"] > 0)["user"][0]
    with pytest.raises(ReaderError, match=rf"{first.symbol} aToken balance of {user} .*block {head}"):
        read_positions(reader, market, [user], head, RULES)


def test_hinted_legs_are_read_with_the_configuration_and_a_wrong_hint_costs_a_round_not_a_leg(chain, reader):
    """The watcher hints each touched user's legs (its book row): set legs are read in the configuration's round
    trip. The configuration alone decides the legs: missing, extra or absent hints give the same frame."""
    market, head = _market(chain, reader)
    users = chain.users[:80]  # over ONE_ROUND_USERS: without hints, the balances take a second round
    expected = read_positions(reader, market, users, head, RULES, hints=None)
    state = read_market_state(reader, market, head, RULES, ("USDC", "DAI", "USDT"))
    exact = build_book(expected, state).legs_of(users)
    every = [r.reserve_id for r in market.reserves]
    wrong = {user: ([] if i % 3 == 0 else every[:1] if i % 3 == 1 else every) for i, user in enumerate(users)}
    for hints, posts in ((exact, 1), (wrong, 2), ({}, 2), (None, 2)):
        reader.posts = 0
        got = read_positions(reader, market, users, head, RULES, hints=hints)
        assert_frame_equal(got, expected)
        assert reader.posts == posts, hints is exact
    # a few users (the watcher's usual block): hinted ones read with their hint, the others with every reserve,
    # all in one round
    few = users[:10]
    half = {user: exact[user] for user in few[::2]}
    reader.posts = 0
    assert_frame_equal(
        read_positions(reader, market, few, head, RULES, hints=half), expected.filter(expected["user"].is_in(few))
    )
    assert reader.posts == 1
