"""`liq bench-watch` on a tiny devnet: a few simulated blocks, each followed by the watcher."""

from __future__ import annotations

import pytest

from liq_pipeline.bench.watch import run_bench_watch
from liq_pipeline.config import Settings

from .contract import assert_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_watch_bench_small(clean_env):
    settings = Settings(data_dir=clean_env / "data")
    result = run_bench_watch(settings, borrowers=30, blocks=5, seed=1)
    params = {"borrowers": 30, "blocks": 5, "seed": 1, "shocks": False, "vol_scale": 1.0, "protocol": "3.6"}
    assert_report(result, "watch", params)
    assert result["borrowers"] == 30 and result["users_tracked"] >= 30
    assert 1 <= result["blocks"] <= 6  # a simulated block without transactions is not mined; the closing one is
    assert result["missed_blocks"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert set(result["phases_p50_ms"]) == {"read", "evaluate", "write"}
    assert len(result["slowest"]) == min(3, result["blocks"])
    assert result["slowest"][0]["latency_ms"] == round(result["max_ms"], 1)
    assert result["state_cache_built"] is True  # a fresh data dir
    assert result["bootstrap_s"] > 0
