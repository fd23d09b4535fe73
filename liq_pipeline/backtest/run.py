"""One backtest of a block range: where the node has state, the truth read, the engine replayed, the grading.

Plan (`plan_range`): the node serves state from some block on (a pruned node, the devnet loaded from its state
cache); the graded range starts there at the earliest. The truth starts one block earlier when the node has it
(a crossing at the range's first block needs the block before it); the replay starts a price window earlier (the
trends a running watcher would have had), both clamped to the first block with state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import polars as pl

from ..chain.discovery import discover_market
from ..chain.events import fetch_events
from ..chain.positions import read_positions
from ..chain.rpc import RpcClient
from ..chain.state_history import first_block_with_state
from ..config import Settings
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..lake.datasets.liquidation_outcomes import liquidations_from_events
from ..risk.params import EngineParams
from ..risk.versions import rules_for
from .grading import Window, grade
from .moves import price_moves
from .replay import Replay, replay
from .replay_many import replay_many
from .truth import first_seen, read_truth

# stage, blocks done, blocks in the stage (the command's progress bar)
Progress = Callable[[str, int, int], None]


class BacktestError(Exception):
    """The range cannot be backtested on this node (a mistake to fix: the command exits 2)."""


@dataclass(frozen=True)
class Plan:
    from_block: int  # as asked
    to_block: int
    head: int
    state_from: int  # the node's first block with state
    graded_from: int  # max(from_block, state_from)
    truth_from: int  # the block before graded_from when the node has its state
    replay_from: int  # a price window before graded_from, or state_from

    @property
    def clamped(self) -> bool:
        return self.graded_from > self.from_block

    @property
    def blocks(self) -> int:
        return self.to_block - self.graded_from + 1


def plan_range(rpc: RpcClient, settings: Settings, from_block: int, to_block: int) -> Plan:
    if to_block < from_block:
        raise BacktestError(f"--to-block {to_block} is before --from-block {from_block}")
    head = rpc.quantity("eth_blockNumber")
    if to_block > head:
        raise BacktestError(f"--to-block {to_block} is past the node's latest block {head}")
    if settings.start_block > from_block:
        raise BacktestError(
            f"START_BLOCK={settings.start_block} is after --from-block {from_block}: the borrowers are read from "
            "the events since START_BLOCK (lower it, or start the backtest later)"
        )
    provider = settings.aave_addresses_provider
    state_from = first_block_with_state(rpc, provider, low=settings.state_history_from_block, head=head)
    if to_block < state_from:
        raise BacktestError(
            f"blocks {from_block}-{to_block} have no state on this node (first block with state: {state_from}): "
            "neither getUserAccountData nor the positions can be read there"
        )
    graded = max(from_block, state_from)
    return Plan(
        from_block=from_block,
        to_block=to_block,
        head=head,
        state_from=state_from,
        graded_from=graded,
        truth_from=max(state_from, graded - 1),
        replay_from=max(state_from, graded - settings.predictive_price_window),
    )


@dataclass(frozen=True)
class ChainFacts:
    """What the chain says over the range, whatever the engine's parameters (a sweep reads it once)."""

    seen: pl.DataFrame  # user, first_block: every position owner the events name up to to_block
    truth: pl.DataFrame  # truth.SCHEMA, blocks truth_from..to_block
    liquidations: pl.DataFrame  # LIQUIDATION_SCHEMA: the LiquidationCall events of the graded range


@dataclass
class Backtest:
    plan: Plan
    report: dict
    facts: ChainFacts
    replay: Replay
    seconds: dict[str, float] = field(default_factory=dict)


def run_backtest(rpc: RpcClient, settings: Settings, plan: Plan, progress: Progress | None = None) -> Backtest:
    """`settings` name the node and the market (RPC_URL, AAVE_ADDRESSES_PROVIDER, AAVE_PROTOCOL_VERSION) and the
    engine (engine_params, as the watcher reads them)."""
    tick = progress or (lambda _stage, _done, _total: None)
    params = engine_params(settings)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    facts = read_chain_facts(rpc, settings, plan, tick)
    seconds["truth"] = time.perf_counter() - clock
    clock = time.perf_counter()
    replayed = replay_engine(rpc, settings, plan, facts.seen, params, tick)
    seconds["replay"] = time.perf_counter() - clock
    clock = time.perf_counter()
    graded = grade_replay(plan, settings, params, facts, replayed)
    seconds["grading"] = time.perf_counter() - clock
    report = {
        **header(plan, settings, params, facts, replayed),
        **graded,
        "seconds": {stage: round(value, 2) for stage, value in seconds.items()},
    }
    return Backtest(plan, report, facts, replayed, seconds)


def grade_replay(plan: Plan, settings: Settings, params: EngineParams, facts: ChainFacts, replayed: Replay) -> dict:
    """The figures of one engine's predictions over the graded range; "within the horizon" is
    PREDICTIVE_HORIZON_SEC of `settings` (with PREDICTIVE_ENABLED=false too: the engine then looks 0 s ahead)."""
    window = Window(plan.graded_from, plan.to_block, float(settings.predictive_horizon_sec))
    moves = price_moves(replayed.prices)
    scenarios = [spec.name for spec in params.scenarios]
    return grade(facts.truth, replayed.blocks, replayed.predictions, facts.liquidations, moves, window, scenarios)


def read_chain_facts(rpc: RpcClient, settings: Settings, plan: Plan, tick: Progress) -> ChainFacts:
    """The events since START_BLOCK (who is a borrower from when), the Pool's verdict at every block, and the
    range's liquidations. The market is discovered at to_block: every reserve listed by then has its events."""
    rules = rules_for(settings.aave_protocol_version)
    provider = settings.aave_addresses_provider
    market = discover_market(rpc, provider, plan.to_block, rules, symbols=False, multicall=settings.multicall_address)
    tick("events", 0, 1)
    events = fetch_events(rpc, market, settings.start_block, plan.to_block)
    seen = first_seen(events)
    tick("events", 1, 1)
    blocks = range(plan.truth_from, plan.to_block + 1)
    tick("truth", 0, len(blocks))
    truth = read_truth(
        rpc, market.pool, seen, blocks, settings.multicall_address, lambda done: tick("truth", done, len(blocks))
    )
    # fetch_events has no timestamps (pool_events adds them): the truth read every block's header
    times = truth.select(pl.col("block").alias("block_number"), "block_timestamp").unique("block_number")
    in_range = events.filter(pl.col("block_number").is_between(plan.graded_from, plan.to_block))
    liquidations = liquidations_from_events(in_range.join(times, on="block_number", how="left"))
    return ChainFacts(seen, truth, liquidations)


def replay_engine(
    rpc: RpcClient, settings: Settings, plan: Plan, seen: pl.DataFrame, params: EngineParams, tick: Progress
) -> Replay:
    """The engine replayed from plan.replay_from as a watcher started there would have run it: the market as
    discovered at that block, the borrowers the events had named by then, PREDICTIVE_MAX_USERS_PER_TICK."""
    tracker = _tracker(rpc, settings, plan, seen)
    total = plan.to_block - plan.replay_from + 1
    tick("replay", 0, total)
    return replay(tracker, params, plan.to_block, progress=lambda block: _tick_replay(tick, plan, block))


def replay_engines(
    rpc: RpcClient,
    settings: Settings,
    plan: Plan,
    seen: pl.DataFrame,
    params: Sequence[EngineParams],
    tick: Progress,
    full: Collection[int] | None = None,
) -> list[Replay]:
    """`replay_engine` for several parameter sets at once: the chain read once, every set evaluated per block (the
    sets not in `full` keep only what grading reads: replay_many.flags)."""
    tracker = _tracker(rpc, settings, plan, seen)
    tick("replay", 0, plan.to_block - plan.replay_from + 1)
    return replay_many(
        tracker, params, plan.to_block, progress=lambda block: _tick_replay(tick, plan, block), full=full
    )


def _tracker(rpc: RpcClient, settings: Settings, plan: Plan, seen: pl.DataFrame) -> Tracker:
    rules = rules_for(settings.aave_protocol_version)
    start = plan.replay_from
    market = discover_market(
        rpc, settings.aave_addresses_provider, start, rules, symbols=True, multicall=settings.multicall_address
    )
    users = seen.filter(pl.col("first_block") <= start)["user"].to_list()
    tracker = Tracker(
        rpc,
        market,
        rules,
        read_positions(rpc, market, users, start, rules),
        start,
        tuple(settings.stable_asset_symbols),
        settings.predictive_price_window,
        settings.predictive_ema_span,
    )
    tracker.max_users_per_tick = settings.predictive_max_users_per_tick
    return tracker


def _tick_replay(tick: Progress, plan: Plan, block: int) -> None:
    tick("replay", block - plan.replay_from + 1, plan.to_block - plan.replay_from + 1)


def header(plan: Plan, settings: Settings, params: EngineParams, facts: ChainFacts, replayed: Replay) -> dict:
    """What was graded, against what, with which engine."""
    return {
        "from_block": plan.from_block,
        "to_block": plan.to_block,
        "graded_from_block": plan.graded_from,
        "blocks": plan.blocks,
        "first_block_with_state": plan.state_from,
        "truth_from_block": plan.truth_from,
        "replay_from_block": plan.replay_from,
        "borrowers": int((facts.seen["first_block"] <= plan.to_block).sum()),
        "truth_reads": facts.truth.height,
        "deferred_users": replayed.deferred_users,
        "engine": {
            "protocol_version": settings.aave_protocol_version,
            "predictive_enabled": settings.predictive_enabled,
            "scenarios": [spec.name for spec in params.scenarios],
            "engine_horizon_sec": params.horizon_sec,
            "graded_horizon_sec": settings.predictive_horizon_sec,
            "hf_buffer_bps": params.hf_buffer_bps,
            "price_window": settings.predictive_price_window,
        },
    }
