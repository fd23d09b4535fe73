"""`liq demo --protocol 3.6` as a user runs it: a V3.6 devnet, the engine on 3.6 rules, no HF flip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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
    assert result["protocol"] == "3.6"
    assert result["blocks"] >= 20
    assert result["hf_flips"] == 0
    assert result["checks_failed"] == 0
    assert result["competitor_reverts"] <= 2
    assert result["flagged_before"] <= result["liquidations_onchain"]


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
