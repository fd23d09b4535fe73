"""`liq bench-seed` on a tiny devnet: anvil, deployment, seeding, state dump, reload, simulator."""

from __future__ import annotations

import pytest

from liq_pipeline.bench.devnet_seed import run_seed_bench

from .contract import assert_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_seed_bench_small():
    result = run_seed_bench(borrowers=10, repeats=1, sim_blocks=5)
    assert_report(result, "devnet_seed", {"borrowers": 10, "repeats": 1, "sim_blocks": 5})
    assert (result["borrowers"], result["repeats"]) == (10, 1)
    for key in (
        "anvil_start_s",
        "deploy_s",
        "seed_borrowers_per_s",
        "seed_transactions",
        "account_data_all_users_s",
        "cache_build_s",
        "state_dump_bytes",
        "state_load_s",
        "simulate_blocks_per_s",
    ):
        assert result[key] > 0, key
    assert result["seed_transactions"] >= 10  # at least one per borrower


def test_seed_bench_needs_a_repeat():
    with pytest.raises(ValueError, match="repeats"):
        run_seed_bench(repeats=0)
