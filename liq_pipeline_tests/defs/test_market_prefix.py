"""MARKET_NAME: a named market's code location keeps its assets, checks, partitions and alerts apart from another
market's in the same Dagster instance. Each case loads the definitions in a fresh process, as a code location
does (the name is read once, when Dagster imports the package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from liq_pipeline.config import load_settings, settings_fields

PROBE = r"""
import json
import dagster as dg
from liq_pipeline.definitions import defs
from liq_pipeline.defs import market, partitions
from liq_pipeline.defs.predictive.assets import ASSET

graph = defs.resolve_asset_graph()
repo = defs.get_repository_def()

def run(keys=()):
    # a run of the instance that materialized `keys`, without a code location (as `liq backfill` launches them)
    selection = frozenset(dg.AssetKey(k) for k in keys) or None
    return market.of_this_market(dg.DagsterRun(job_name="x", asset_selection=selection))

print(json.dumps({
    "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
    "checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
    "partitions": partitions.BLOCK_RANGES,
    "op": market.op_name(ASSET),
    "job_assets": sorted(
        k.to_user_string() for k in repo.get_job("predictive_evaluation").asset_layer.selected_asset_keys
    ),
    "ours": run(keys=[["base", "pool_events"]]),
    "theirs": run(keys=[["arb", "pool_events"]]),
    "unnamed_run": run(),
}))
"""


def _probe(market_name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    env["MARKET_NAME"] = market_name
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_named_market_prefixes_every_asset_check_partition_set_and_op():
    named, plain = _probe("base"), _probe("")
    assert len(named["assets"]) == len(plain["assets"]) >= 11
    assert named["assets"] == sorted(f"base/{key}" for key in plain["assets"])
    assert named["checks"] == sorted(f"base/{key}" for key in plain["checks"])
    assert "base/liquidation_candidates:hf_agreement" in named["checks"]
    assert (named["partitions"], plain["partitions"]) == ("base__block_ranges", "block_ranges")
    assert (named["op"], plain["op"]) == ("base__liquidation_candidates", "liquidation_candidates")
    assert named["job_assets"] == ["base/liquidation_candidates"]
    # the alert sensors of market `base` handle base's runs only; unnamed, every run
    assert (named["ours"], named["theirs"], named["unnamed_run"]) == (True, False, False)
    assert (plain["ours"], plain["theirs"], plain["unnamed_run"]) == (True, True, True)


@pytest.mark.parametrize("bad", ["Base", "1base", "base-1", "a" * 33, "base/x"])
def test_a_bad_market_name_is_one_clear_error(bad):
    with pytest.raises(ValueError, match=f"MARKET_NAME={bad!r} is not valid: expected a name of 1 to 32"):
        load_settings(market_name=bad)
