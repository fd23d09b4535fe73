"""Measure the devnet: anvil start, deployment, seeding throughput, state dump size and reload, ground-truth reads.

    .venv/bin/python -m liq_pipeline.bench.devnet_seed --borrowers 2000 --repeats 3

Prints one JSON object (medians over the repeats). Uses a throw-away data dir; leaves no node running.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from ..devnet import anvil, state_cache
from ..devnet.actions import account_data
from ..devnet.deploy import deploy_market
from ..devnet.rpc import Rpc
from ..devnet.seed import seed
from ..devnet.simulate import SimConfig, simulate
from ..devnet.solc import compile_contract


def run(borrowers: int, repeats: int, sim_blocks: int, data_dir: Path) -> dict[str, object]:
    compile_contract("DevnetAggregator", data_dir)  # compiled once, outside the timings
    starts, deploys, rates, reads = [], [], [], []
    for index in range(repeats):
        began = time.perf_counter()
        node = anvil.start()
        starts.append(time.perf_counter() - began)
        try:
            with Rpc(node.url) as rpc:
                rpc.call("anvil_setBlockTimestampInterval", anvil.BLOCK_TIME)
                began = time.perf_counter()
                market = deploy_market(rpc, data_dir)
                deploys.append(time.perf_counter() - began)
                result = seed(rpc, market, borrowers, seed=index)
                rates.append(result.per_second)
                began = time.perf_counter()
                account_data(rpc, market.pool, result.users)
                reads.append(time.perf_counter() - began)
        finally:
            anvil.stop(node)

    began = time.perf_counter()
    entry, _ = state_cache.ensure(data_dir, borrowers, 0)
    build = time.perf_counter() - began
    loads, sim_rate = [], 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        node, market = state_cache.start_from(entry)
        loads.append(time.perf_counter() - began)
        try:
            if sim_blocks and not sim_rate:
                with Rpc(node.url) as rpc:
                    users = state_cache.read_borrowers(entry).users
                    sim = simulate(rpc, market, SimConfig(blocks=sim_blocks), users)
                    sim_rate = sim_blocks / sim.seconds
        finally:
            anvil.stop(node)
    return {
        "borrowers": borrowers,
        "repeats": repeats,
        "anvil_start_s": round(statistics.median(starts), 3),
        "deploy_s": round(statistics.median(deploys), 3),
        "seed_borrowers_per_s": round(statistics.median(rates)),
        "seed_transactions": result.transactions,
        "account_data_all_users_s": round(statistics.median(reads), 3),
        "cache_build_s": round(build, 2),
        "state_dump_bytes": entry.size_bytes(),
        "state_load_s": round(statistics.median(loads), 3),
        "simulate_blocks_per_s": round(sim_rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--borrowers", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sim-blocks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liq-devnet-bench-") as tmp:
        print(json.dumps(run(args.borrowers, args.repeats, args.sim_blocks, Path(tmp))))


if __name__ == "__main__":
    main()
