"""`liq demo --protocol 3.6` as a user runs it, end to end on a small market: a V3.6 devnet, the engine on 3.6
rules, the JSON contract (the backtest's figures, graded by the devnet's getUserAccountData), no HF flip, every
crossing flagged at its block. (The in-process run of test_demo.py ran
the same default V3.6 market: its checks are here, one demo instead of two.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from liq_pipeline.commands.demo import GRADED
from liq_pipeline.config import settings_fields

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_on_v36(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    env["DATA_DIR"] = str(tmp_path / "data")
    args = ["demo", "--protocol", "3.6", "--blocks", "20", "--borrowers", "300", "--dagster-every", "10", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "liq_pipeline.commands.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "blocks",
        "borrowers",
        *GRADED,
        "watcher_p50_ms",
        "watcher_p99_ms",
        "dagster_runs",
        "dagster_block_to_candidates_p50_s",
        "hf_flips",
        "checks_failed",
    ):
        assert key in result, key
    assert result["protocol"] == "3.6"
    assert result["blocks"] >= 20  # every simulated block, plus the seeder's closing one
    assert result["blocks_graded"] == result["blocks"]  # the watcher's candidates of every block it processed
    assert result["hf_flips"] == 0
    assert result["checks_failed"] == 0
    assert result["dagster_runs"] == 2  # one every 10 of the 20 blocks
    assert result["competitor_reverts"] <= 2
    for gone in ("flagged_before", "miss_rate"):  # self-referential: replaced by the chain's grading
        assert gone not in result
    assert set(result["scenarios"]) == {"baseline", "adverse", "extreme"}
    for figures in (result, *result["scenarios"].values()):
        assert set(GRADED) <= set(figures)
        if figures["crossings"]:
            assert figures["recall_at_cross"] == 1.0  # exact decisions: every crossing the Pool saw, at its block
        assert figures["liquidations_unflagged"] <= figures["liquidations_onchain"]


def test_demo_refuses_an_unknown_protocol(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "liq_pipeline.commands.cli", "demo", "--protocol", "3.5", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "3.0 or 3.6" in done.stderr
