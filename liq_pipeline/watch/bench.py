"""`liq bench-watch`: block -> candidates-written latency of the watcher on real devnet positions.

The borrowers are real positions on the devnet (seeded once, cached as a state dump in DATA_DIR/bench-watch and
reused). Each block carries traffic like a live market: price updates on three feeds (a random walk), and, when
some user is liquidatable, a competitor's liquidationCall. The watcher (with the embedded Redis, as in production)
processes each block as soon as it is mined; latency = time the block was seen -> candidates written to Redis.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from ..cache import open_market_cache
from ..cache.server import EmbeddedRedis
from ..config import Settings
from ..evaluation.params import engine_params
from ..evaluation.tracker import Tracker
from ..risk.versions import rules_for
from .watcher import Watcher

MOVING = ("WETH", "WBTC", "AERO")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_bench_watch(
    settings: Settings, borrowers: int, blocks: int, seed: int = 0, say: Callable[[str], None] = lambda _m: None
) -> dict:
    from ..chain.rpc import RpcClient
    from ..devnet import actions, anvil, state_cache
    from ..devnet.errors import DevnetError
    from ..devnet.rpc import Rpc

    data_dir = Path(settings.data_dir).absolute() / "bench-watch"
    say(f"preparing {borrowers} borrowers (cached after the first run)")
    started = time.perf_counter()
    entry, built = state_cache.ensure(data_dir, borrowers, seed)
    prepare_s = time.perf_counter() - started
    node, market = state_cache.start_from(entry, prune_history=True)  # the watcher reads at the head only
    redis = EmbeddedRedis(data_dir / "redis")
    devnet = Rpc(node.url)
    rpc = RpcClient(node.url)
    try:
        own = settings.model_copy(update={"redis_url": SecretStr(redis.ensure_running().url)})  # the bench's server
        cache = open_market_cache(own, market.chain_id, market.pool)
        head = int(rpc.call("eth_blockNumber"), 16)
        say("bootstrapping the watcher from the chain's events")
        started = time.perf_counter()
        tracker = Tracker.bootstrap(
            rpc, market.addresses_provider, rules_for(market.protocol_version), 0, head,
            settings.stable_asset_symbols,
        )  # fmt: skip
        bootstrap_s = time.perf_counter() - started
        predictive = settings.model_copy(update={"predictive_enabled": True})  # the path being measured
        watcher = Watcher(rpc, tracker, engine_params(predictive), cache)
        watcher.step()  # warm-up: first evaluation, first writes
        rng = random.Random(seed)
        prices = actions.oracle_prices(devnet, market)
        liquidations = 0
        say(f"{blocks} blocks with traffic")
        for index in range(blocks):
            for symbol in MOVING:
                prices[symbol] = max(1, int(prices[symbol] * (1 + rng.gauss(-0.001, 0.006))))
            actions.set_prices(devnet, market, {s: prices[s] for s in MOVING})
            watcher.step()
            if index % 3 == 2:
                due = _liquidatable(watcher)
                if due:
                    try:
                        actions.liquidate(devnet, market, due)
                        liquidations += 1
                        watcher.step()
                    except DevnetError:
                        pass
        records = watcher.stats.records[1:]  # without the warm-up
        latencies = [r.latency_ms for r in records]
        expected = list(range(records[0].block, records[-1].block + 1)) if records else []
        return {
            "borrowers": borrowers,
            "users_tracked": tracker.users,
            "blocks": len(records),
            "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
            "p99_ms": round(_percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2) if latencies else None,
            "missed_blocks": len(set(expected) - {r.block for r in records}),
            "liquidations": liquidations,
            "touched_per_block_mean": round(statistics.mean(r.touched for r in records), 2) if records else 0,
            "bootstrap_s": round(bootstrap_s, 2),
            "prepare_s": round(prepare_s, 2),
            "state_cache_built": built,
        }
    finally:
        rpc.close()
        devnet.close()
        anvil.stop(node)
        redis.stop()


def _liquidatable(watcher: Watcher) -> str | None:
    """A user the engine holds as liquidatable now (the competitor's pick)."""
    from ..risk.health import health_factors

    state = watcher.tracker.market_state()
    hf = health_factors(watcher.tracker.book(state), state)
    rows = hf.filter(hf["liquidatable_baseline"])["user"].to_list()
    return rows[0] if rows else None
