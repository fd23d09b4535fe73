"""`liq arena` on a tiny devnet: the executor live against the simulator's competitor, graded by the chain."""

from __future__ import annotations

import pytest

from liq_pipeline.bench.arena import run_arena
from liq_pipeline.config import Settings

from .contract import assert_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_arena_small(clean_env):
    settings = Settings(data_dir=clean_env / "data")
    result = run_arena(settings, blocks=6, competitor_delay=1, borrowers=30, seed=1, vol_scale=30.0)
    params = {
        "blocks": 6,
        "competitor_delay": 1,
        "borrowers": 30,
        "seed": 1,
        "vol_scale": 30.0,
        "protocol": "3.6",
        "inventory_usd": 100_000_000,
        "restock": True,
        "competitor": "delayed",
        "trigger": "sealed",
        "window_ms": 0,
        "predictive_enabled": False,
    }
    assert_report(result, "arena", params)
    # every liquidation on chain is ours or the competitor's, and some happened
    assert result["opportunities"] == result["won"] + result["lost"] >= 1
    assert result["won"] >= 1 and result["sent"] >= result["won"]
    assert result["duplicate_sends"] == 0
    # what landed is what its pending verification (eth_simulateV1 of the landing block) showed, to the unit
    assert result["plan_mismatches"] == 0
    assert result["realized_vs_expected_max_rel"] is not None and result["realized_vs_expected_max_rel"] <= 0.01
    assert result["profit_realized_usd"] > 0
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]
    assert result["win_rate"] == round(result["won"] / result["opportunities"], 4)


@pytest.mark.parametrize("competitor", ["same-block", "svr"])
def test_arena_before_the_block(clean_env, competitor):
    """Paced blocks (each block's price updates pending for the window before it is sealed), the executor's
    pre-confirmation lane on anvil's pending-transaction stream: price-triggered liquidations won in the update's
    own block, exactly as verified; under SVR the auction's winner takes the first liquidation behind updates and
    the rest is left to public bots."""
    settings = Settings(data_dir=clean_env / "data")
    result = run_arena(
        settings, blocks=8, borrowers=30, seed=1, vol_scale=30.0, competitor=competitor, trigger="pending"
    )
    assert result["params"]["window_ms"] == 200 and result["params"]["competitor"] == competitor
    assert result["duplicate_sends"] == 0 and result["plan_mismatches"] == 0 and result["reverted"] == 0
    assert result["pending_lane"]["updates"] >= 1 and result["pending_late"] == 0
    if competitor == "same-block":
        assert result["sent_by_trigger"].get("pending", 0) >= 1, result
        assert 0 < result["pending_to_sent_p50_ms"] <= result["pending_to_sent_p99_ms"]
        assert 0 < result["pending_to_sent_node_wait_p99_ms"] <= result["pending_to_sent_p99_ms"]
        assert result["won_price_triggered"] >= 1 and result["win_rate_price_triggered"] > 0
        lane = result["pending_lane"]
        assert lane["sent_per_act_p50"] >= 1 and lane["stages_per_sent_p50_ms"]["verify"] > 0, lane
        assert result["left_to_public_share"] == 1.0
    else:
        # the auction's backrun comes bundled with the update: the lane sees the users it pushed below 1, and its
        # verification on the pending state sees them taken already, so it sends nothing into a lost race
        assert result["liquidations_by_sim"]["svr"] >= 1 and result["left_to_public_share"] < 1.0
        assert result["pending_lane"]["users_below"] >= 1
        assert result["outcomes"].get("lost", 0) == 0, result["outcomes"]
