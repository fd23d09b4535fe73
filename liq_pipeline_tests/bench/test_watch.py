"""`liq bench-watch` on a tiny devnet: a few simulated blocks, each followed by the watcher."""

from __future__ import annotations

import pytest

from liq_pipeline.bench.watch import run_bench_watch
from liq_pipeline.config import Settings

from .contract import assert_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_watch_bench_small(clean_env):
    settings = Settings(data_dir=clean_env / "data")
    # --execute: the same measurement with the executor live after each evaluation (a superset of the plain run)
    result = run_bench_watch(settings, borrowers=30, blocks=5, seed=1, execute=True, vol_scale=30.0)
    params = {
        "borrowers": 30,
        "blocks": 5,
        "seed": 1,
        "shocks": False,
        "vol_scale": 30.0,
        "protocol": "3.6",
        "execute": True,
        "inventory_usd": 0.0,
    }
    assert_report(result, "watch", params)
    assert result["borrowers"] == 30 and result["users_tracked"] >= 30
    assert 1 <= result["blocks"] <= 6  # a simulated block without transactions is not mined; the closing one is
    assert result["missed_blocks"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert {"read", "evaluate", "write"} <= set(result["phases_p50_ms"])
    assert len(result["slowest"]) == min(3, result["blocks"])
    # both are rounded from the same figure (to 0.1 and 0.01 ms), so they agree within half a tenth, not digit for digit
    assert abs(result["slowest"][0]["latency_ms"] - result["max_ms"]) <= 0.05 + 1e-9
    assert result["state_cache_built"] is True  # a fresh data dir
    assert result["bootstrap_s"] > 0

    execution = result["execution"]
    assert execution["backlog_cleared"] >= 0
    assert set(execution["outcomes"]) <= {"included", "lost", "reverted", "skipped", "dropped", "replaced", "sent"}
    # 30x volatility over 5 blocks makes some borrowers liquidatable (seed 1): sent, included, timed by stage
    assert execution["sent"] >= 1, execution
    assert 0 < execution["send_latency_p50_ms"] <= execution["send_latency_p99_ms"]
    # the node's share of the latency (the block's read, the verification, the send at least): below the latency
    assert 0 < execution["send_node_wait_p50_ms"] <= execution["send_latency_p50_ms"]
    assert execution["send_node_wait_p99_ms"] <= execution["send_latency_p99_ms"]
    assert {"read", "evaluate", "plan", "verify", "send"} <= set(execution["stages_ms_in_sending_blocks"])
    assert execution["outcomes"].get("included", 0) >= 1
    # the predictive engine's watchlist caught crossings before the whole book was evaluated
    assert execution["sent_by_lane"].get("fast", 0) >= 1, execution["sent_by_lane"]
