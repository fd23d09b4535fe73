"""`liq bench-lake` on two ranges of 20 blocks of the session devnet's market."""

from __future__ import annotations

import pytest

from liq_pipeline.bench.lake import run_lake_bench
from liq_pipeline.lake.datasets.liquidation_candidates import NAME as CANDIDATES

from .contract import assert_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("quiet_chain", [False, True])
def test_lake_bench_small(devnet_data_dir, quiet_chain):
    said: list[str] = []
    result = run_lake_bench(
        size=20, data_dir=devnet_data_dir, quiet_chain=quiet_chain, candidate_step=5, say=said.append
    )
    params = {"size": 20, "data_dir": str(devnet_data_dir), "quiet_chain": quiet_chain, "candidate_step": 5}
    assert_report(result, "lake", params)
    assert said  # progress was reported
    assert result["size"] == 20
    assert ("simulated" in result) is not quiet_chain
    assert result["chain_seconds"] > 0
    seconds = result["seconds"]
    assert {"pool_events", "price_histories", CANDIDATES, "liquidation_outcomes"} <= set(seconds)
    assert all(value >= 0 for value in seconds.values())
    assert set(result["bytes"]) == set(seconds) and all(size > 0 for size in result["bytes"].values())
    assert result["candidates"]["blocks"] == 4  # blocks 20, 25, 30, 35
    assert result["candidates"]["rows"] >= 0 and result["candidates"]["ms_per_block"] > 0
    assert result["rows"]["price_histories"] > 0
    assert set(result["outcomes"]) == {"liquidations", "miss_rate"}
    assert result["scan_price_histories_ms"] >= 0
    assert result["prepare_s"] >= 0 and isinstance(result["state_cache_built"], bool)
