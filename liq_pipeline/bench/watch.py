"""`liq bench-watch`: block -> candidates-written latency of the watcher on real devnet positions.

The borrowers are real positions on the devnet (seeded once, cached as a state dump in DATA_DIR/bench-watch and
reused). The blocks are the devnet simulator's (liq_pipeline/devnet/simulate.py): price feeds publishing on a
Chainlink-like deviation threshold from a correlated random walk, newcomers borrowing, borrowers repaying and
withdrawing, and a competitor liquidating users whose HF fell below 1. Prices move with each asset's real annual
volatility (`vol_scale=1`; `liq demo` runs 10x to make an hour eventful). Market-wide shocks are off by default
(`shocks=True` turns them on): a -5 to -25 % crash block is a different measurement (thousands of candidates
appear at once). The watcher (with its own embedded Redis, as in production, through the hot path's client:
REDIS_HOT_PATH_TIMEOUT_MS) processes each block as soon as it is mined; latency = time the block was seen -> its
candidates written to Redis; `available_to_written_*`: from the simulator's mining time (the moment its block was
mined, told to the watcher as the block's available time) -> candidates written, which includes the watcher's
head poll.

`rtt_ms` (`liq bench-watch --rtt-ms 30`): the watcher's node traffic (and the executor's, which shares its
client) goes through a relay adding that round-trip time to every request (bench/rtt_relay.py); the bootstrap and
the simulator talk to the node directly. Every block's sequential round trips (the watcher's client's requests from
the poll that found the block to its candidates written) are reported, per block kind (quiet, price_move,
liquidation_wave), with the relay's own count per step beside them.

The devnet runs the Aave version of DEVNET_PROTOCOL_VERSION (`protocol=`, `liq bench-watch --protocol 3.6`;
default 3.6) and the engine's AAVE_PROTOCOL_VERSION follows it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from ..chain.rpc import RpcClient
from ..config import Settings
from ..devnet import actions, protocols
from ..devnet.backlog import clear_backlog
from ..devnet.dex import Dex
from ..devnet.simulate import SimConfig, simulate
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..execution.executor import FastPathExecutor
from ..execution.hot_path import ExecutionHook
from ..risk.blas import use_one_blas_thread
from ..risk.versions import rules_for
from ..watch.startup import hot_path_cache
from ..watch.watcher import Watcher
from .live_executor import live_executor, precompute_for
from .report import BenchRun, Stopwatch, median, percentile, quiet
from .rtt_relay import RelayProcess, spawn_relay
from .services import LiveDevnet, live_devnet, scratch_redis, step

WATCHED = 2_000  # users the simulated competitor polls per block
SETTLE_BLOCKS = 3  # with --execute, blocks mined after the run: what is in flight settles
PHASES = ("read", "fast", "evaluate", "execute", "write")  # a block's, in order (fast, execute: with --execute)


def run_bench_watch(
    settings: Settings,
    borrowers: int,
    blocks: int,
    seed: int = 0,
    say: Callable[[str], None] = quiet,
    shocks: bool = False,
    vol_scale: float = 1.0,
    protocol: str | None = None,
    execute: bool = False,
    inventory_usd: float = 0.0,
    rtt_ms: float = 0.0,
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
        "execute": execute,
        "inventory_usd": inventory_usd,
        **({"rtt_ms": rtt_ms} if rtt_ms else {}),  # a local node: the parameters as before
    }
    run = BenchRun("watch", options)
    say(f"preparing {borrowers} borrowers (cached after the first run)")
    data_dir = Path(settings.data_dir).absolute() / "bench-watch"
    # The node prunes old states: the watcher reads at the head only. A fresh Redis per run: the chain restarts
    # from the dump's block, and a previous run's live set (at later blocks) would make every write of this run an
    # "older block" that is skipped.
    devnet = live_devnet(data_dir, borrowers, seed, prune_history=True, protocol=version)
    with devnet as chain, scratch_redis("bench-watch-redis-") as redis_url, _far_node(chain, rtt_ms) as far:
        own = settings.model_copy(  # the bench's own server; the engine's rules follow the devnet's version
            update={"redis_url": SecretStr(redis_url), "aave_protocol_version": chain.market.protocol_version}
        )
        executing, backlog = None, 0
        if execute:
            say("clearing the seeded backlog of liquidatable users (the race is for those who cross during the run)")
            backlog = clear_backlog(chain.devnet, chain.market, chain.borrowers())
            say("deploying the Liquidator for the devnet's operator key")
            relayed = dataclasses.replace(chain, rpc=far.rpc) if far is not None else chain  # the executor's reads too
            executor, dex = live_executor(relayed, data_dir, redis_url, own, inventory_usd, owner="bench-watch")
            executing = Executing(executor, dex)
        results = _measure(chain, own, blocks, seed, say, shocks, vol_scale, executing, far)
    if execute:
        results["execution"]["backlog_cleared"] = backlog
    return run.report({"borrowers": borrowers, "protocol": version, **results})


def _measure(
    chain: LiveDevnet,
    settings: Settings,
    blocks: int,
    seed: int,
    say: Callable[[str], None],
    shocks: bool,
    vol_scale: float,
    executing: Executing | None = None,
    far: FarNode | None = None,
) -> dict:
    market = chain.market
    cache = hot_path_cache(settings, market.chain_id, market.pool)
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
    if far is not None:  # bootstrapped directly (not the hot path); from here on through the relay
        tracker.rpc = far.rpc
    watcher = Watcher(tracker.rpc, tracker, engine_params(predictive), cache, observe_heads=False)
    if executing is not None:  # the executor right after each evaluation, as `liq execute` runs it
        precompute = precompute_for(executing.executor, settings)
        executing.hook = ExecutionHook(executing.executor, tracker, precompute=precompute)
        watcher.on_read, watcher.on_evaluated = executing.hook.fast, executing.hook
        watcher.on_block = executing.hook.after_write
        # as on a real chain, what it sends waits for the next block (automine would mine each transaction at once)
        chain.devnet.call("evm_setAutomine", False)
    watcher.warm_up()  # the engine's compiled pass loaded, as `liq watch` / `liq execute` do before their loop
    actions.mine_blocks(chain.devnet, 1)
    step(watcher)  # warm-up: first evaluation, first (full) write
    watched = _competitor_watchlist(watcher, chain.borrowers(), seed)
    config = SimConfig(
        blocks=blocks,
        seed=seed,
        vol_scale=vol_scale,
        shock_probability=SimConfig.shock_probability if shocks else 0.0,
    )
    say(f"{blocks} simulated blocks")
    dex = executing.dex if executing is not None else None  # arbitraged to the oracle each block when we sell on it

    relay_steps: list[tuple[int, int]] = []  # per step with blocks: (the relay's requests, the records' requests)

    def mined(_index: int, sim) -> None:  # the simulator's block is mined now: its available time, then the watcher
        before, held = (far.relay.requests() if far is not None else 0), len(watcher.stats.records)  # ~1 ms: first
        watcher.note_available(sim.blocks[1], time.time())
        step(watcher)
        if far is not None and len(watcher.stats.records) > held:
            counted = sum(r.requests for r in watcher.stats.records[held:])
            relay_steps.append((far.relay.requests() - before, counted))

    traffic = simulate(chain.devnet, market, config, watched, on_block=mined, dex=dex)
    step(watcher)  # the simulator's closing block, if any
    records = watcher.stats.records[1:]  # without the warm-up
    if executing is not None:  # what is in flight is included (or not) in the next blocks
        for _ in range(SETTLE_BLOCKS):
            actions.mine_blocks(chain.devnet, 1)
            step(watcher)
    latencies = [r.latency_ms for r in records]
    available = [r.available_to_written_ms for r in records]
    expected = list(range(records[0].block, records[-1].block + 1)) if records else []
    present = [name for name in PHASES if any(name in r.phases_ms for r in records)]
    phases = {name: median((r.phases_ms.get(name, 0.0) for r in records), 2) for name in present}
    return {
        "users_tracked": tracker.users,
        "blocks": len(records),
        "p50_ms": median(latencies, 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        # block available (mined) -> candidates written: what a stall of the watcher would show in
        "available_to_written_p50_ms": median(available, 2),
        "available_to_written_p99_ms": round(percentile(available, 0.99), 2),
        "available_to_written_max_ms": round(max(available), 2) if available else None,
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
        **round_trip_summary(records, far.relay.rtt_ms if far is not None else 0.0, relay_steps),
        "repolls": watcher.stats.repolls,
        "touched_per_block_mean": round(statistics.mean(r.touched for r in records), 2) if records else 0,
        "bootstrap_s": round(bootstrapping.seconds, 2),
        "prepare_s": round(chain.prepare_s, 2),
        "state_cache_built": chain.built,
        **({"execution": execution_summary(executing, records)} if executing is not None else {}),
    }


@dataclass
class FarNode:
    """The relay putting the node `rtt_ms` away, and the watcher's client through it."""

    relay: RelayProcess
    rpc: RpcClient


@contextlib.contextmanager
def _far_node(chain: LiveDevnet, rtt_ms: float) -> Iterator[FarNode | None]:
    if rtt_ms <= 0:
        yield None
        return
    with spawn_relay(chain.node.url, rtt_ms) as relay, RpcClient(relay.url) as rpc:
        yield FarNode(relay, rpc)


BLOCK_KINDS = ("quiet", "price_move", "liquidation_wave")


def round_trip_summary(records, rtt_ms: float, relay_steps: list[tuple[int, int]]) -> dict:
    """Sequential round trips per block (BlockRecord.round_trips), overall and per block kind, with each kind's
    latency; and, through a relay, its own request count per step against the records' (they differ only where
    a step read a block again: a node error retried, a block mined during the poll)."""
    trips = [r.round_trips for r in records]
    kinds = {}
    for kind in BLOCK_KINDS:
        group = [r for r in records if r.kind == kind]
        if not group:
            continue
        counts = [r.round_trips for r in group]
        kinds[kind] = {
            "blocks": len(group),
            "round_trips_p50": median(counts, 1),
            "round_trips_p99": round(percentile(counts, 0.99), 2),
            "round_trips_max": max(counts),
            "touched_mean": round(statistics.mean(r.touched for r in group), 2),
            "p50_ms": median((r.latency_ms for r in group), 2),
            "p99_ms": round(percentile([r.latency_ms for r in group], 0.99), 2),
            "available_to_written_p99_ms": round(percentile([r.available_to_written_ms for r in group], 0.99), 2),
        }
    out = {
        "rtt_ms": rtt_ms,
        "round_trips_p50": median(trips, 1),
        "round_trips_p99": round(percentile(trips, 0.99), 2) if trips else None,
        "round_trips_max": max(trips) if trips else None,
        "round_trips_by_kind": kinds,
    }
    if relay_steps:
        relayed = [seen for seen, _counted in relay_steps]
        out["relay_round_trips_per_step_p50"] = median(relayed, 1)
        out["relay_round_trips_per_step_max"] = max(relayed)
        out["relay_steps_over_watcher_count"] = sum(seen > counted for seen, counted in relay_steps)
        out["relay_steps_under_watcher_count"] = sum(seen < counted for seen, counted in relay_steps)
    return out


@dataclass
class Executing:
    executor: FastPathExecutor
    dex: Dex
    hook: ExecutionHook | None = None


def execution_summary(executing: Executing, records) -> dict:
    """The executor's part of the run: block seen -> signed transaction accepted by the node (the watcher's read
    and evaluation included), outcomes, and in the blocks that sent, the watcher's phases and the executor's
    stages (p50 / max, ms)."""
    executor = executing.executor
    attempts = executor.attempts
    sent = [a for a in attempts if a.sent_at is not None and a.tx_hash is not None]
    # an attempt is recorded again when it settles: the latency of each send once
    first = {a.attempt_key: a for a in reversed(sent)}.values()
    latencies = sorted((a.sent_at - a.seen_at) * 1000 for a in first)
    outcomes = Counter(a.outcome for a in attempts)
    per_block = sorted(Counter(a.block_seen for a in first).values())
    # each sending block's first transaction: how fast the bot reacts, whatever the size of the wave behind it
    firsts: dict[int, float] = {}
    for a in first:
        firsts[a.block_seen] = min(firsts.get(a.block_seen, float("inf")), (a.sent_at - a.seen_at) * 1000)
    leading = sorted(firsts.values())
    # the node's share of each send's latency (FastPathExecutor.node_wait_ms): with the same requests a send cannot
    # be faster than its wait, so the p99 of the waits is a floor under the p99 of the latencies; the difference
    # is this process's own work (the watcher's evaluation, planning, claims, signing)
    waits = [executor.node_wait_ms[a.attempt_key] for a in first if a.attempt_key in executor.node_wait_ms]
    return {
        "sent": len(latencies),
        # a wave's last transaction waits for the ones planned before it: the p99 is the largest waves' tail
        "sent_per_block": {"p50": median(per_block, 1), "max": per_block[-1]} if per_block else {},
        "send_latency_p50_ms": round(percentile(latencies, 0.50), 2) if latencies else None,
        "send_latency_p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "send_latency_max_ms": round(latencies[-1], 2) if latencies else None,
        "first_send_latency_p50_ms": round(percentile(leading, 0.50), 2) if leading else None,
        "first_send_latency_p99_ms": round(percentile(leading, 0.99), 2) if leading else None,
        "send_node_wait_p50_ms": round(percentile(waits, 0.50), 2) if waits else None,
        "send_node_wait_p99_ms": round(percentile(waits, 0.99), 2) if waits else None,
        "outcomes": dict(outcomes),
        "skipped_reasons": dict(Counter((a.reason or "")[:60] for a in attempts if a.outcome == "skipped")),
        "profit_realized_usd": round(sum(a.realized_profit_usd or 0.0 for a in attempts), 2),
        "stages_ms_in_sending_blocks": _stage_summary(executing, records),
        "precomputed_hits": executor.precomputed_hits,
        "deferred_to_next_block": executor.deferred,
        "sent_by_lane": dict(executing.hook.sent_by_lane) if executing.hook is not None else {},
        "precompute_refresh_p50_ms": median((r.seconds * 1000 for r in executing.hook.refreshes), 2),
    }


def _stage_summary(executing: Executing, records) -> dict:
    sending = {a.block_seen for a in executing.executor.attempts if a.tx_hash is not None}
    watcher = [r.phases_ms for r in records if r.block in sending]
    rows = [{"read": p.get("read", 0.0), "evaluate": p.get("evaluate", 0.0)} for p in watcher]
    rows += executing.hook.stages if executing.hook is not None else []
    names = dict.fromkeys(name for row in rows for name in row)
    return {
        name: {
            "p50": median((row[name] for row in rows if name in row), 2),
            "max": round(max(row[name] for row in rows if name in row), 2),
        }
        for name in names
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
