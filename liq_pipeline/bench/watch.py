"""`liq bench-watch`: block -> candidates-written latency of the watcher on real devnet positions.

The borrowers are real positions on the devnet (seeded once, cached as a state dump in DATA_DIR/bench-watch and
reused). The blocks are the devnet simulator's (liq_pipeline/devnet/simulate.py): price feeds publishing on a
Chainlink-like deviation threshold from a correlated random walk, newcomers borrowing, borrowers repaying and
withdrawing, and a competitor liquidating users whose HF fell below 1. Prices move with each asset's real annual
volatility (`vol_scale=1`; `liq demo` runs 10x to make an hour eventful). Market-wide shocks are off by default
(`shocks=True` turns them on): a -5 to -25 % crash block is a different measurement (thousands of candidates
appear at once). The watcher (with its own embedded Redis, as in production) processes each block as soon as it
is mined; latency = time the block was seen -> its candidates written to Redis.

The devnet runs the Aave version of DEVNET_PROTOCOL_VERSION (`protocol=`, `liq bench-watch --protocol 3.6`;
default 3.6) and the engine's AAVE_PROTOCOL_VERSION follows it.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from ..cache import open_market_cache
from ..config import Settings
from ..devnet import actions, protocols
from ..devnet.simulate import SimConfig, simulate
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..risk.blas import use_one_blas_thread
from ..risk.versions import rules_for
from ..watch.watcher import Watcher
from .report import BenchRun, Stopwatch, median, percentile, quiet
from .services import LiveDevnet, live_devnet, scratch_redis

WATCHED = 2_000  # users the simulated competitor polls per block


def run_bench_watch(
    settings: Settings,
    borrowers: int,
    blocks: int,
    seed: int = 0,
    say: Callable[[str], None] = quiet,
    shocks: bool = False,
    vol_scale: float = 1.0,
    protocol: str | None = None,
) -> dict:
    use_one_blas_thread()
    version = protocols.check_protocol(protocol if protocol is not None else settings.devnet_protocol_version)
    options = {
        "borrowers": borrowers,
        "blocks": blocks,
        "seed": seed,
        "shocks": shocks,
        "vol_scale": vol_scale,
        "protocol": version,
    }
    run = BenchRun("watch", options)
    say(f"preparing {borrowers} borrowers (cached after the first run)")
    data_dir = Path(settings.data_dir).absolute() / "bench-watch"
    # The node prunes old states: the watcher reads at the head only. A fresh Redis per run: the chain restarts
    # from the dump's block, and a previous run's live set (at later blocks) would make every write of this run an
    # "older block" that is skipped.
    devnet = live_devnet(data_dir, borrowers, seed, prune_history=True, protocol=version)
    with devnet as chain, scratch_redis("bench-watch-redis-") as redis_url:
        own = settings.model_copy(  # the bench's own server; the engine's rules follow the devnet's version
            update={"redis_url": SecretStr(redis_url), "aave_protocol_version": chain.market.protocol_version}
        )
        results = _measure(chain, own, blocks, seed, say, shocks, vol_scale)
    return run.report({"borrowers": borrowers, "protocol": version, **results})


def _measure(
    chain: LiveDevnet,
    settings: Settings,
    blocks: int,
    seed: int,
    say: Callable[[str], None],
    shocks: bool,
    vol_scale: float,
) -> dict:
    market = chain.market
    cache = open_market_cache(settings, market.chain_id, market.pool)
    say("bootstrapping the watcher from the chain's events")
    with Stopwatch() as bootstrapping:
        tracker = Tracker.bootstrap(
            chain.rpc,
            market.addresses_provider,
            rules_for(settings.aave_protocol_version),
            0,
            chain.head(),
            settings.stable_asset_symbols,
            multicall=settings.multicall_address,
        )
    predictive = settings.model_copy(update={"predictive_enabled": True})  # the path being measured
    watcher = Watcher(chain.rpc, tracker, engine_params(predictive), cache)
    actions.mine_blocks(chain.devnet, 1)
    watcher.step()  # warm-up: first evaluation, first (full) write
    watched = _competitor_watchlist(watcher, chain.borrowers(), seed)
    config = SimConfig(
        blocks=blocks,
        seed=seed,
        vol_scale=vol_scale,
        shock_probability=SimConfig.shock_probability if shocks else 0.0,
    )
    say(f"{blocks} simulated blocks")
    traffic = simulate(chain.devnet, market, config, watched, on_block=lambda _i, _r: watcher.step())
    watcher.step()  # the simulator's closing block, if any
    records = watcher.stats.records[1:]  # without the warm-up
    latencies = [r.latency_ms for r in records]
    expected = list(range(records[0].block, records[-1].block + 1)) if records else []
    phases = {name: median((r.phases_ms.get(name, 0.0) for r in records), 2) for name in ("read", "evaluate", "write")}
    return {
        "users_tracked": tracker.users,
        "blocks": len(records),
        "p50_ms": median(latencies, 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "missed_blocks": len(set(expected) - {r.block for r in records}),
        "phases_p50_ms": phases,
        "candidates_last_block": records[-1].candidates if records else {},
        "price_updates": traffic.price_updates,
        "shocks": traffic.shocks,
        "vol_scale": vol_scale,
        "arrivals": traffic.arrivals,
        "repays": traffic.repays,
        "withdrawals": traffic.withdrawals,
        "liquidations": traffic.liquidations,
        "slowest": [block_summary(r) for r in sorted(records, key=lambda r: -r.latency_ms)[:3]],
        "users_evaluated_median": int(median((r.evaluated for r in records), 1) or 0),
        "carried_blocks": sum(r.carried for r in records),
        "p50_ms_by_kind": p50_by_kind(records),
        "touched_per_block_mean": round(statistics.mean(r.touched for r in records), 2) if records else 0,
        "bootstrap_s": round(bootstrapping.seconds, 2),
        "prepare_s": round(chain.prepare_s, 2),
        "state_cache_built": chain.built,
    }


def by_kind(records) -> dict[str, list]:
    """The blocks that carried the previous values (no price moved) and the others (evaluated); a kind without a
    block left out."""
    kinds = {"carried": [r for r in records if r.carried], "evaluated": [r for r in records if not r.carried]}
    return {kind: group for kind, group in kinds.items() if group}


def p50_by_kind(records) -> dict[str, float]:
    """Median latency of blocks that carried the previous values (no price moved) and of the others."""
    return {kind: median((r.latency_ms for r in group), 2) for kind, group in by_kind(records).items()}


def block_summary(record) -> dict:
    """One block's record in a report: its latency, users, phases and writes."""
    phases = {name: round(value, 1) for name, value in record.phases_ms.items()}
    return {
        "block": record.block,
        "latency_ms": round(record.latency_ms, 1),
        "evaluated": record.evaluated,
        "touched": record.touched,
        "carried": record.carried,
        **phases,
        **record.writes,
    }


def _competitor_watchlist(watcher: Watcher, borrowers: list[str], seed: int) -> list[str]:
    """Users the simulated competitor polls with getUserAccountData each block: the riskiest (engine HF < 1.1)
    and a sample of the rest (who repay and withdraw), at most WATCHED. Polling all 100k users every block would
    make the simulator, not the watcher, the bench's bottleneck."""
    users = watcher.last_result.users.select("user", "hf_current").sort("hf_current")
    risky = users.filter(users["hf_current"] < 1.1)["user"].head(WATCHED // 2).to_list()
    others = sorted(set(borrowers) - set(risky))
    rng = random.Random(seed)
    return risky + rng.sample(others, min(len(others), WATCHED - len(risky)))
