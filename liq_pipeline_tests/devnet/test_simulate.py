"""The living market: prices move through the feeds, time passes 2 s a block, the competitor liquidates."""

from __future__ import annotations

import dataclasses

import pytest

from liq_pipeline.devnet.accounts import COMPETITOR
from liq_pipeline.devnet.actions import ANSWER_UPDATED_TOPIC, account_data, liquidation_events
from liq_pipeline.devnet.simulate import SimConfig, simulate

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
