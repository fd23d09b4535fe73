"""`liq demo`: the whole system headless for N blocks of a living market, then one JSON summary.

A fresh devnet (real Aave V3, seeded from the state cache), the simulator making each block (price walk with
shocks, interest, arrivals, repays, a competitor liquidating users below HF 1 after a delay), the watcher
processing every block as soon as it is mined (candidates into the embedded Redis), and every `dagster_every`
blocks the Dagster evaluation asset materialized in-process on that block, with its checks. At the end: every
simulated block graded by the chain as `liq backtest` grades a replay (backtest/run.py: the Pool's
getUserAccountData of every borrower at every block, the LiquidationCall events), but against the candidates the
watcher actually wrote, block by block; and every user's HF at the last block against getUserAccountData.

- crossings, recall_at_cross, flagged_ahead_share, precision_within_horizon, lead_time_p50_s,
  candidates_per_block_p50, liquidations_onchain, liquidations_unflagged: the backtest's figures (docs/backtest.md),
  overall and per scenario under `scenarios`;
- dagster_block_to_candidates_p50_s: in-process materializations; `dagster dev` adds the run process start-up
  (1.1-1.8 s measured here, shared/docs/dagster-facts.md).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import SecretStr
from rich.console import Console

from ..backtest.replay import BLOCK_SCHEMA, PRICE_SCHEMA, Replay
from ..backtest.run import grade_replay, plan_range, read_chain_facts
from ..cache import open_market_cache
from ..cache.server import EmbeddedRedis
from ..chain.ground_truth import user_account_data
from ..chain.rpc import RpcClient
from ..config import Settings
from ..defs.predictive.assets import evaluate_in_process
from ..devnet import lifecycle, protocols
from ..devnet.borrowers import BorrowerRecord
from ..devnet.paths import borrowers_json_path
from ..devnet.rpc import Rpc
from ..devnet.simulate import SimConfig, simulate
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..risk.blas import use_one_blas_thread
from ..risk.evaluation import CANDIDATE_SCHEMA
from ..risk.params import EngineParams
from ..risk.versions import rules_for
from ..watch.watcher import Watcher
from . import runtime


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# the backtest's figures the demo reports, overall and per scenario
GRADED = (
    "crossings",
    "recall_at_cross",
    "flagged_ahead_share",
    "precision_within_horizon",
    "lead_time_p50_s",
    "candidates_per_block_p50",
    "liquidations_onchain",
    "liquidations_unflagged",
)


class _Held:
    """What the watcher held at each block it processed: its candidates, the block's time and oracle prices."""

    def __init__(self) -> None:
        self.candidates: list[pl.DataFrame] = [pl.DataFrame(schema=CANDIDATE_SCHEMA)]
        self.blocks: list[tuple[int, int, int, int]] = []
        self.prices: list[tuple[int, int, int]] = []

    def add(self, tracker: Tracker, candidates: pl.DataFrame) -> None:
        state = tracker.market_state()  # the block's, already read by the watcher
        self.candidates.append(candidates)
        self.blocks.append((tracker.block, state.timestamp, tracker.users, candidates.height))
        self.prices.extend((tracker.block, reserve, price) for reserve, price in state.prices.items())

    def replay(self) -> Replay:
        return Replay(
            predictions=pl.concat(self.candidates),
            blocks=pl.DataFrame(self.blocks, schema=BLOCK_SCHEMA, orient="row"),
            prices=pl.DataFrame(self.prices, schema=PRICE_SCHEMA, orient="row"),
            deferred_users=0,
        )


def _graded(rpc: RpcClient, settings: Settings, params: EngineParams, held: _Held, first: int, last: int) -> dict:
    """The backtest's grading of the simulated blocks: the truth read from the devnet now, the predictions those the
    watcher made live."""
    plan = plan_range(rpc, settings, first, last)
    facts = read_chain_facts(rpc, settings, plan, lambda _stage, _done, _total: None)
    return grade_replay(plan, settings, params, facts, held.replay())


def run_demo(
    settings: Settings,
    blocks: int,
    borrowers: int = 2_000,
    dagster_every: int = 25,
    seed: int = 0,
    say: Callable[[str], None] = lambda _m: None,
    protocol: str | None = None,
) -> dict:
    """`protocol`: the devnet's Aave version, 3.0 or 3.6 (default DEVNET_PROTOCOL_VERSION, 3.6); the engine's
    AAVE_PROTOCOL_VERSION follows it."""
    version = protocols.check_protocol(protocol if protocol is not None else settings.devnet_protocol_version)
    workdir = Path(tempfile.mkdtemp(prefix="liq-demo-"))
    say(f"Aave V{version} devnet with {borrowers} borrowers")
    # the state cache and the compiled contracts of DATA_DIR: a demo neither recompiles nor reseeds each run
    devnet = lifecycle.up(workdir, borrowers=borrowers, seed=seed, protocol=version, cache_dir=settings.data_dir)
    redis = EmbeddedRedis(workdir / "redis")
    rpc = RpcClient(devnet.node.url)
    chain = Rpc(devnet.node.url)
    try:
        head = rpc.quantity("eth_blockNumber")
        env = {
            "RPC_URL": devnet.node.url,
            "AAVE_ADDRESSES_PROVIDER": devnet.market.addresses_provider,
            "DATA_DIR": str(workdir),
            "REDIS_URL": redis.ensure_running().url,
            "STATE_HISTORY_FROM_BLOCK": str(head),
            "LAKE_RANGE_BLOCKS": "100",
            "PREDICTIVE_ENABLED": "true",
            "AAVE_PROTOCOL_VERSION": devnet.market.protocol_version,
        }
        os.environ.update(env)  # the Dagster resources read the settings from the environment
        own = settings.model_copy(
            update={
                "redis_url": SecretStr(env["REDIS_URL"]),
                "data_dir": workdir,
                "predictive_enabled": True,
                "aave_protocol_version": devnet.market.protocol_version,
                "aave_addresses_provider": devnet.market.addresses_provider,
                "state_history_from_block": head,
            }
        )
        rules = rules_for(devnet.market.protocol_version)
        cache = open_market_cache(own, devnet.market.chain_id, devnet.market.pool)
        tracker = Tracker.bootstrap(
            rpc,
            devnet.market.addresses_provider,
            rules,
            0,
            head,
            own.stable_asset_symbols,
            multicall=own.multicall_address,
        )
        params = engine_params(own)
        watcher = Watcher(rpc, tracker, params, cache)
        held = _Held()
        dagster_latency: list[float] = []
        counters = {"dagster_runs": 0, "checks_failed": 0}

        with dg.instance_for_test() as instance:

            def after_block(index: int, _partial) -> None:
                processed = watcher.step()
                if not processed or watcher.last_result is None:
                    return
                # one block per step: the simulator mines one per callback (a step over several would keep only the
                # last one's candidates: `blocks_graded` < `blocks` would say so)
                held.add(watcher.tracker, watcher.last_result.candidates)
                block = watcher.tracker.block
                if dagster_every and index % dagster_every == 0:
                    seen = time.time()
                    run = evaluate_in_process(instance, block, observed_at=seen, raise_on_error=False)
                    counters["dagster_runs"] += 1
                    dagster_latency.append(time.time() - seen)
                    counters["checks_failed"] += sum(not e.passed for e in run.get_asset_check_evaluations())

            users = BorrowerRecord.load(borrowers_json_path(workdir)).users
            say(f"simulating {blocks} blocks")
            config = SimConfig(blocks=blocks, seed=seed, shock_probability=0.01)  # a few shocks in 300 blocks
            sim = simulate(chain, devnet.market, config, users, on_block=after_block)
            if watcher.step() and watcher.last_result is not None:  # a block mined after the last callback
                held.add(watcher.tracker, watcher.last_result.candidates)

        say("grading the watcher's candidates by the chain")
        graded = _graded(rpc, own, params, held, sim.blocks[0], watcher.tracker.block)
        result = watcher.last_result
        truth = user_account_data(rpc, devnet.market.pool, result.users["user"].to_list(), watcher.tracker.block)
        flips = sum(
            (hf < 1.0) != (truth[user].health_factor < 10**18)
            for user, hf in result.users.select("user", "hf_current").iter_rows()
        )
        latencies = [r.latency_ms for r in watcher.stats.records]
        return {
            "protocol": devnet.market.protocol_version,
            "blocks": len(watcher.stats.records),
            "borrowers": watcher.tracker.users,
            "blocks_graded": len(held.blocks),
            **{key: graded[key] for key in GRADED},
            "scenarios": {name: {key: figures[key] for key in GRADED} for name, figures in graded["scenarios"].items()},
            "watcher_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
            "watcher_p99_ms": round(_p(latencies, 0.99), 2) if latencies else None,
            "dagster_runs": counters["dagster_runs"],
            "dagster_block_to_candidates_p50_s": round(statistics.median(dagster_latency), 3)
            if dagster_latency
            else None,
            "hf_flips": flips,
            "checks_failed": counters["checks_failed"],
            "price_updates": sim.price_updates,
            "shocks": sim.shocks,
            "reorgs": watcher.stats.reorgs,
            "competitor_liquidations": sim.liquidations,
            "competitor_reverts": sim.liquidation_reverts,
        }
    finally:
        rpc.close()
        chain.close()
        lifecycle.down(workdir)
        redis.stop()


def main(blocks: int, borrowers: int, dagster_every: int, as_json: bool, protocol: str | None = None) -> None:
    settings = runtime.settings()
    use_one_blas_thread()
    if as_json:
        print(json.dumps(run_demo(settings, blocks, borrowers, dagster_every, protocol=protocol)))
        return
    with Console(stderr=True).status("running the demo") as status:
        result = run_demo(settings, blocks, borrowers, dagster_every, say=status.update, protocol=protocol)
    out = Console(highlight=False)
    for key, value in result.items():
        out.print(f"{key:>34}  {value}")
