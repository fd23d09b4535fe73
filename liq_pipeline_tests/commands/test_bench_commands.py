"""`liq bench-cache`, `liq bench-seed`, `liq bench-lake`: one JSON object on stdout each, on small runs."""

from __future__ import annotations

import json

import pytest

from liq_pipeline_tests.commands.clirun import liq

pytestmark = pytest.mark.integration  # a real redis-server, anvil


def test_bench_cache(cli_env, clean_env):
    result = liq("bench-cache", "--users", "1000", "--candidates", "100", "--repeat", "1", env=cli_env, cwd=clean_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bench"] == "cache" and report["params"] == {
        "users": 1000,
        "candidates": 100,
        "repeat": 1,
        "per_user": False,
    }


@pytest.mark.slow
def test_bench_seed(cli_env, clean_env):
    argv = ("bench-seed", "--borrowers", "20", "--repeats", "1", "--sim-blocks", "5")
    result = liq(*argv, env=cli_env, cwd=clean_env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bench"] == "devnet_seed" and report["borrowers"] == 20 and report["seed_borrowers_per_s"] > 0


@pytest.mark.slow
def test_bench_lake(cli_env, clean_env):
    argv = ("bench-lake", "--size", "10", "--candidate-step", "5", "--quiet-chain", "--data-dir", str(clean_env / "d"))
    result = liq(*argv, env=cli_env, cwd=clean_env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bench"] == "lake" and report["size"] == 10 and report["candidates"]["blocks"] == 2
    assert "building the datasets" in result.stderr  # progress on stderr, the JSON alone on stdout
