"""`liq demo` end to end on a small market: the JSON contract, no HF flip, every crossing flagged at its block."""

from __future__ import annotations

import pytest

from liq_pipeline.commands.demo import run_demo
from liq_pipeline.config import load_settings, settings_fields

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_summary(monkeypatch, tmp_path):
    for name in settings_fields():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = run_demo(load_settings(data_dir=str(tmp_path / "d")), blocks=40, borrowers=300, dagster_every=20)
    for key in (
        "blocks",
        "borrowers",
        "liquidations_onchain",
        "flagged_before",
        "miss_rate",
        "recall_at_cross",
        "watcher_p50_ms",
        "watcher_p99_ms",
        "dagster_runs",
        "dagster_block_to_candidates_p50_s",
        "hf_flips",
        "checks_failed",
    ):
        assert key in result, key
    assert result["blocks"] >= 40  # every simulated block, plus the seeder's closing one
    assert result["hf_flips"] == 0
    assert result["checks_failed"] == 0
    assert result["dagster_runs"] == 2
    if result["crossings"]:
        assert result["recall_at_cross"] == 1.0
    if result["liquidations_onchain"]:
        assert result["flagged_before"] <= result["liquidations_onchain"]
