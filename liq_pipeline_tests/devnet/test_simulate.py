"""The living market: prices move through the feeds, time passes 2 s a block, the competitor liquidates."""

from __future__ import annotations

import dataclasses
import json

import pytest

from liq_pipeline.devnet import anvil, state_cache
from liq_pipeline.devnet.accounts import COMPETITOR
from liq_pipeline.devnet.actions import (
    ANSWER_UPDATED_TOPIC,
    account_data,
    liquidation_events,
    oracle_prices,
    set_prices,
)
from liq_pipeline.devnet.dex import DEFAULT_DEPTH_USD, find_dex, load_dex, read_reserves
from liq_pipeline.devnet.market import load_market
from liq_pipeline.devnet.rpc import Rpc
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline.risk.amm import price_error, price_ratio
from liq_pipeline_tests.commands.clirun import liq_devnet

pytestmark = pytest.mark.integration

# Violent on purpose: a short run must show shocks, liquidations and arrivals.
CONFIG = SimConfig(
    blocks=25, seed=5, vol_scale=40.0, shock_probability=0.25, liquidation_delay=2, arrivals_per_block=1.0
)


def _run(devnet):
    snapshot = devnet.rpc.call("evm_snapshot")
    try:
        start = devnet.w3.eth.get_block("latest")
        result = simulate(devnet.rpc, devnet.market, CONFIG, devnet.users)
        logs = devnet.rpc.call("eth_getLogs", {"fromBlock": hex(start["number"] + 1), "toBlock": "latest"})
        end = devnet.w3.eth.get_block("latest")
        unhealthy_left = [
            u
            for u, a in zip(devnet.users, account_data(devnet.rpc, devnet.market.pool, devnet.users), strict=True)
            if a.health_factor < 10**18 and a.total_collateral_base > 0
        ]
        return result, start, end, logs, unhealthy_left
    finally:
        assert devnet.rpc.call("evm_revert", snapshot)


def test_simulation_moves_prices_accrues_time_and_liquidates(devnet):
    result, start, end, logs, _ = _run(devnet)
    blocks = end["number"] - start["number"]
    assert blocks in (CONFIG.blocks, CONFIG.blocks + 1)  # + the last newcomers' block
    assert end["timestamp"] - start["timestamp"] == blocks * CONFIG.block_time
    assert result.shocks >= 1 and result.price_updates >= CONFIG.blocks
    feeds = {r.aggregator.lower() for r in devnet.market.reserves}
    updates = [log for log in logs if log["topics"] and log["topics"][0] == ANSWER_UPDATED_TOPIC]
    assert len(updates) == result.price_updates and {log["address"] for log in updates} <= feeds
    events = liquidation_events(logs, devnet.market.pool)
    assert len(events) == result.liquidations >= 1
    assert {e.liquidator for e in events} == {COMPETITOR}
    assert result.arrivals >= 5 and len(result.new_users) == result.arrivals
    # Only what a violent market explains may revert: a newcomer's borrow or a withdrawal right after a crash.
    assert set(result.reverts_by_kind) <= {"borrow", "withdraw", "liquidationCall"}, result.reverts_by_kind
    assert result.other_reverts == sum(v for k, v in result.reverts_by_kind.items() if k != "liquidationCall")


def test_simulation_is_deterministic_for_a_seed(devnet):
    first, *_ = _run(devnet)
    second, *_ = _run(devnet)
    strip = ("seconds",)
    assert {k: v for k, v in dataclasses.asdict(first).items() if k not in strip} == {
        k: v for k, v in dataclasses.asdict(second).items() if k not in strip
    }


def test_the_cached_chain_has_the_dex_and_the_simulator_arbitrages_it(devnet):
    """The state cache deploys the DEX after the borrowers (dex.json in the entry); the simulator finds it."""
    dex = load_dex(devnet.entry.dex_path)
    found = find_dex(devnet.rpc, devnet.market)
    assert (found.factory, found.pairs) == (dex.factory, dex.pairs) and len(dex.pairs) == 10
    assert dex.depth_usd == DEFAULT_DEPTH_USD
    result, *_ = _run(devnet)
    assert result.arbitrage_swaps > 0 and "arbitrage" not in result.reverts_by_kind


def test_devnet_up_has_the_dex_and_simulate_keeps_it_at_the_oracle(build_cache):
    data_dir = build_cache
    port = anvil.free_port()
    up = liq_devnet(["up", "--protocol", "3.0", "--borrowers", "20", "--port", str(port)], data_dir, timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        dex = load_dex(data_dir)  # copied out of the state cache entry
        assert (state_cache.entry_for(data_dir, 20, 0, "3.0").dex_path).is_file()
        with Rpc(f"http://127.0.0.1:{port}") as rpc:
            market = load_market(data_dir)
            reserves = read_reserves(rpc, dex)
            assert len(reserves) == 10 and all(min(r) > 0 for r in reserves.values())
            moved = {"WETH": oracle_prices(rpc, market)["WETH"] * 3 // 4}
            set_prices(rpc, market, moved)
            simulated = liq_devnet(["simulate", "--blocks", "2", "--json"], data_dir, timeout=180)
            assert simulated.returncode == 0, simulated.stderr
            assert json.loads(simulated.stdout)["arbitrage_swaps"] >= 4  # the WETH pairs, at least
            prices = oracle_prices(rpc, market)
            for p, (r0, r1) in read_reserves(rpc, dex).items():
                pair = next(q for q in dex.pairs if q.pair == p)
                ratio = price_ratio(prices[pair.symbol0], pair.decimals0, prices[pair.symbol1], pair.decimals1)
                assert abs(price_error(r0, r1, *ratio)) <= 3 / min(r0, r1), (pair.symbol0, pair.symbol1)
    finally:
        down = liq_devnet(["down"], data_dir, timeout=180)
    assert down.returncode == 0, down.stderr
    # an old data dir (a chain without a DEX): up with --no-cache deploys one too; a stale dex.json never survives
    (data_dir / "devnet" / "dex.json").write_text("{}")
    port = anvil.free_port()
    up = liq_devnet(["up", "--protocol", "3.0", "--no-cache", "--port", str(port)], data_dir, timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        market = json.loads((data_dir / "devnet" / "market.json").read_text())  # the V3.0 market, deployed anew
        assert market["rpc_url"] == f"http://127.0.0.1:{port}" and len(market["reserves"]) == 5
        assert market["protocol_version"] == "3.0"
        assert load_dex(data_dir).depth_usd == DEFAULT_DEPTH_USD
    finally:
        assert liq_devnet(["down"], data_dir, timeout=180).returncode == 0
