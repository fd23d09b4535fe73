"""`liq bench-lake [--size 1000] [--data-dir DIR] [--quiet-chain] [--candidate-step 10]`: seconds to build each
dataset of one block range on a living devnet (not part of the test suite).

Starts its own anvil from the devnet state cache (200 seeded borrowers; built on first use under `data_dir`, or in
a temporary folder removed at the end), runs the market simulator (prices walk, borrowers come and go, a
competitor liquidates; `quiet_chain` mines empty blocks instead) until two full ranges exist, then builds the range
[size, 2*size-1] dataset by dataset into a temporary lake, and the engine's candidates every `candidate_step`
blocks of it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import polars as pl

from ..chain.discovery import discover_market
from ..devnet import actions
from ..devnet.simulate import SimConfig, simulate
from ..lake.backfill import materialize_range
from ..lake.datasets.borrower_snapshots import known_users_before
from ..lake.datasets.liquidation_candidates import NAME as CANDIDATES
from ..lake.datasets.liquidation_candidates import append_candidates, build_liquidation_candidates
from ..lake.datasets.liquidation_outcomes import build_liquidation_outcomes, miss_rate
from ..lake.open import lake_at
from ..lake.partitions import BlockRange, ranges_covering
from ..lake.store import Lake
from ..risk.blas import use_one_blas_thread
from ..risk.params import EngineParams
from ..risk.scenarios import default_specs
from ..risk.versions import rules_for
from .report import BenchRun, Stopwatch, quiet, scratch_dir
from .services import LiveDevnet, live_devnet

BORROWERS, SEED = 200, 42  # the tests' devnet: with data_dir = their cache folder, its state is built once


def run_lake_bench(
    size: int = 1000,
    data_dir: Path | None = None,
    quiet_chain: bool = False,
    candidate_step: int = 10,
    say: Callable[[str], None] = quiet,
) -> dict:
    use_one_blas_thread()
    params = {
        "size": size,
        "data_dir": str(data_dir) if data_dir else None,
        "quiet_chain": quiet_chain,
        "candidate_step": candidate_step,
    }
    run = BenchRun("lake", params)
    with ExitStack() as stack:
        state_dir = data_dir or stack.enter_context(scratch_dir("liq-lake-bench-devnet-"))
        lake = lake_at(stack.enter_context(scratch_dir("liq-lake-bench-")), range_size=size)
        say(f"starting the devnet ({BORROWERS} borrowers; its state is built on first use)")
        chain = stack.enter_context(live_devnet(state_dir, BORROWERS, SEED))
        target = BlockRange(size, 2 * size - 1)
        report: dict = {"size": size, **_make_chain(chain, target, quiet_chain, say)}
        say("building the datasets")
        report |= _build_datasets(chain, lake, target, candidate_step)
        report["prepare_s"] = round(chain.prepare_s, 2)
        report["state_cache_built"] = chain.built
    return run.report(report)


def _make_chain(chain: LiveDevnet, target: BlockRange, quiet_chain: bool, say: Callable[[str], None]) -> dict:
    """Blocks up to the end of `target`: simulated traffic, or empty ones."""
    out: dict = {}
    say(f"making blocks up to {target.end}")
    with Stopwatch() as making:
        if quiet_chain:
            actions.mine_blocks(chain.devnet, target.end - chain.head())
        else:
            config = SimConfig(blocks=target.end - chain.head(), seed=7)
            sim = simulate(chain.devnet, chain.market, config, chain.borrowers())
            out["simulated"] = {"liquidations": sim.liquidations, "price_updates": sim.price_updates}
            actions.mine_blocks(chain.devnet, max(0, target.end - chain.head()))
    out["chain_seconds"] = round(making.seconds, 2)
    return out


def _build_datasets(chain: LiveDevnet, lake: Lake, target: BlockRange, candidate_step: int) -> dict:
    """Every dataset of `target` (the earlier ranges' pool events first), timed one by one."""
    rpc = chain.rpc
    rules = rules_for(chain.market.protocol_version)
    market = discover_market(rpc, chain.market.addresses_provider, target.end, rules)
    for block_range in ranges_covering(0, target.start - 1, lake.range_size):
        materialize_range(lake, rpc, market, rules, block_range, ("pool_events",))
    done = materialize_range(lake, rpc, market, rules, target)
    seconds = {k: round(v, 3) for k, v in done.seconds.items()}
    out: dict = {"seconds": seconds, "rows": dict(done.rows)}

    users = known_users_before(lake, target.end + 1)
    params = EngineParams(scenarios=default_specs(["baseline", "adverse", "extreme"]))
    blocks = range(target.start, target.end + 1, candidate_step)
    with Stopwatch() as candidates:
        frame = build_liquidation_candidates(
            rpc, market, rules, target.start, target.end, params=params, users=users, blocks=blocks
        )
        append_candidates(lake, frame)
    seconds[CANDIDATES] = round(candidates.seconds, 3)
    out["candidates"] = {
        "blocks": len(blocks),
        "rows": frame.height,
        "ms_per_block": round(1e3 * candidates.seconds / len(blocks), 1),
    }
    with Stopwatch() as outcomes_took:
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
    seconds["liquidation_outcomes"] = round(outcomes_took.seconds, 3)
    out["outcomes"] = {"liquidations": outcomes.height, "miss_rate": miss_rate(outcomes)}
    out["bytes"] = {d: lake.path(d, target).stat().st_size for d in seconds}
    with Stopwatch() as scanning:
        lake.scan("price_histories").filter(pl.col("source") == "oracle").collect()
    out["scan_price_histories_ms"] = scanning.ms(1)
    return out
