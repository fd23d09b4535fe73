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
from ..config import Settings
from ..devnet import protocols
from ..devnet.accounts import COMPETITOR
from ..devnet.actions import oracle_prices
from ..devnet.backlog import clear_backlog
from ..devnet.liquidator import restock_txs
from ..devnet.simulate import SimConfig, simulate
from ..devnet.txs import Chain
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..execution.executor import REVERTS, FastPathExecutor
from ..execution.hot_path import ExecutionHook
from ..risk.blas import use_one_blas_thread
from ..risk.versions import rules_for
from ..watch.watcher import Watcher
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
) -> dict:
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

        def on_evaluated(block: int, result, seen_at: float) -> None:
            hook(block, result, seen_at)  # first: the path being measured
            below = result.book.positions["user"].gather(np.flatnonzero(result.hf_current < 1.0))
            for user in below.to_list():
                first_flagged.setdefault(user.lower(), block)

        watcher = Watcher(
            net.rpc,
            tracker,
            engine_params(settings),
            None,
            on_evaluated=on_evaluated,
            on_block=hook.after_write,
            on_read=hook.fast,
        )
        watcher_ms: list[float] = []

        def after_block(_index: int, _partial) -> None:
            if step(watcher):
                phases = watcher.stats.records[-1].phases_ms
                watcher_ms.append(phases["read"] + phases["evaluate"])  # the watcher's part, before the executor

        say(f"{blocks} blocks, the competitor {competitor_delay} block(s) behind us")
        config = SimConfig(blocks=blocks, liquidation_delay=1 + competitor_delay, seed=seed, vol_scale=vol_scale)
        refill = None
        if restock and inventory_usd:

            def refill() -> list:
                return restock_txs(net.devnet, market, deployed_address, inventory_usd)

        sim = simulate(net.devnet, market, config, net.borrowers(), on_block=after_block, dex=dex, extra_txs=refill)
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
        reverts = Counter(_revert_of(net.rpc, a.tx_hash) for a in executor.attempts if a.outcome == "reverted")
    results = _tally(executor, logs, deployed_address, first_flagged, worth, settings.execution_min_profit_usd)
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
        who = "competitor" if liquidator == COMPETITOR.lower() else liquidator
        lost_to[who] += 1
        ours_last = last_outcome.get(user)
        lost_why[ours_last or ("no profitable plan" if user in executor.unplanned else "not flagged")] += 1
        flagged = first_flagged.get(user)
        # blocks between the first block we could have landed in (flagged + 1) and the rival's
        lost_by[str(block - flagged - 1) if flagged is not None else "never flagged"] += 1
    attempts = executor.attempts
    sent = [a for a in attempts if a.tx_hash is not None]
    included = [a for a in attempts if a.outcome == "included"]
    latencies = [(a.sent_at - a.seen_at) * 1000 for a in sent if a.sent_at is not None]
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
