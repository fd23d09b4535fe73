"""`liq arena`: the executor against the simulator's competitor on the devnet's living market, and who wins.

The devnet (DEVNET_PROTOCOL_VERSION, 3.6 by default) runs from its state cache with its DEX; the project's
Liquidator contract is deployed for the devnet's operator key. Each simulated block (prices, newcomers, repays,
the DEX arbitraged to the oracle, the competitor's liquidations) is followed at once by the watcher (positions and
the engine) and the FastPathExecutor (plan, claim, eth_estimateGas, sign, send), live: its transactions wait in
anvil's pool for the next block, where anvil orders by priority fee, as Base's sequencer does.

The competitor (devnet/simulate.py) liquidates a user `liquidation_delay` blocks after it first saw HF < 1 at the
end of a block. Our transaction for that block lands in the next one, so `competitor_delay` D = 0 races us in the
same block (fees decide) and D = 1 is one block slower than us.

Graded by the chain, not by the executor: every LiquidationCall of the run is counted by its liquidator (our
contract or another), and every included attempt's Liquidated event is compared with its plan.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..cache.keys import MarketKeys
from ..chain.abi import event_topic, events
from ..config import Settings
from ..devnet import protocols
from ..devnet.accounts import COMPETITOR, OPERATOR, OPERATOR_KEY
from ..devnet.dex import find_dex
from ..devnet.liquidator import deploy_liquidator, flash_premium_bps, fund_inventory
from ..devnet.simulate import SimConfig, simulate
from ..devnet.txs import Chain
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..execution.executor import ExecutorConfig, FastPathExecutor, Venue
from ..execution.gas_ladder import LadderConfig
from ..execution.idempotency import AttemptGuard, NonceLock, execution_client
from ..execution.signer import Signer
from ..risk.blas import use_one_blas_thread
from ..risk.market import user_positions
from ..risk.versions import rules_for
from ..watch.watcher import Watcher
from .report import BenchRun, percentile, quiet
from .services import live_devnet, scratch_redis

LIQUIDATION_CALL = events("Pool")[event_topic("Pool", "LiquidationCall")]
SETTLE_BLOCKS = 3  # empty blocks after the run: what is in flight is included or not
# Debt assets the Liquidator holds per reserve (inventory mode): where the DEX's $2M pools are too shallow for a
# flash loan's swap (hundreds of stablecoin users crossing at once), a bot with inventory keeps the collateral.
INVENTORY_USD = 1_000_000


def run_arena(
    settings: Settings,
    blocks: int,
    competitor_delay: int = 1,
    borrowers: int = 2_000,
    seed: int = 0,
    vol_scale: float = 10.0,
    protocol: str | None = None,
    inventory_usd: float = INVENTORY_USD,
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
        },
    )
    data_dir = Path(settings.data_dir).absolute() / "arena"
    say(f"Aave V{version} devnet with {borrowers} borrowers (cached after the first run)")
    with live_devnet(data_dir, borrowers, seed, protocol=version) as net, scratch_redis("liq-arena-") as redis_url:
        market = net.market
        deployed = deploy_liquidator(net.devnet, market, data_dir, OPERATOR)
        if inventory_usd:
            fund_inventory(net.devnet, market, deployed.address, inventory_usd)
        dex = find_dex(net.devnet, market)
        if dex is None:
            raise RuntimeError("the devnet has no DEX: its state cache predates it (delete DATA_DIR/arena)")
        ids = {r.asset.lower(): r.reserve_id for r in market.reserves}
        venue = Venue(
            liquidator=deployed.address,
            operator=OPERATOR,
            pairs={(ids[p.token0.lower()], ids[p.token1.lower()]): p.pair for p in dex.pairs},
            compact=version != "3.0",
            flash_premium_bps=flash_premium_bps(net.devnet, market),
            eth_reserve_id=market.by_symbol["WETH"].reserve_id,
            inventory=inventory_usd > 0,
        )
        client = execution_client(redis_url, timeout=0.5)
        keys = MarketKeys.for_market(market.chain_id, market.pool)
        executor = FastPathExecutor(
            net.rpc,
            keys,
            venue,
            AttemptGuard(client, settings.execution_attempt_ttl_sec, owner="arena"),
            ExecutorConfig(
                live=True, min_profit_usd=settings.execution_min_profit_usd, ladder=LadderConfig.from_settings(settings)
            ),
            signer=Signer.from_private_key(OPERATOR_KEY, market.chain_id, variable="the devnet operator key"),
            nonce_lock=NonceLock(client, market.chain_id, OPERATOR),
        )
        rules = rules_for(version)
        start = net.head()
        tracker = Tracker.bootstrap(net.rpc, market.addresses_provider, rules, 0, start, settings.stable_asset_symbols)
        watcher = Watcher(net.rpc, tracker, engine_params(settings), None)
        first_flagged: dict[str, int] = {}
        watcher_ms: list[float] = []

        def after_block(_index: int, _partial) -> None:
            seen = time.time()
            if not watcher.step() or watcher.last_result is None:
                return
            watcher_ms.append((time.time() - seen) * 1000)
            state = tracker.market_state()
            below = watcher.last_result.users.filter(pl.col("hf_current") < 1.0)["user"].to_list()
            for user in below:
                first_flagged.setdefault(user.lower(), tracker.block)
            frame = tracker.positions.filter(pl.col("user").is_in(below))
            executor.on_block(state, user_positions(frame, state.reserve_ids), seen)

        say(f"{blocks} blocks, the competitor {competitor_delay} block(s) behind us")
        config = SimConfig(blocks=blocks, liquidation_delay=1 + competitor_delay, seed=seed, vol_scale=vol_scale)
        sim = simulate(net.devnet, market, config, net.borrowers(), on_block=after_block, dex=dex)
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
    results = _tally(executor, logs, deployed.address, first_flagged)
    results |= {
        "competitor_liquidations_sim": sim.liquidations,
        "shocks": sim.shocks,
        "price_updates": sim.price_updates,
        "watcher_p50_ms": round(statistics.median(watcher_ms), 2) if watcher_ms else None,
        "blocks_run": end - start,
    }
    return run.report(results)


def _tally(executor: FastPathExecutor, logs: list[dict], ours: str, first_flagged: dict[str, int]) -> dict:
    won, lost_to, lost_by, lost_why = 0, Counter(), Counter(), Counter()
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
        "revert_share": round(sum(a.outcome == "reverted" for a in attempts) / len(sent), 4) if sent else None,
        "outcomes": dict(Counter(a.outcome for a in attempts)),
        "skipped_reasons": dict(Counter((a.reason or "")[:60] for a in attempts if a.outcome == "skipped")),
        "profit_expected_usd": round(sum(a.expected_profit_usd for a in included), 2),
        "profit_realized_usd": round(sum(a.realized_profit_usd or 0.0 for a in included), 2),
        "realized_vs_expected_max_rel": round(max(gaps), 6) if gaps else None,
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
