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
