"""`liq bench-watch --synthetic`: the watcher's Tracker, engine and Redis writes on generated blocks, no node.

For sizes beyond what anvil can seed (Base's ~1M borrowers). The market and the borrowers are the generated
sample market (risk/synthetic.py: ten Base-like reserves, 1-4 collateral and 1-2 debt legs, e-mode, dust and
whales, 10 % liquidatable). The blocks are generated ahead of their turn, outside the measured time, in the shape
a node would answer them:
- prices walk at the devnet simulator's pace (devnet/simulate.py's parameters: each asset's annual volatility
  from the devnet spec x `vol_scale`, a common factor with correlation 0.6 between volatile assets, stablecoins
  mean-reverting around their peg) and a feed publishes only when its answer moves 5 bps or more, so most blocks
  carry no price update; with shocks (default) a market-wide move of 5-25 % now and then (0.4 % of blocks);
- 2 s between blocks, so interest accrues (the indices are normalized at the block's timestamp);
- a few hundred touched users per block (Poisson, mean `touched`): borrowing more, repaying, supplying or
  withdrawing part of a collateral, closing the position, and newcomers (a new address with a generated
  portfolio).

The seam: `SyntheticTracker` is the watcher's `Tracker` with the two node reads replaced (`advance`: the block's
logs, header and market; `refresh_users`: the touched users' positions), each taking the generated block instead
of a JSON-RPC answer (`refresh_users` repeats Tracker.refresh_users' lines after its read); the position book's
in-place update, the price windows, trends, the engine and `Watcher.process` (called per block: `Watcher.step`
polls the node's head) with its candidate writes (to a scratch embedded Redis) are the production code.
Latency = `Watcher.process` called for the block -> its candidates written to Redis (a node's read time is not in
it: there is no node).

Memory: `hot_state_bytes_per_borrower` counts what the watcher keeps between blocks per borrower (the book's
float mirrors and flags, its exact Int128 frame, the user index, the last evaluation's arrays, the candidate
writer's); `rss_bytes_per_borrower` the process's resident memory grown since before the market was generated,
per borrower (it includes the allocator's free pages and the last block's temporaries).
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from prometheus_client import generate_latest
from pydantic import SecretStr

from ..cache import open_market_cache
from ..cache.candidates import candidates_block
from ..config import Settings
from ..devnet.simulate import DEFAULT_MOVES, EXTRA_MOVES, SimConfig
from ..devnet.spec import spec_by_symbol
from ..evaluation.params import engine_params
from ..evaluation.tracker import BlockDelta, Tracker
from ..metrics import BlockMetrics
from ..risk.blas import use_one_blas_thread
from ..risk.market import MarketState, coll_col, debt_col
from ..risk.synthetic import sample
from ..watch.watcher import Watcher
from .report import BenchRun, Stopwatch, median, percentile, quiet
from .services import scratch_redis
from .watch import block_summary, by_kind, p50_by_kind

BLOCK_TIME = 2  # seconds, Base's
YEAR = 365 * 24 * 3600
SYNTHETIC_CHAIN_ID = 8453_0000  # the Redis keys' market: not a real chain id
SYNTHETIC_POOL = "0x" + "5e" * 20
NEAR_ONE_SHARE = 0.005  # as `liq bench`: users within 1e-6 of HF 1 keep the exact path busy


@dataclass
class SyntheticBlock:
    """One generated block: what the node would answer for it."""

    number: int
    header: dict
    state: MarketState
    touched: list[str]
    fresh: pl.DataFrame  # the touched users' positions at this block (users without a position left: absent)
    price_updates: int
    shock: bool


class SyntheticTracker(Tracker):
    """The watcher's Tracker fed generated blocks where it would read the node."""

    pending: SyntheticBlock | None = None

    def advance(self, to_block: int) -> BlockDelta:
        block = self.pending
        if block is None or block.number != to_block:
            raise RuntimeError(f"no generated block {to_block}")
        previous = self.block
        self.block = to_block
        self._state = block.state
        self._observe_prices(block.state)
        self.refresh_users(block.touched)
        return BlockDelta(previous, to_block, block.touched, block.price_updates, header=block.header)

    def refresh_users(self, users: list[str]) -> None:
        """As Tracker.refresh_users, with the generated positions instead of a Multicall3 read."""
        if not users:
            return
        self._replace_users(users, self.pending.fresh)

    def market_state(self) -> MarketState:
        if self._state is None or self._state.block != self.block:
            raise RuntimeError(f"no generated market at block {self.block}")
        return self._state


class BlockGenerator:
    """Generated blocks after a starting market and positions (see the module's docstring)."""

    def __init__(
        self,
        market: MarketState,
        positions: pl.DataFrame,
        seed: int,
        touched: float,
        vol_scale: float,
        shocks: bool,
    ):
        self.rng = np.random.default_rng(seed + 1)
        self.market = market
        self.touched = touched
        self.vol_scale = vol_scale
        self.config = SimConfig(blocks=0, seed=seed, shock_probability=SimConfig.shock_probability if shocks else 0.0)
        specs = spec_by_symbol()
        self.moves = {
            r.symbol: (specs[r.symbol].annual_volatility, specs[r.symbol].annual_drift)
            if r.symbol in specs
            else EXTRA_MOVES.get(r.symbol, DEFAULT_MOVES)
            for r in market.reserves
        }
        self.peg = {r.symbol: r.price / 1e8 for r in market.reserves}
        self.true = dict(self.peg)
        self.published = {r.symbol: r.price for r in market.reserves}
        self.last_update = {r.symbol: 0 for r in market.reserves}
        self.ids = list(market.reserve_ids)
        self.amounts = [c for r in self.ids for c in (coll_col(r), debt_col(r))]
        self.templates = positions  # newcomers' portfolios are drawn from the starting ones
        self.newcomers = 0
        self.index = 0

    def _prices(self) -> tuple[dict[str, int], bool]:
        """One block of the devnet simulator's price walk: (answers published, whether a shock happened)."""
        cfg, rng = self.config, self.rng
        dt = BLOCK_TIME / YEAR
        common = rng.standard_normal()
        shock = 0.0
        if rng.random() < cfg.shock_probability:
            size = rng.uniform(*cfg.shock_range)
            shock = size if rng.random() < cfg.shock_up_share else -size
        for symbol, (annual_vol, annual_drift) in self.moves.items():
            vol = annual_vol * self.vol_scale
            if annual_vol < 0.05:  # stablecoins: mean reversion around the peg
                gap = self.true[symbol] / self.peg[symbol] - 1.0
                move = -0.05 * gap + vol * math.sqrt(dt) * rng.standard_normal() + shock * 0.02
                self.true[symbol] = self.peg[symbol] * (1.0 + gap + move)
                continue
            z = cfg.correlation * common + math.sqrt(1 - cfg.correlation**2) * rng.standard_normal()
            log_return = (annual_drift - vol * vol / 2) * dt + vol * math.sqrt(dt) * z + math.log1p(shock)
            self.true[symbol] *= math.exp(log_return)
        publish = {}
        for symbol in self.moves:
            answer = max(1, round(self.true[symbol] * 1e8))
            moved = abs(answer - self.published[symbol]) * 10_000 >= cfg.deviation_bps * self.published[symbol]
            if moved or self.index - self.last_update[symbol] >= cfg.heartbeat_blocks:
                publish[symbol] = answer
                self.published[symbol] = answer
                self.last_update[symbol] = self.index
        return publish, bool(shock)

    def next_block(self, positions: pl.DataFrame) -> SyntheticBlock:
        """The block after the last one, its touched users' positions generated from `positions` (the tracker's)."""
        self.index += 1
        publish, shock = self._prices()
        market = self.market
        state = replace(
            market,
            block=market.block + 1,
            timestamp=market.timestamp + BLOCK_TIME,
            reserves=tuple(replace(r, price=self.published[r.symbol]) for r in market.reserves),
        )
        self.market = state
        touched, fresh = self._positions(positions)
        header = {
            "hash": f"0x{state.block:064x}",
            "parentHash": f"0x{state.block - 1:064x}",
            "timestamp": hex(state.timestamp),
        }
        return SyntheticBlock(state.block, header, state, touched, fresh, len(publish), shock)

    def _positions(self, positions: pl.DataFrame) -> tuple[list[str], pl.DataFrame]:
        """Touched users and their new positions: borrow more, repay, supply or withdraw part of a collateral,
        close, or arrive (newcomers)."""
        rng = self.rng
        count = min(int(rng.poisson(self.touched)), positions.height)
        if count == 0:
            return [], positions.clear()
        rows = np.sort(rng.choice(positions.height, size=count, replace=False))
        kind = rng.random(count)
        closing = kind < 0.05  # repaid everything and withdrew: no position left (absent from the answer)
        arriving = int((kind >= 0.95).sum())  # newcomers instead of existing users
        kept = rows[~closing & (kind < 0.95)]
        picked = positions[kept]
        k = picked.height
        coll_factor = np.where(rng.random(k) < 0.3, rng.uniform(0.7, 1.3, k), 1.0)  # supply / withdraw
        debt_factor = np.where(rng.random(k) < 0.6, rng.uniform(0.5, 1.25, k), 1.0)  # repay / borrow
        factors = pl.DataFrame({"_c": coll_factor, "_d": debt_factor})
        scaled = pl.concat([picked, factors], how="horizontal").with_columns(
            *[
                (pl.col(c).cast(pl.Float64) * pl.col("_c" if c.startswith("coll_") else "_d")).cast(pl.Int128)
                for c in self.amounts
            ]
        )
        fresh = scaled.drop("_c", "_d")
        if arriving:
            templates = self.templates[rng.choice(self.templates.height, size=arriving, replace=False).tolist()]
            names = [f"0x{0xA11CE << 136 | (self.newcomers + i):040x}" for i in range(arriving)]
            self.newcomers += arriving
            fresh = pl.concat([fresh, templates.with_columns(pl.Series("user", names))])
        closed = positions["user"].gather(rows[closing]).to_list()
        return [*fresh["user"].to_list(), *closed], fresh


def run_bench_watch_synthetic(
    settings: Settings,
    users: int,
    blocks: int,
    seed: int = 0,
    say: Callable[[str], None] = quiet,
    shocks: bool = True,
    vol_scale: float = 1.0,
    touched: float = 300.0,
    version: str = "3.0",
) -> dict:
    use_one_blas_thread()
    options = {
        "users": users,
        "blocks": blocks,
        "seed": seed,
        "shocks": shocks,
        "vol_scale": vol_scale,
        "touched": touched,
        "version": version,
    }
    run = BenchRun("watch_synthetic", options)
    rss_before = _rss_bytes()
    say(f"generating {users:,} borrowers")
    with Stopwatch() as generating:
        generated = sample(users, version=version, seed=seed, near_one_share=NEAR_ONE_SHARE)
    with scratch_redis("bench-watch-synthetic-") as redis_url:
        own = settings.model_copy(
            update={"redis_url": SecretStr(redis_url), "aave_protocol_version": version, "predictive_enabled": True}
        )
        results = _measure(own, generated.market, generated.positions, blocks, seed, say, shocks, vol_scale, touched)
    results["generate_s"] = round(generating.seconds, 2)
    results["rss_bytes_per_borrower"] = round((results.pop("_rss_end") - rss_before) / max(1, users))
    return run.report({"users": users, "protocol": version, **results})


def _measure(
    settings: Settings,
    market: MarketState,
    positions: pl.DataFrame,
    blocks: int,
    seed: int,
    say: Callable[[str], None],
    shocks: bool,
    vol_scale: float,
    touched: float,
) -> dict:
    cache = open_market_cache(settings, SYNTHETIC_CHAIN_ID, SYNTHETIC_POOL)
    tracker = SyntheticTracker(None, market, market.rules, positions, market.block, price_window=60, ema_span=20)
    tracker._state = market
    tracker._observe_prices(market)
    metrics = TimedMetrics()  # the watcher's Prometheus metrics, as `liq watch` feeds them: what they cost a block
    watcher = Watcher(None, tracker, engine_params(settings), cache, metrics=metrics)
    generator = BlockGenerator(market, positions, seed, touched, vol_scale, shocks)
    say("warm-up block: the book, the first evaluation, the first (full) write")
    with Stopwatch() as warming:
        tracker.pending = generator.next_block(tracker.positions)
        watcher.process(tracker.pending.number)
    price_updates = shock_blocks = 0
    generate_ms = []
    say(f"{blocks} generated blocks")
    for _ in range(blocks):
        with Stopwatch() as making:  # the node's part: not measured
            tracker.pending = block = generator.next_block(tracker.positions)
        generate_ms.append(making.ms(2))
        price_updates += block.price_updates
        shock_blocks += block.shock
        watcher.process(block.number)
    rss_end = _rss_bytes()
    metrics.observe_ms = metrics.observe_ms[1:]  # without the warm-up
    with Stopwatch() as scraping:  # what Prometheus asks every scrape interval (15 s), on the exporter's thread
        generate_latest(metrics.registry)
    redis = cache.cache  # what the bots would read: the last block's candidates
    written = {
        "redis_candidates": int(redis.client.zcard(redis.keys.candidates_zset)),
        "redis_candidates_block": candidates_block(redis),
        "redis_used_memory_mb": round(redis.client.info("memory")["used_memory"] / 1e6, 1),
    }
    records = watcher.stats.records[1:]  # without the warm-up
    latencies = [r.latency_ms for r in records]
    phases = {name: median((r.phases_ms.get(name, 0.0) for r in records), 2) for name in ("read", "evaluate", "write")}
    hot = _hot_state(watcher)
    borrowers = tracker.users
    return {
        "users_tracked": borrowers,
        "blocks": len(records),
        "last_block": tracker.block,
        "p50_ms": median(latencies, 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "phases_p50_ms": phases,
        "p50_ms_by_kind": p50_by_kind(records),
        "p99_ms_by_kind": _p99_by_kind(records),
        "carried_blocks": sum(r.carried for r in records),
        "users_evaluated_median": int(median((r.evaluated for r in records), 1) or 0),
        "touched_per_block_mean": round(statistics.mean(r.touched for r in records), 2) if records else 0,
        "price_updates": price_updates,
        "shocks": shock_blocks,
        "candidates_last_block": records[-1].candidates if records else {},
        **written,
        "slowest": [block_summary(r) for r in sorted(records, key=lambda r: -r.latency_ms)[:3]],
        "hot_state_bytes_per_borrower": round(sum(hot.values()) / max(1, borrowers)),
        "hot_state_bytes": hot,
        "_rss_end": rss_end,
        "warmup_s": round(warming.seconds, 2),
        "generate_block_ms_p50": median(generate_ms, 2),
        # BlockMetrics.observe per block (after the candidates are written: not in the latency), against the
        # block's own latency in the same run; and one scrape of the registry
        "metrics_observe_ms_p50": median(metrics.observe_ms, 3),
        "metrics_observe_vs_block_p50": round(median(metrics.observe_ms, 6) / median(latencies, 6), 4)
        if records
        else None,
        "metrics_scrape_ms": scraping.ms(2),
    }


class TimedMetrics(BlockMetrics):
    """BlockMetrics whose per-block `observe` is timed (the HF distribution of every tracked user is its cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.observe_ms: list[float] = []

    def observe(self, *args, **kwargs) -> None:
        began = time.perf_counter()
        super().observe(*args, **kwargs)
        self.observe_ms.append((time.perf_counter() - began) * 1e3)


def _p99_by_kind(records) -> dict[str, float]:
    return {kind: round(percentile([r.latency_ms for r in group], 0.99), 2) for kind, group in by_kind(records).items()}


def _rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize()


def _array_bytes(value: object, seen: set[int], depth: int = 0) -> int:
    """Bytes of the numpy buffers held by `value` (its attributes, dicts, lists, tuples; 3 levels), each buffer
    counted once."""
    if isinstance(value, np.ndarray):
        base = value
        while isinstance(base.base, np.ndarray):
            base = base.base
        if id(base) in seen:
            return 0
        seen.add(id(base))
        return base.nbytes
    if depth >= 3 or isinstance(value, str | bytes | int | float | pl.DataFrame):
        return 0
    if isinstance(value, dict):
        return sum(_array_bytes(v, seen, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_array_bytes(v, seen, depth + 1) for v in value[:64])
    attributes = getattr(value, "__dict__", None)
    if attributes is None:
        return 0
    return sum(_array_bytes(v, seen, depth + 1) for v in attributes.values())


def _hot_state(watcher: Watcher) -> dict[str, int]:
    """What the watcher keeps between blocks, in bytes, by part."""
    tracker = watcher.tracker
    book = tracker._book
    seen: set[int] = set()
    users = book._users
    return {
        "book_arrays": _array_bytes(book, seen),
        "exact_frame": int(book.positions.estimated_size()),
        "user_index": sys.getsizeof(users)
        + sum(sys.getsizeof(u) for u in users)
        + sys.getsizeof(book._row_of)
        + 28 * len(users),  # the dict's int values (small ints up to 256 are shared; the rest are objects)
        "evaluation_arrays": _array_bytes(tracker._previous, seen) + _array_bytes(tracker._screen, seen),
        "writer_arrays": _array_bytes(watcher.candidates, seen) + _array_bytes(watcher, seen),
    }
