"""`liq arena`: the executor against the simulator's competitor on the devnet's living market, and who wins.

The devnet (DEVNET_PROTOCOL_VERSION, 3.6 by default) runs from its state cache with its DEX; the project's
Liquidator contract is deployed for the devnet's operator key. The seeded backlog of users already below HF 1 is
liquidated first (devnet/backlog.py: a live market has none). Each simulated block (prices, newcomers, repays,
the DEX arbitraged to the oracle, the competitor's liquidations) is followed at once by the watcher (positions and
the engine) and, right after its evaluation, the FastPathExecutor (plan, claim, verify, sign, send), live: its
transactions wait in anvil's pool for the next block, where anvil orders by priority fee, as Base's sequencer
does.

The competitor (devnet/simulate.py) liquidates a user `liquidation_delay` blocks after it first saw HF < 1 at the
end of a block. Our transaction for that block lands in the next one, so `competitor_delay` D = 0 races us in the
same block (fees decide) and D = 1 is one block slower than us.

Before the block (issue #15): `competitor` picks the rivals as Base has them (devnet/competitors.py): "delayed" (the
sealed-block competitor `competitor_delay` blocks behind us), "same-block" (the same, racing us in the block after
the crossing: D = 0), "preconf" (plus one liquidating at the pending state, in the update's own block) and "svr"
(plus Chainlink SVR's auction winner, which takes the first liquidation behind each price update; missed auctions
publish their update `svr_fallback_blocks` later). `trigger` "pending" runs the executor's pre-confirmation lane
(execution/pending_lane.py) on anvil's pending-transaction stream: each simulated block then shows its price
updates first, for a window of `window_ms` (a Flashblock: 200 ms) before it is sealed. The JSON adds
`win_rate_price_triggered` (bench/arena_triggers.py), `pending_to_sent_p50/p99_ms`, `left_to_public_share` (the
liquidations not taken by the SVR auction) and `win_rate_public` (ours among those).

Graded by the chain, not by the executor: every LiquidationCall of the run is counted by its liquidator (our
contract or another), valued at the oracle prices of its block (a liquidation whose bonus is under
EXECUTION_MIN_PROFIT_USD is no opportunity for a bot that pays gas: `win_rate_profitable` leaves those out,
`win_rate` counts all), and every included attempt's Liquidated event is compared with its plan.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..chain.abi import event_topic, events
from ..chain.pending import MEMPOOL, PendingPriceStream, ws_url_for
from ..config import Settings
from ..devnet import protocols
from ..devnet.actions import oracle_prices
from ..devnet.backlog import clear_backlog
from ..devnet.competitors import SVR_SEARCHER, role_of
from ..devnet.liquidator import restock_txs
from ..devnet.simulate import SimConfig, simulate
from ..devnet.txs import Chain
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..execution.executor import REVERTS, FastPathExecutor
from ..execution.hot_path import ExecutionHook
from ..execution.pending_lane import PendingLane
from ..risk.blas import use_one_blas_thread
from ..risk.versions import rules_for
from ..watch.watcher import Watcher
from .arena_triggers import price_triggered
from .live_executor import live_executor, precompute_for
from .report import BenchRun, percentile, quiet
from .services import live_devnet, scratch_redis, step

LIQUIDATION_CALL = events("Pool")[event_topic("Pool", "LiquidationCall")]
SETTLE_BLOCKS = 3  # empty blocks after the run: what is in flight is included or not
# Debt assets the Liquidator holds per reserve (inventory mode): where the DEX's $2M pools are too shallow for a
# flash loan's swap (hundreds of users crossing at once), a bot with inventory keeps the collateral. The competitor
# mints whatever it repays: the arena gives our bot as much ($100M per asset, refilled every block with `restock`)
# so that the race is decided by speed and sizing, not by capital. Capital's own cost is measured with
# `--inventory-usd 1000000 --no-restock`: a whale's liquidation spends a whole asset's inventory and the next users
# of that asset meet only pools our own swaps left 4-6 % under the oracle (seed 0: 0.948; the crash waves of seeds
# 1 and 2, ~100 users crossing in one block: ~0.75).
INVENTORY_USD = 100_000_000
COMPETITORS = ("delayed", "same-block", "preconf", "svr")
TRIGGERS = ("sealed", "pending")
WINDOW_MS = 200  # a Flashblock: what a pending update is visible for before its block is sealed (paced runs)


def run_arena(
    settings: Settings,
    blocks: int,
    competitor_delay: int = 1,
    borrowers: int = 2_000,
    seed: int = 0,
    vol_scale: float = 10.0,
    protocol: str | None = None,
    inventory_usd: float = INVENTORY_USD,
    restock: bool = True,
    say: Callable[[str], None] = quiet,
    competitor: str = "delayed",
    trigger: str = "sealed",
    window_ms: int | None = None,
) -> dict:
    if competitor not in COMPETITORS:
        raise ValueError(f"competitor {competitor!r} is not one of {', '.join(COMPETITORS)}")
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger {trigger!r} is not one of {', '.join(TRIGGERS)}")
    if competitor != "delayed":
        competitor_delay = 0  # the sealed-block competitor of Base: the block after the crossing, like us
    paced = trigger == "pending" or competitor in ("preconf", "svr")
    window = (WINDOW_MS if paced else 0) if window_ms is None else window_ms
    if paced and window <= 0:
        raise ValueError(f"trigger {trigger!r} with competitor {competitor!r} needs a window > 0 ms")
    use_one_blas_thread()
    version = protocols.check_protocol(protocol if protocol is not None else settings.devnet_protocol_version)
    run = BenchRun(
        "arena",
        {
            "blocks": blocks,
            "competitor_delay": competitor_delay,
            "borrowers": borrowers,
            "seed": seed,
            "vol_scale": vol_scale,
            "protocol": version,
            "inventory_usd": inventory_usd,
            "restock": restock and inventory_usd > 0,
            "competitor": competitor,
            "trigger": trigger,
            "window_ms": window,
            "predictive_enabled": settings.predictive_enabled,
        },
    )
    data_dir = Path(settings.data_dir).absolute() / "arena"
    say(f"Aave V{version} devnet with {borrowers} borrowers (cached after the first run)")
    with live_devnet(data_dir, borrowers, seed, protocol=version) as net, scratch_redis("liq-arena-") as redis_url:
        market = net.market
        say("clearing the seeded backlog of liquidatable users (the race is for those who cross during the run)")
        backlog = clear_backlog(net.devnet, market, net.borrowers())
        executor, dex = live_executor(net, data_dir, redis_url, settings, inventory_usd, owner="arena")
        deployed_address = executor.venue.liquidator
        rules = rules_for(version)
        start = net.head()
        tracker = Tracker.bootstrap(net.rpc, market.addresses_provider, rules, 0, start, settings.stable_asset_symbols)
        hook = ExecutionHook(executor, tracker, precompute=precompute_for(executor, settings))
        first_flagged: dict[str, int] = {}
        flagged: dict[str, list[int]] = {}  # user -> every block the watcher found it below 1

        def on_evaluated(block: int, result, seen_at: float) -> None:
            hook(block, result, seen_at)  # first: the path being measured
            below = result.book.positions["user"].gather(np.flatnonzero(result.hf_current < 1.0))
            for user in below.to_list():
                first_flagged.setdefault(user.lower(), block)
                flagged.setdefault(user.lower(), []).append(block)

        watcher = Watcher(
            net.rpc,
            tracker,
            engine_params(settings),
            None,
            on_evaluated=on_evaluated,
            on_block=hook.after_write,
            on_read=hook.fast,
        )
        watcher.warm_up()  # as `liq execute` does before its first block
        watcher_ms: list[float] = []

        def after_block(_index: int, _partial) -> None:
            if step(watcher):
                phases = watcher.stats.records[-1].phases_ms
                watcher_ms.append(phases["read"] + phases["evaluate"])  # the watcher's part, before the executor

        lane, stream, on_pending = None, None, None
        if trigger == "pending":
            # on the pending state: the devnet's paced blocks tip their updates at the top, so it is the block so
            # far (under SVR with the auction's backrun the update came bundled with). Behind the updates' own calls
            # on the latest state instead (the mempool way), 30 blocks: 2 reverts and 1 plan mismatch against 0 and
            # 0, at the same verify time (7.2 vs 7.0 ms p50: anvil's eth_simulateV1, not its pending block)
            lane = PendingLane(executor, tracker, watcher.lock, pending_state=True).start()
            stream = PendingPriceStream(ws_url_for(net.rpc.url), MEMPOOL, lane.feeds, lane.submit)
            if not stream.start():
                raise RuntimeError("the devnet's pending-transaction stream did not subscribe within 5 s")

            expected = [0]  # updates sent so far: the lane has acted on them all when it has handled as many

            def on_pending(_index: int, answers: dict[str, int]) -> None:
                # the lane acts on its own thread, as in `liq execute`; the block waits for it within the window
                expected[0] += len(answers)
                lane.wait_handled(expected[0], window / 1000)

        say(f"{blocks} blocks, competitor {competitor} ({competitor_delay} block(s) behind us), trigger {trigger}")
        config = SimConfig(
            blocks=blocks,
            liquidation_delay=1 + competitor_delay,
            seed=seed,
            vol_scale=vol_scale,
            pending_window_ms=window,
            competitor="sealed" if competitor in ("delayed", "same-block") else competitor,
        )
        refill = None
        if restock and inventory_usd:

            def refill() -> list:
                return restock_txs(net.devnet, market, deployed_address, inventory_usd)

        try:
            sim = simulate(
                net.devnet,
                market,
                config,
                net.borrowers(),
                on_block=after_block,
                dex=dex,
                extra_txs=refill,
                on_pending=on_pending,
            )
        finally:
            if stream is not None:
                stream.stop()
            if lane is not None:
                lane.stop()
        chain = Chain(net.devnet)
        for _ in range(SETTLE_BLOCKS):  # at the simulator's pace: the plans were made for the next 2 s
            chain.mine(chain.latest_timestamp() + config.block_time)
            after_block(0, None)
        end = net.head()
        logs = net.rpc.call(
            "eth_getLogs",
            {
                "fromBlock": hex(start + 1),
                "toBlock": hex(end),
                "address": market.pool,
                "topics": [LIQUIDATION_CALL.topic],
            },
        )
        worth = _worth_usd(net, logs)
        caused = price_triggered(net, logs, flagged)
        reverts = Counter(_revert_of(net.rpc, a.tx_hash) for a in executor.attempts if a.outcome == "reverted")
    results = _tally(executor, logs, deployed_address, first_flagged, worth, settings.execution_min_profit_usd)
    results |= _by_trigger(executor, logs, deployed_address, caused)
    results |= {
        "competitor_liquidations_sim": sim.liquidations,
        "shocks": sim.shocks,
        "price_updates": sim.price_updates,
        "watcher_p50_ms": round(statistics.median(watcher_ms), 2) if watcher_ms else None,
        "blocks_run": end - start,
        "backlog_cleared": backlog,
        "precomputed_hits": executor.precomputed_hits,
        "deferred_to_next_block": executor.deferred,
        "sent_by_lane": dict(hook.sent_by_lane),
        "revert_reasons": dict(reverts),
        "liquidations_by_sim": dict(sim.liquidations_by),
        "svr_auctions": {"held": sim.svr_auctions_held, "missed": sim.svr_auctions_missed},
        "pending_lane": None if lane is None else lane.stats.summary(),
        "pending_late": executor.late_pending,
        # the simulator keeps the sender's gas money as the arena keeps its inventory (devnet/simulate.py)
        "operator_gas_topups": sim.gas_topups.get(executor.venue.operator, 0),
    }
    return run.report(results)


def _revert_of(rpc, tx_hash: str | None) -> str:
    """Why one of our transactions reverted: the innermost revert of its trace, by name where known."""
    try:
        trace = rpc.call("debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
    except Exception as error:  # a diagnostic only
        return f"untraced ({type(error).__name__})"
    output = (trace or {}).get("output") or ""
    return REVERTS.get(output[:10], trace.get("revertReason") or output[:10] or str(trace.get("error")))


def _worth_usd(net, logs: list[dict]) -> dict[tuple[str, int], float]:
    """Per LiquidationCall (transaction hash, log index): what it earned its liquidator before any cost, from the
    chain alone: the collateral received minus the debt repaid, at the oracle prices of its block."""
    market = net.market
    by_asset = {r.asset.lower(): r for r in market.reserves}
    prices = {b: oracle_prices(net.devnet, market, b) for b in {int(e["blockNumber"], 16) for e in logs}}
    worth = {}
    for entry in logs:
        fields = LIQUIDATION_CALL.decode(entry)
        block_prices = prices[int(entry["blockNumber"], 16)]
        coll, debt = by_asset[fields["collateralAsset"].lower()], by_asset[fields["debtAsset"].lower()]
        received = fields["liquidatedCollateralAmount"] * block_prices[coll.symbol] / 10**coll.decimals
        repaid = fields["debtToCover"] * block_prices[debt.symbol] / 10**debt.decimals
        worth[(entry["transactionHash"], int(entry["logIndex"], 16))] = (received - repaid) / 10**8
    return worth


def _tally(
    executor: FastPathExecutor,
    logs: list[dict],
    ours: str,
    first_flagged: dict[str, int],
    worth: dict[tuple[str, int], float],
    min_profit_usd: float,
) -> dict:
    """The run graded by the chain's LiquidationCall events. A liquidation whose bonus (collateral received -
    debt repaid at the oracle, before gas) is under EXECUTION_MIN_PROFIT_USD is no opportunity for a bot that
    must pay gas: `win_rate` counts every liquidation, `win_rate_profitable` the others."""
    won, lost_to, lost_by, lost_why = 0, Counter(), Counter(), Counter()
    lost_small, lost_small_usd, lost_usd = 0, 0.0, 0.0
    last_outcome = {a.user: a.outcome for a in executor.attempts}
    ours_per_block: Counter = Counter()
    for entry in logs:
        fields = LIQUIDATION_CALL.decode(entry)
        liquidator, user = fields["liquidator"].lower(), fields["user"].lower()
        block = int(entry["blockNumber"], 16)
        if liquidator == ours.lower():
            won += 1
            ours_per_block[(user, block)] += 1
            continue
        value = worth.get((entry["transactionHash"], int(entry["logIndex"], 16)), 0.0)
        if value < min_profit_usd:
            lost_small += 1
            lost_small_usd += value
        lost_usd += value
        who = role_of(liquidator) if role_of(liquidator) != "other" else liquidator
        lost_to[who] += 1
        ours_last = last_outcome.get(user)
        lost_why[ours_last or ("no profitable plan" if user in executor.unplanned else "not flagged")] += 1
        flagged = first_flagged.get(user)
        # blocks between the first block we could have landed in (flagged + 1) and the rival's
        lost_by[str(block - flagged - 1) if flagged is not None else "never flagged"] += 1
    attempts = executor.attempts
    sent = [a for a in attempts if a.tx_hash is not None]
    included = [a for a in attempts if a.outcome == "included"]
    latencies = [(a.sent_at - a.seen_at) * 1000 for a in sent if a.sent_at is not None and a.trigger == "sealed"]
    gaps = [
        abs(a.realized_profit_usd - a.expected_profit_usd) / abs(a.expected_profit_usd)
        for a in included
        if a.realized_profit_usd is not None and a.expected_profit_usd
    ]
    lost = sum(lost_to.values())
    return {
        "opportunities": won + lost,
        "won": won,
        "lost": lost,
        "reverted": sum(a.outcome == "reverted" for a in attempts),
        "sent": len(sent),
        "duplicate_sends": sum(n - 1 for n in ours_per_block.values() if n > 1) + _overlapping(sent),
        "win_rate": round(won / (won + lost), 4) if won + lost else None,
        "win_rate_profitable": round(won / (won + lost - lost_small), 4) if won + lost - lost_small else None,
        "lost_unprofitable": lost_small,
        "revert_share": round(sum(a.outcome == "reverted" for a in attempts) / len(sent), 4) if sent else None,
        "outcomes": dict(Counter(a.outcome for a in attempts)),
        "skipped_reasons": dict(Counter((a.reason or "")[:60] for a in attempts if a.outcome == "skipped")),
        "profit_expected_usd": round(sum(a.expected_profit_usd for a in included), 2),
        "profit_realized_usd": round(sum(a.realized_profit_usd or 0.0 for a in included), 2),
        "realized_vs_expected_max_rel": round(max(gaps), 6) if gaps else None,
        "realized_off_by_more_than_1pct": [
            {
                "user": a.user,
                "block_seen": a.block_seen,
                "expected_usd": round(a.expected_profit_usd, 4),
                "realized_usd": round(a.realized_profit_usd, 4),
                "trigger": a.trigger,
            }
            for a in included
            if a.realized_profit_usd is not None
            and abs(a.realized_profit_usd - a.expected_profit_usd) > 0.01 * abs(a.expected_profit_usd)
        ][:5],
        "plan_mismatches": len(executor.mismatches),
        "mismatch_examples": [
            {
                "user": user,
                "block": block,
                "transaction_index": index,
                "event": [e.debt_repaid, e.collateral_received, e.swap_out],
                "plan": list(w),
            }
            for user, block, e, w, index in executor.mismatches[:3]
        ],
        "reverted_examples": [
            {"user": a.user, "block_seen": a.block_seen, "included": a.block_included, "tx": a.tx_hash}
            for a in attempts
            if a.outcome == "reverted"
        ][:3],
        "slowest_sends": [
            {"block_seen": a.block_seen, "trigger": a.trigger, "ms": round((a.sent_at - a.seen_at) * 1000, 1)}
            for a in sorted(sent, key=lambda a: a.seen_at - a.sent_at)[:5]
        ],
        "latency_p50_ms": round(percentile(latencies, 0.50), 2) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "losses": {
            "bonus_usd": round(lost_usd, 2),  # what the liquidations we lost earned their liquidator, before gas
            "unprofitable_bonus_usd": round(lost_small_usd, 2),
            "to": dict(lost_to),
            "by_blocks": dict(sorted(lost_by.items())),
            "our_last_attempt": dict(lost_why),
        },
    }


def _by_trigger(executor: FastPathExecutor, logs: list[dict], ours: str, caused: set[tuple[str, int]]) -> dict:
    """The run by what made each liquidation possible: a price update (`caused`, graded by the chain) or not; what
    the SVR auction took and what it left to public bots; our pending lane's latency."""
    taken = {"ours": 0, "svr": 0, "other": 0}
    won_caused = lost_caused = 0
    for entry in logs:
        fields = LIQUIDATION_CALL.decode(entry)
        liquidator = fields["liquidator"].lower()
        who = "ours" if liquidator == ours.lower() else "svr" if liquidator == SVR_SEARCHER.lower() else "other"
        taken[who] += 1
        if (entry["transactionHash"], int(entry["logIndex"], 16)) in caused and who != "svr":
            won_caused += who == "ours"
            lost_caused += who == "other"
    total = sum(taken.values())
    public = total - taken["svr"]
    everything = [*executor.attempts, *(f.attempt for f in executor.in_flight.values())]
    sent = [a for a in everything if a.trigger == "pending" and a.sent_at]
    pending = sorted((a.sent_at - a.seen_at) * 1000 for a in sent)
    # each send's latency is at least its node wait (FastPathExecutor.node_wait_ms): with the same requests, the
    # p99 of the waits is a floor under the p99 of the latencies
    waits = [executor.node_wait_ms[k] for k in {a.attempt_key for a in sent} if k in executor.node_wait_ms]
    return {
        "price_triggered": won_caused + lost_caused,
        "won_price_triggered": won_caused,
        "win_rate_price_triggered": round(won_caused / (won_caused + lost_caused), 4)
        if won_caused + lost_caused
        else None,
        "left_to_public_share": round(public / total, 4) if total else None,
        "win_rate_public": round(taken["ours"] / public, 4) if public else None,
        "sent_by_trigger": dict(Counter(a.trigger for a in executor.attempts if a.tx_hash is not None)),
        "pending_to_sent_p50_ms": round(percentile(pending, 0.50), 2) if pending else None,
        "pending_to_sent_p99_ms": round(percentile(pending, 0.99), 2) if pending else None,
        "pending_to_sent_node_wait_p99_ms": round(percentile(waits, 0.99), 2) if waits else None,
    }


def _overlapping(sent: list) -> int:
    """Sends of one opportunity while an earlier send of it had not settled (what idempotency must prevent)."""
    by_key: dict[tuple, list] = {}
    for a in sent:
        by_key.setdefault((a.user, a.debt_asset, a.collateral_asset), []).append(a)
    count = 0
    for group in by_key.values():
        group.sort(key=lambda a: a.block_sent or 0)
        for earlier, later in itertools.pairwise(group):
            settled = earlier.block_included
            if settled is None or (later.block_sent or 0) < settled:
                count += 1
    return count
