"""Seconds to build each dataset of one block range on a living devnet (not part of the test suite).
from ..risk.versions import rules_for

    python -m liq_pipeline.bench.lake [--size 1000] [--data-dir DIR] [--quiet-chain] [--candidate-step 10]

Starts its own anvil from the devnet state cache (200 seeded borrowers; built on first use), runs the market
simulator (prices walk, borrowers come and go, a competitor liquidates) until two full ranges exist, then builds
the range [size, 2*size-1] dataset by dataset and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import polars as pl

from ..chain.discovery import discover_market
from ..chain.rpc import RpcClient
from ..devnet import actions, anvil, state_cache
from ..devnet.rpc import Rpc
from ..devnet.simulate import SimConfig, simulate
from ..lake.backfill import materialize_range
from ..lake.datasets.borrower_snapshots import known_users_before
from ..lake.datasets.liquidation_candidates import NAME as CANDIDATES
from ..lake.datasets.liquidation_candidates import append_candidates, build_liquidation_candidates
from ..lake.datasets.liquidation_outcomes import build_liquidation_outcomes, miss_rate
from ..lake.open import lake_at
from ..lake.partitions import BlockRange, ranges_covering
from ..risk.engine import EngineParams
from ..risk.scenarios import default_specs
from ..risk.versions import rules_for


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000, help="blocks per range")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("LIQ_TEST_DEVNET_DIR", ".pytest_cache/d/liq-devnet"))
    )
    parser.add_argument("--quiet-chain", action="store_true", help="mine empty blocks instead of simulating")
    parser.add_argument("--candidate-step", type=int, default=10, help="evaluate the engine every N blocks")
    args = parser.parse_args(argv)

    # late imports: the devnet and the engine are heavy and only the bench needs them

    entry, _ = state_cache.ensure(args.data_dir, 200, 42)
    node, spec = state_cache.start_from(entry)
    report: dict = {"size": args.size}
    try:
        devnet_rpc, rpc = Rpc(node.url), RpcClient(node.url)
        target = BlockRange(args.size, 2 * args.size - 1)
        head = int(rpc.call("eth_blockNumber"), 16)
        began = time.perf_counter()
        if args.quiet_chain:
            actions.mine_blocks(devnet_rpc, target.end - head)
        else:
            users = state_cache.read_borrowers(entry).users
            sim = simulate(devnet_rpc, spec, SimConfig(blocks=target.end - head, seed=7), users)
            report["simulated"] = {"liquidations": sim.liquidations, "price_updates": sim.price_updates}
            actions.mine_blocks(devnet_rpc, max(0, target.end - int(rpc.call("eth_blockNumber"), 16)))
        report["chain_seconds"] = round(time.perf_counter() - began, 2)
        rules = rules_for(spec.protocol_version)
        market = discover_market(rpc, spec.addresses_provider, target.end, rules)
        lake = lake_at(tempfile.mkdtemp(prefix="lake-bench-"), range_size=args.size)
        for block_range in ranges_covering(0, target.start - 1, args.size):
            materialize_range(lake, rpc, market, rules, block_range, ("pool_events",))
        done = materialize_range(lake, rpc, market, rules, target)
        report["seconds"] = {k: round(v, 3) for k, v in done.seconds.items()}
        report["rows"] = dict(done.rows)

        users = known_users_before(lake, target.end + 1)
        params = EngineParams(scenarios=default_specs(["baseline", "adverse", "extreme"]))
        blocks = range(target.start, target.end + 1, args.candidate_step)
        began = time.perf_counter()
        frame = build_liquidation_candidates(
            rpc, market, rules, target.start, target.end, params=params, users=users, blocks=blocks
        )
        append_candidates(lake, frame)
        elapsed = time.perf_counter() - began
        report["seconds"]["liquidation_candidates"] = round(elapsed, 3)
        report["candidates"] = {
            "blocks": len(blocks),
            "rows": frame.height,
            "ms_per_block": round(1e3 * elapsed / len(blocks), 1),
        }
        began = time.perf_counter()
        outcomes = build_liquidation_outcomes(
            rpc,
            market,
            rules,
            target.start,
            target.end,
            candidates=lake.scan(CANDIDATES, 0, target.end),
            events=lake.read("pool_events", target),
        )
        lake.write("liquidation_outcomes", target, outcomes)
        report["seconds"]["liquidation_outcomes"] = round(time.perf_counter() - began, 3)
        report["outcomes"] = {"liquidations": outcomes.height, "miss_rate": miss_rate(outcomes)}
        report["bytes"] = {d: lake.path(d, target).stat().st_size for d in report["seconds"]}
        report["scan_price_histories_ms"] = _time_ms(
            lambda: lake.scan("price_histories").filter(pl.col("source") == "oracle").collect()
        )
    finally:
        anvil.stop(node)
    print(json.dumps(report, indent=2))
    return report


def _time_ms(work) -> float:
    began = time.perf_counter()
    work()
    return round(1e3 * (time.perf_counter() - began), 1)


if __name__ == "__main__":
    main()
