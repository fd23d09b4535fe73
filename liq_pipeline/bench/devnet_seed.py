"""`liq bench-seed [--borrowers 2000] [--repeats 3] [--sim-blocks 200]`: the devnet's own figures: anvil start,
deployment, seeding throughput, state dump size and reload, ground-truth reads, simulator speed.

Medians over the repeats. Uses a throw-away data dir; leaves no node running.
"""

from __future__ import annotations

from pathlib import Path

from ..devnet import anvil, state_cache
from ..devnet.actions import account_data
from ..devnet.deploy import deploy_market
from ..devnet.rpc import Rpc
from ..devnet.seed import SeedResult, seed
from ..devnet.simulate import SimConfig, simulate
from ..devnet.solc import compile_contract
from .report import BenchRun, Stopwatch, median, scratch_dir


def run_seed_bench(borrowers: int = 2000, repeats: int = 3, sim_blocks: int = 200) -> dict:
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    run = BenchRun("devnet_seed", {"borrowers": borrowers, "repeats": repeats, "sim_blocks": sim_blocks})
    with scratch_dir("liq-devnet-bench-") as data_dir:
        compile_contract("DevnetAggregator", data_dir)  # compiled once, outside the timings
        fresh = _fresh_markets(data_dir, borrowers, repeats)
        cached = _cached_markets(data_dir, borrowers, repeats, sim_blocks)
    return run.report({"borrowers": borrowers, "repeats": repeats, **fresh, **cached})


def _fresh_markets(data_dir: Path, borrowers: int, repeats: int) -> dict:
    """Start, deploy, seed and read a new market `repeats` times."""
    starts, deploys, rates, reads = [], [], [], []
    result: SeedResult | None = None
    for index in range(repeats):
        with Stopwatch() as starting:
            node = anvil.start()
        starts.append(starting.seconds)
        try:
            with Rpc(node.url) as rpc:
                rpc.call("anvil_setBlockTimestampInterval", anvil.BLOCK_TIME)
                with Stopwatch() as deploying:
                    market = deploy_market(rpc, data_dir)
                deploys.append(deploying.seconds)
                result = seed(rpc, market, borrowers, seed=index)
                rates.append(result.per_second)
                with Stopwatch() as reading:
                    account_data(rpc, market.pool, result.users)
                reads.append(reading.seconds)
        finally:
            anvil.stop(node)
    return {
        "anvil_start_s": median(starts, 3),
        "deploy_s": median(deploys, 3),
        "seed_borrowers_per_s": round(median(rates, 0) or 0),
        "seed_transactions": result.transactions if result else 0,
        "account_data_all_users_s": median(reads, 3),
    }


def _cached_markets(data_dir: Path, borrowers: int, repeats: int, sim_blocks: int) -> dict:
    """Build the state cache entry once, reload it `repeats` times, simulate `sim_blocks` on the first reload."""
    with Stopwatch() as building:
        entry, _ = state_cache.ensure(data_dir, borrowers, 0)
    loads, sim_rate = [], 0.0
    for _ in range(repeats):
        with Stopwatch() as loading:
            node, market = state_cache.start_from(entry)
        loads.append(loading.seconds)
        try:
            if sim_blocks and not sim_rate:
                with Rpc(node.url) as rpc:
                    users = state_cache.read_borrowers(entry).users
                    sim = simulate(rpc, market, SimConfig(blocks=sim_blocks), users)
                    sim_rate = sim_blocks / sim.seconds
        finally:
            anvil.stop(node)
    return {
        "cache_build_s": round(building.seconds, 2),
        "state_dump_bytes": entry.size_bytes(),
        "state_load_s": median(loads, 3),
        "simulate_blocks_per_s": round(sim_rate, 1),
    }
