"""Sequential round trips per block, counted by a relay in front of the node (issue #16: at 5-50 ms to a node the
count sets the latency). The minimum over HTTP: a block without touched users is one round trip (the poll that
finds it also reads its logs and market), a block with touched users two (their positions, in one multicall).
Before, the loop asked eth_blockNumber first (2 and 3), and a touched user's new leg cost one more."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from liq_pipeline.bench.rtt_relay import RttRelay
from liq_pipeline.chain import multicall
from liq_pipeline.chain import rpc as rpc_module
from liq_pipeline.chain.ground_truth import user_account_data
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.abi import call_data
from liq_pipeline.devnet.txs import Chain, Tx
from liq_pipeline.risk.market import debt_col
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.watch.heads import HeadObserver, HeadPoller
from liq_pipeline_tests.fixtures.watcher import make_watcher

pytestmark = pytest.mark.integration


@pytest.fixture
def relayed(chain):
    with RttRelay(chain.node.url, rtt_ms=0) as relay:
        watcher = make_watcher(relay.url, chain.market.addresses_provider)
        yield relay, watcher
        watcher.rpc.close()


def _one_block(relay, watcher):
    """Step over one new block; its record, whose requests must be the relay's count for the step (and its round
    trips too: these blocks' reads fit one post each)."""
    before = relay.stats()["requests"]
    assert watcher.step() == 1
    record = watcher.stats.records[-1]
    assert relay.stats()["requests"] - before == record.requests == record.round_trips
    return record


def _exact(watcher) -> None:
    """Positions equal a fresh read; every user's liquidatable-now equals the Pool's getUserAccountData."""
    tracker = watcher.tracker
    held = tracker.positions
    fresh = read_positions(watcher.rpc, tracker.market, held["user"].to_list(), tracker.block, rules_for("3.0"))
    balances = [c for c in held.columns if c != "user"]
    not_empty = pl.any_horizontal([pl.col(c).cast(pl.Int128) != 0 for c in balances])
    assert_frame_equal(held.filter(not_empty).sort("user"), fresh.select(held.columns).sort("user"))
    users = watcher.last_result.users.select("user", "hf_current")
    truth = user_account_data(watcher.rpc, tracker.market.pool, users["user"].to_list(), tracker.block)
    for user, hf in users.iter_rows():
        assert (hf < 1.0) == (truth[user].health_factor < 10**18), user


def test_a_block_without_touched_users_is_one_round_trip(chain, relayed):
    relay, watcher = relayed
    actions.mine_blocks(chain.rpc, 1)
    record = _one_block(relay, watcher)
    assert (record.kind, record.touched, record.round_trips) == ("quiet", 0, 1)


def test_a_price_move_is_one_round_trip(chain, relayed):
    relay, watcher = relayed
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {"WETH": prices["WETH"] * 97 // 100})
    record = _one_block(relay, watcher)
    assert (record.kind, record.round_trips) == ("price_move", 1)
    _exact(watcher)


def test_no_new_block_is_one_round_trip_and_nothing_processed(chain, relayed):
    relay, watcher = relayed
    before = relay.stats()["requests"]
    assert watcher.step() == 0
    assert relay.stats()["requests"] - before == 1 and not watcher.stats.records


def test_a_liquidation_is_two_round_trips_and_exact(chain, relayed):
    relay, watcher = relayed
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    _one_block(relay, watcher)
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victim = next(u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18)
    actions.liquidate(chain.rpc, chain.market, victim)
    record = _one_block(relay, watcher)
    assert record.kind == "liquidation_wave" and record.liquidation_calls == 1
    assert record.touched >= 1 and record.round_trips == 2
    _exact(watcher)


def test_a_read_too_large_for_one_request_is_still_two_round_trips(chain, relayed, monkeypatch):
    """Issue #16: a 1,031-user wave's positions read (~2 MB) went out as two posts one after the other, a third
    round trip. Here every read is made to need several posts (aggregates of two calls, requests of at most 1 KB):
    they go out at once, the liquidation block stays at two round trips, and its positions are exact."""
    relay, watcher = relayed
    monkeypatch.setattr(multicall, "CALLS_PER_AGGREGATE", 2)
    monkeypatch.setattr(rpc_module, "MAX_BATCH_BYTES", 1_000)
    watcher.rpc.max_parallel_posts = 32  # the poll's ~20 entries too: every post of a read in one wave
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    watcher.step()
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victim = next(u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18)
    actions.liquidate(chain.rpc, chain.market, victim)
    before = relay.stats()["requests"]
    assert watcher.step() == 1
    record = watcher.stats.records[-1]
    assert record.kind == "liquidation_wave" and record.touched >= 1
    assert record.round_trips == 2 and record.requests >= 4  # the poll's posts, then the positions' posts
    assert relay.stats()["requests"] - before == record.requests and relay.stats()["most_in_flight"] >= 2
    monkeypatch.undo()  # the check's own read of every user: in the usual requests, four at a time
    watcher.rpc.max_parallel_posts = 4
    _exact(watcher)


def test_a_leg_the_book_does_not_hold_is_read_in_the_same_round_trip(chain, relayed):
    """A borrower borrows an asset it owed nothing of: its book legs miss it, the block's Borrow names it."""
    relay, watcher = relayed
    book = watcher.tracker.book(watcher.tracker.market_state())
    data = dict(zip(chain.users, actions.account_data(chain.rpc, chain.market.pool, chain.users), strict=True))
    reserves = {r.reserve_id: r for r in chain.market.reserves}
    stable = [r for r in chain.market.reserves if r.symbol in ("USDC", "DAI", "USDT")]
    for user in chain.users:
        legs = set(book.legs_of([user]).get(user, ()))
        fresh = [r for r in stable if r.reserve_id not in legs]
        if data[user].health_factor > 2 * 10**18 and data[user].total_debt_base and fresh:
            break
    else:
        pytest.skip("no healthy borrower without a stablecoin leg in the seeded market")
    reserve = reserves[fresh[0].reserve_id]
    amount = 10 ** max(0, reserve.decimals - 2)  # 0.01 of a stablecoin
    borrow = call_data("borrow(address,uint256,uint256,uint16,address)", reserve.asset, amount, 2, 0, user)
    node = Chain(chain.rpc)
    with node.manual_mining():
        node.execute([Tx(user, chain.market.pool, borrow, label=f"borrow {reserve.symbol}")])
    record = _one_block(relay, watcher)
    assert user in watcher.tracker.positions["user"].to_list()
    row = watcher.tracker.positions.filter(pl.col("user") == user)
    assert row[debt_col(reserve.reserve_id)].item() > 0
    assert record.round_trips == 2  # the configuration and the new leg in one multicall, not a second one
    _exact(watcher)


def test_the_next_block_is_read_speculatively_only_when_it_is_due(chain):
    """WATCH_SPECULATE_BEFORE_MS: a speculative poll is ~20 requests on this market; every poll all the time would be
    ~1,000 requests a second to the node. Until the next block is due (last block seen + the measured block time -
    the margin) a poll is eth_blockNumber alone; from then on the poll reads the block."""
    now = [1_000.0]
    with RttRelay(chain.node.url, rtt_ms=0) as relay:
        watcher = make_watcher(relay.url, chain.market.addresses_provider, speculate_before=0.3, clock=lambda: now[0])
        watcher.observer = HeadObserver(HeadPoller(relay.url), block_time=2.0)  # its block time; not polling here
        polls = []
        speculative = watcher.tracker.poll
        watcher.tracker.poll = lambda: polls.append(now[0]) or speculative()
        try:
            actions.mine_blocks(chain.rpc, 1)
            assert watcher.step() == 1 and len(polls) == 1  # nothing seen yet: speculative

            now[0] += 0.5  # 1.5 s before the next block is due
            before = relay.stats()["requests"]
            assert watcher.step() == 0 and len(polls) == 1
            assert relay.stats()["requests"] - before == 1  # eth_blockNumber, alone

            actions.mine_blocks(chain.rpc, 1)  # a block earlier than due: found by the head call, then read
            assert watcher.step() == 1 and len(polls) == 1
            assert watcher.stats.records[-1].round_trips == 2

            now[0] += 2.0 - 0.2  # within 300 ms of the next block's due time
            assert watcher.step() == 0 and len(polls) == 2
            actions.mine_blocks(chain.rpc, 1)
            assert watcher.step() == 1 and len(polls) == 3
            assert watcher.stats.records[-1].round_trips == 1  # the poll found and read it
        finally:
            watcher.observer.rpc.close()
            watcher.rpc.close()
