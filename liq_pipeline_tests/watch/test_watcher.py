"""The watcher on the real market: every block once and in order, reorgs, node and Redis outages."""

from __future__ import annotations

import logging
import threading
import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from liq_pipeline.cache import open_market_cache
from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import NodeUnavailable
from liq_pipeline.config import load_settings
from liq_pipeline.devnet import actions
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.watch.startup import watcher_from_settings
from liq_pipeline_tests.fixtures.watcher import TcpProxy, make_watcher

pytestmark = pytest.mark.integration


def _head(chain) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _assert_state_equals_fresh_scan(watcher) -> None:
    """The watcher's positions equal a fresh read of the same users (its rows keep their order and a user left
    without any position keeps an empty row; the reader sorts and omits such users)."""
    held = watcher.tracker.positions
    fresh = read_positions(
        watcher.rpc, watcher.tracker.market, held["user"].to_list(), watcher.tracker.block, rules_for("3.0")
    )
    balances = [c for c in held.columns if c != "user"]
    not_empty = pl.any_horizontal([pl.col(c).cast(pl.Int128) != 0 for c in balances])
    assert_frame_equal(held.filter(not_empty).sort("user"), fresh.select(held.columns).sort("user"))


def test_follows_every_block_in_order(chain, watcher):
    start = watcher.tracker.block
    prices = actions.oracle_prices(chain.rpc, chain.market)
    for step in range(1, 4):
        actions.set_prices(chain.rpc, chain.market, {"WETH": prices["WETH"] * (100 - 3 * step) // 100})
    actions.mine_blocks(chain.rpc, 2)
    watcher.run(max_blocks=_head(chain) - start, deadline=time.monotonic() + 60)
    blocks = [r.block for r in watcher.stats.records]
    assert blocks == list(range(start + 1, _head(chain) + 1))
    assert all(r.written_at >= r.seen_at for r in watcher.stats.records)
    _assert_state_equals_fresh_scan(watcher)


def _liquidate_one_victim(chain, watcher):
    """WETH and WBTC down 25 %, a step, one unhealthy borrower liquidated, a step: (the victim, its positions
    before the liquidation, the watcher's record of the step before it)."""
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    watcher.step()
    record = watcher.stats.records[-1]
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victim = next(u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18)
    before = watcher.tracker.positions.filter(watcher.tracker.positions["user"] == victim)
    actions.liquidate(chain.rpc, chain.market, victim)
    watcher.step()
    return victim, before, record


def test_a_reorg_rolls_back_to_the_common_ancestor(chain, watcher):
    victim, before, victims = _liquidate_one_victim(chain, watcher)
    assert not watcher.tracker.positions.filter(watcher.tracker.positions["user"] == victim).equals(before)

    chain.rpc.call("anvil_reorg", 1, [])  # the block with the liquidation is replaced by an empty one
    watcher.step()
    assert watcher.stats.reorgs == 1
    assert watcher.stats.records[-1].reorg_depth == 1
    after = watcher.tracker.positions.filter(watcher.tracker.positions["user"] == victim)
    assert after.equals(before)  # the orphaned liquidation is forgotten
    _assert_state_equals_fresh_scan(watcher)
    assert victims.block < watcher.stats.records[-1].block


def test_a_reorg_seen_from_the_next_block_rolls_back_too(chain, watcher):
    victim, before, _ = _liquidate_one_victim(chain, watcher)
    chain.rpc.call("anvil_reorg", 1, [])  # the liquidation's block replaced by an empty one...
    actions.mine_blocks(chain.rpc, 1)  # ...and a block on top: the watcher first sees a parent hash it lacks
    watcher.step()
    assert watcher.stats.reorgs == 1
    after = watcher.tracker.positions.filter(watcher.tracker.positions["user"] == victim)
    assert after.equals(before)
    assert watcher.stats.records[-1].block == _head(chain)
    _assert_state_equals_fresh_scan(watcher)


def test_a_node_fault_in_the_middle_of_a_reorg_is_recovered_on_the_next_step(chain, watcher, monkeypatch):
    victim, before, _ = _liquidate_one_victim(chain, watcher)
    chain.rpc.call("anvil_reorg", 1, [])
    actions.mine_blocks(chain.rpc, 1)
    real_header, calls = watcher._header, []

    def header_failing_once(number):  # the node errs while the watcher looks for the common ancestor
        calls.append(number)
        if len(calls) == 1:
            raise NodeUnavailable("injected: node answered an error")
        return real_header(number)

    monkeypatch.setattr(watcher, "_header", header_failing_once)
    with pytest.raises(NodeUnavailable):
        watcher.step()
    watcher.step()  # the fault cleared: the same reorg is found and rolled back
    assert watcher.stats.reorgs == 1
    assert watcher.tracker.positions.filter(watcher.tracker.positions["user"] == victim).equals(before)
    assert watcher.stats.records[-1].block == _head(chain)
    _assert_state_equals_fresh_scan(watcher)


def test_survives_the_node_going_away_and_misses_no_block(chain, caplog):
    proxy = TcpProxy(int(chain.node.url.rsplit(":", 1)[1]))
    watcher = make_watcher(proxy.url, chain.market.addresses_provider)
    start = watcher.tracker.block
    stop_at = time.monotonic() + 60
    thread = threading.Thread(target=watcher.run, kwargs={"deadline": stop_at}, daemon=True)
    caplog.set_level(logging.WARNING, logger="liq_pipeline.watch")
    try:
        thread.start()
        actions.mine_blocks(chain.rpc, 2)
        time.sleep(0.5)
        proxy.cut()
        actions.mine_blocks(chain.rpc, 3)  # the chain goes on while the watcher cannot see it
        time.sleep(1.0)
        proxy.restore()
        actions.mine_blocks(chain.rpc, 1)
        target = _head(chain)
        while time.monotonic() < stop_at and watcher.tracker.block < target:
            time.sleep(0.05)
    finally:
        watcher.stop()
        thread.join(timeout=10)
        watcher.rpc.close()
        proxy.close()
    blocks = [r.block for r in watcher.stats.records]
    assert blocks == list(range(start + 1, target + 1))  # each block once, in order, none lost
    assert watcher.stats.node_outages == 1
    outage_logs = [r for r in caplog.records if "node unreachable" in r.getMessage()]
    assert len(outage_logs) == 1  # logged once per outage, not per retry


def test_keeps_going_when_redis_goes_away(chain, tmp_path, monkeypatch):
    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)
    cache = open_market_cache(load_settings(), 31337, chain.market.pool)
    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, cache=cache)
    try:
        actions.mine_blocks(chain.rpc, 1)
        watcher.step()
        assert cache.read_candidates() is not None
        server.stop()
        actions.mine_blocks(chain.rpc, 2)
        assert watcher.step() == 2  # computing goes on without Redis
        server.ensure_running()
        time.sleep(cache.retry_interval + 0.1)  # the cache probes a lost Redis once per retry interval
        actions.mine_blocks(chain.rpc, 1)
        watcher.step()
        assert cache.reachable
        from liq_pipeline.cache.candidates import candidates_block

        assert candidates_block(cache.cache) == watcher.tracker.block  # caught up
        watcher.checkpoint()
        assert cache.get_positions().block == watcher.tracker.block
    finally:
        watcher.rpc.close()
        server.stop()


def test_after_a_reorg_redis_holds_the_new_branch_candidates_positions_and_record(chain, tmp_path, monkeypatch):
    """The block that completes a reorg's replay rewrites the candidates in full, snapshots the positions (a
    snapshot of an orphaned block would be resumed from on restart) and records the depth in the stream."""
    from liq_pipeline.cache.candidates import candidates_block

    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)
    cache = open_market_cache(load_settings(), 31337, chain.market.pool)
    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, cache=cache)
    try:
        prices = actions.oracle_prices(chain.rpc, chain.market)
        actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s == "WETH"})
        watcher.step()
        data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
        owing = [u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18]
        actions.liquidate(chain.rpc, chain.market, owing[0])
        watcher.step()
        chain.rpc.call("anvil_reorg", 1, [])
        watcher.step()
        head = _head(chain)
        assert watcher.stats.reorgs == 1 and watcher.stats.records[-1].reorg_depth == 1
        assert cache.get_positions().block == head
        assert_frame_equal(cache.get_positions().frame, watcher.tracker.positions)
        assert candidates_block(cache.cache) == head
        live = cache.read_candidates().sort("user", "scenario")
        expected = watcher.last_result.candidates.sort("user", "scenario")
        assert live.select("user", "scenario", "eta_sec").equals(expected.select("user", "scenario", "eta_sec"))
        record = cache.cache.client.xrevrange(cache.cache.keys.key("blocks"), count=1)[0][1]
        assert record[b"reorg_depth"] == b"1" and record[b"block"] == str(head).encode()
    finally:
        watcher.rpc.close()
        server.stop()


def test_users_over_the_per_tick_cap_wait_for_the_next_block_not_dropped(chain, watcher):
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    watcher.step()
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victims = [u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18]
    assert len(victims) >= 2
    watcher.tracker.max_users_per_tick = 1
    actions.liquidate(chain.rpc, chain.market, victims[0])  # touches the user and the treasury (protocol fee)
    watcher.step()
    assert len(watcher.tracker.deferred) >= 1  # over the cap: waiting, not dropped
    actions.mine_blocks(chain.rpc, 3)
    watcher.step()
    assert watcher.tracker.deferred == []
    _assert_state_equals_fresh_scan(watcher)


def test_a_restart_on_a_new_chain_starts_from_the_chain_not_the_old_snapshot(chain, tmp_path, monkeypatch):
    """A restarted devnet is a new chain: a positions snapshot of the old one must not be resumed from (its block
    may be below the new head, with another hash) and the old chain's evaluation state must not block writes."""
    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)
    monkeypatch.setenv("RPC_URL", chain.node.url)
    monkeypatch.setenv("AAVE_ADDRESSES_PROVIDER", chain.market.addresses_provider)
    monkeypatch.setenv("AAVE_PROTOCOL_VERSION", chain.market.protocol_version)  # the default is Base's 3.7
    settings = load_settings()
    fork = chain.rpc.call("evm_snapshot")
    try:
        first = watcher_from_settings(settings)
        actions.mine_blocks(chain.rpc, 3)
        assert first.step() == 3
        first.checkpoint()
        saved = first.tracker.block
        actions.mine_blocks(chain.rpc, 1)
        again = watcher_from_settings(settings)  # the same chain: resumed from the snapshot
        assert again.tracker.block == saved < _head(chain) and again.tracker.users == first.tracker.users

        chain.rpc.call("evm_revert", fork)  # the old chain is gone; the new one reaches past the saved block
        prices = actions.oracle_prices(chain.rpc, chain.market)
        actions.set_prices(chain.rpc, chain.market, {"WETH": prices["WETH"] * 99 // 100})
        actions.mine_blocks(chain.rpc, 4)
        assert _head(chain) > saved
        restarted = watcher_from_settings(settings)
        assert restarted.tracker.block == _head(chain)  # bootstrapped from the chain
        assert restarted.cache.get_positions() is None  # the old chain's state is gone, not resumed
        actions.mine_blocks(chain.rpc, 1)
        restarted.step()
        restarted.checkpoint()
        assert restarted.cache.get_positions().block == _head(chain)  # and no longer refuses the new chain's writes
    finally:
        server.stop()


def test_the_executor_hook_runs_after_the_evaluation_and_before_the_write(chain, tmp_path, monkeypatch):
    # The hot path: our own transactions must not wait for the candidates' write (execution/hot_path.py). The hook
    # sees the block's evaluation while Redis still holds the previous block's candidates, and its time is a phase.
    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)
    cache = open_market_cache(load_settings(), 31337, chain.market.pool)
    from liq_pipeline.cache.candidates import candidates_block

    seen = []

    def hook(block, result, seen_at):
        seen.append((block, result.block, candidates_block(cache.cache), seen_at))
        time.sleep(0.02)

    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, cache=cache, on_evaluated=hook)
    try:
        actions.mine_blocks(chain.rpc, 1)
        watcher.step()
        actions.mine_blocks(chain.rpc, 1)
        watcher.step()
        first, second = seen
        assert first[0] == first[1] and second[0] == second[1] == first[0] + 1
        assert second[2] == first[0]  # Redis still at the previous block while the hook runs
        assert candidates_block(cache.cache) == second[0]  # written after it
        record = watcher.stats.records[-1]
        assert record.seen_at == second[3] and record.phases_ms["execute"] >= 20
    finally:
        watcher.rpc.close()
        server.stop()
