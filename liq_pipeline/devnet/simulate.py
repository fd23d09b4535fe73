"""A living market: prices walk, time passes, borrowers come and go, a competitor liquidates.

Per block (one mined block each, `block_time` seconds apart, so interest accrues like on Base):
- prices: a correlated log-normal walk with drift per volatile asset (annual volatility x `vol_scale`), stablecoins
  mean-revert around their peg, and occasionally a market-wide shock (-5 to -25 %, sometimes upward: a user who
  borrowed WETH against USDC is hurt by WETH going UP). A feed publishes (AnswerUpdated) when its answer moves
  by `deviation_bps` or more, like a Chainlink deviation threshold.
- newcomers arrive (Poisson), borrowing within the real LTVs; the liquidity provider supplies their liquidity one
  block ahead, because transactions of different senders in one block run in no guaranteed order.
- some borrowers repay (part or all) and some withdraw part of a collateral.
- a competitor liquidator watches health factors with getUserAccountData and liquidates a user whose HF is
  below 1 `liquidation_delay` blocks after it first saw it; a still-unhealthy user is liquidated again later.
  It chooses each liquidation with risk/liquidation.py from the positions and market read with the chain
  reader (actions.LiquidationPlanner): the (collateral, debt) pair and debtToCover that repay the most among those
  the Pool accepts under both orders of the block's price updates (max uint when accepted; V3.6's dust rule
  otherwise asks for less), so a liquidation reverts only when the model is wrong. V3.6: through L2Pool's compact
  liquidationCall.
- the DEX (devnet/dex.py), when the chain has one: every pool off the oracle is swapped back to the block's
  published prices by dex.ARBITRAGEUR, in the same block as the price updates (the swaps are computed from the
  reserves before the block; nothing else swaps on the pairs in the simulator's blocks).
Deterministic for a seed and a starting chain.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .abi import call_data
from .accounts import COMPETITOR, GAS_MONEY, LIQUIDITY_PROVIDER
from .actions import (
    LiquidationPlanner,
    account_data,
    liquidation_events,
    liquidation_txs,
    oracle_prices,
    price_txs,
    user_reserves,
)
from .anvil import BLOCK_TIME
from .dex import ARBITRAGEUR, Dex, arbitrage_swaps, find_dex, read_reserves, swap_txs
from .market import Market
from .rpc import Rpc
from .seed import Portfolio, borrower_txs, liquidity_txs, plan_portfolios
from .spec import spec_by_symbol
from .txs import Chain, Tx
from .v36 import bulk

# Price walk parameters (annual volatility, annual drift) per symbol: the V3.0 spec's, and for assets only the
# V3.6 market lists, here (v36/spec.py shapes the cached chain; these shape only the simulated traffic).
EXTRA_MOVES: dict[str, tuple[float, float]] = {
    "wstETH": (0.62, 0.08),  # ETH's moves plus staking yield; correlated with the rest through the common factor
}
DEFAULT_MOVES = (0.5, 0.0)

MAX_UINT = 2**256 - 1
YEAR = 365 * 24 * 3600
WAD = 10**18


@dataclass(frozen=True)
class SimConfig:
    blocks: int
    block_time: int = BLOCK_TIME
    liquidation_delay: int = 3  # blocks between first seeing HF < 1 and the competitor's liquidation (>= 1)
    seed: int = 0
    vol_scale: float = 10.0  # volatility multiplier: a devnet hour shows what a real day or two would
    correlation: float = 0.6  # between volatile assets
    shock_probability: float = 0.004  # per block
    shock_range: tuple[float, float] = (0.05, 0.25)
    shock_up_share: float = 0.3
    deviation_bps: int = 5  # feed publishes when its answer moves this much
    heartbeat_blocks: int = 1_800  # ... or after this many blocks without an update
    arrivals_per_block: float = 0.5
    repays_per_block: float = 0.2
    withdrawals_per_block: float = 0.2
    watch_hf: float = 1.25  # scanned every block; everyone else every full_scan_every blocks
    full_scan_every: int = 10


@dataclass
class SimResult:
    blocks: tuple[int, int] = (0, 0)
    seconds: float = 0.0
    price_updates: int = 0
    shocks: int = 0
    arrivals: int = 0
    repays: int = 0
    withdrawals: int = 0
    liquidations: int = 0
    liquidation_reverts: int = 0
    bad_debt_users: int = 0
    other_reverts: int = 0
    reverts_by_kind: dict[str, int] = field(default_factory=dict)  # first word of the label: "borrow", ...
    users_seen_liquidatable: int = 0
    arbitrage_swaps: int = 0  # DEX swaps back to the oracle (0 without a DEX)
    new_users: list[str] = field(default_factory=list)
    final_prices: dict[str, int] = field(default_factory=dict)


class _Prices:
    """The 'true' market price of each asset (float USD) and the last published feed answer."""

    def __init__(self, market: Market, published: dict[str, int], config: SimConfig, rng: random.Random):
        self.rng, self.config = rng, config
        specs = spec_by_symbol()
        self.symbols = [r.symbol for r in market.reserves]
        self.moves = {
            s: (specs[s].annual_volatility, specs[s].annual_drift) if s in specs else EXTRA_MOVES.get(s, DEFAULT_MOVES)
            for s in self.symbols
        }
        self.published = dict(published)
        self.true = {s: p / 1e8 for s, p in published.items()}
        self.peg = {s: r.initial_price / 1e8 for s, r in market.by_symbol.items()}
        self.stable = {s for s in self.symbols if self.moves[s][0] < 0.05}
        self.last_update = dict.fromkeys(self.symbols, 0)

    def step(self, block_index: int) -> tuple[dict[str, int], bool]:
        """Move one block; returns (answers to publish, whether a shock happened)."""
        cfg, rng = self.config, self.rng
        dt = cfg.block_time / YEAR
        common = rng.gauss(0.0, 1.0)
        shock = 0.0
        if rng.random() < cfg.shock_probability:
            size = rng.uniform(*cfg.shock_range)
            shock = size if rng.random() < cfg.shock_up_share else -size
        for s in self.symbols:
            annual_vol, annual_drift = self.moves[s]
            vol = annual_vol * cfg.vol_scale
            if s in self.stable:  # mean reversion around the peg, rare small de-pegs
                gap = self.true[s] / self.peg[s] - 1.0
                move = -0.05 * gap + vol * math.sqrt(dt) * rng.gauss(0.0, 1.0)
                if shock:
                    move += shock * 0.02
                self.true[s] = self.peg[s] * (1.0 + gap + move)
                continue
            z = cfg.correlation * common + math.sqrt(1 - cfg.correlation**2) * rng.gauss(0.0, 1.0)
            drift = annual_drift - vol * vol / 2
            log_return = drift * dt + vol * math.sqrt(dt) * z + (math.log1p(shock) if shock else 0.0)
            self.true[s] *= math.exp(log_return)
        publish = {}
        for s in self.symbols:
            answer = max(1, round(self.true[s] * 1e8))
            moved = abs(answer - self.published[s]) * 10_000 >= cfg.deviation_bps * self.published[s]
            if moved or block_index - self.last_update[s] >= cfg.heartbeat_blocks:
                publish[s] = answer
                self.published[s] = answer
                self.last_update[s] = block_index
        return publish, bool(shock)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _repay_txs(market: Market, user: str, symbol: str, debt: int, fraction: float) -> list[Tx]:
    reserve = market.by_symbol[symbol]
    full = fraction >= 1.0
    amount = MAX_UINT if full else max(1, int(debt * fraction))
    mint = debt + debt // 100 + 10 if full else amount  # a full repay also pays the interest of this block
    return [
        Tx(user, reserve.asset, call_data("mint(address,uint256)", user, mint), label=f"repay mint {symbol}"),
        Tx(user, reserve.asset, call_data("approve(address,uint256)", market.pool, MAX_UINT), label="repay approve"),
        Tx(
            user,
            market.pool,
            call_data("repay(address,uint256,uint256,address)", reserve.asset, amount, 2, user),
            label=f"repay {symbol}",
        ),
    ]


def _withdraw_tx(market: Market, user: str, symbol: str, amount: int) -> Tx:
    data = call_data("withdraw(address,uint256,address)", market.by_symbol[symbol].asset, amount, user)
    return Tx(user, market.pool, data, label=f"withdraw {symbol}")


def _count_reverts(result: SimResult, txs: Sequence[Tx], ok: Sequence[bool]) -> None:
    """Reverts are part of a market (a borrow after a crash, a liquidation that lost the race): count them."""
    for tx, fine in zip(txs, ok, strict=True):
        if fine:
            continue
        kind = tx.label.split(" ")[0]
        result.reverts_by_kind[kind] = result.reverts_by_kind.get(kind, 0) + 1
        if kind == "liquidationCall":
            result.liquidation_reverts += 1
        else:
            result.other_reverts += 1


def _newcomers(
    rpc: Rpc, market: Market
) -> tuple[Callable[[dict[str, int], int, int, int], list[Portfolio]], Callable[[Portfolio], list[Tx]]]:
    """The planner of arriving borrowers and their transactions, for the market's protocol version (V3.6: the
    categories' bitmaps decide what an e-mode newcomer supplies and borrows, see v36/bulk.py)."""
    if market.protocol_version == "3.6":
        shape = bulk.read_shape(rpc, market)
        return (
            lambda prices, count, seed, start: bulk.plan_portfolios(
                market, shape, prices, count, seed, start, namespace="arrival", within_ltv=True
            ),
            lambda plan: bulk.borrower_txs(market, plan),
        )
    return (
        lambda prices, count, seed, start: plan_portfolios(
            market, prices, count, seed, start, namespace="arrival", within_ltv=True
        ),
        lambda plan: borrower_txs(market, plan),
    )


@contextlib.contextmanager
def planner_closed(planner: LiquidationPlanner) -> Iterator[LiquidationPlanner]:
    try:
        yield planner
    finally:
        planner.close()


def simulate(
    rpc: Rpc,
    market: Market,
    config: SimConfig,
    borrowers: Sequence[str],
    *,
    first_arrival_index: int = 0,
    on_block: Callable[[int, SimResult], None] | None = None,
    dex: Dex | Literal["auto"] | None = "auto",
    extra_txs: Callable[[], list[Tx]] | None = None,
) -> SimResult:
    """Run `config.blocks` blocks on the devnet behind `rpc`. `borrowers` are the users the competitor watches
    (newcomers are added). `on_block(i, result)` is called after each block. `dex`: the DEX whose pools follow
    the oracle (dex.load_dex(data_dir) reads dex.json); "auto" finds the one deployed on the chain
    (dex.find_dex); None: no arbitrage. `extra_txs()`: other actors' transactions added to each block (the arena's
    treasury refilling the Liquidator's inventory)."""
    started = time.perf_counter()
    rng = random.Random(f"liq-devnet-sim:{config.seed}")
    chain = Chain(rpc)
    result = SimResult()
    prices = _Prices(market, oracle_prices(rpc, market), config, rng)
    users = list(dict.fromkeys(borrowers))
    hf: dict[str, float] = {}
    seen_unhealthy: dict[str, int] = {}  # user -> block index where the competitor first saw HF < 1
    ever_unhealthy: set[str] = set()
    written_off: set[str] = set()  # debt without collateral: nothing a liquidator can do
    next_arrival = first_arrival_index
    queued: list[Portfolio] = []  # newcomers whose liquidity is supplied in this block, who act in the next
    plan_newcomers, txs_for = _newcomers(rpc, market)
    planner = LiquidationPlanner(rpc, market)
    if dex == "auto":
        dex = find_dex(rpc, market)

    def scan(subset: Sequence[str], block_index: int) -> None:
        subset = [u for u in subset if u not in written_off]
        if not subset:
            return
        for user, data in zip(subset, account_data(rpc, market.pool, subset), strict=True):
            hf[user] = data.health_factor / WAD if data.total_debt_base else math.inf
            if hf[user] < 1.0:
                seen_unhealthy.setdefault(user, block_index)
                ever_unhealthy.add(user)
            else:
                seen_unhealthy.pop(user, None)

    actors = [COMPETITOR, market.admin, LIQUIDITY_PROVIDER]  # they pay gas every block: topped up now and then
    actors += [ARBITRAGEUR] if dex is not None else []
    with planner_closed(planner), chain.manual_mining():
        timestamp = chain.latest_timestamp()
        head = chain.block_number()
        result.blocks = (head + 1, head)
        scan(users, 0)
        for i in range(1, config.blocks + 1):
            if i % 500 == 1:
                chain.set_balances(actors, GAS_MONEY)
            txs: list[Tx] = []
            publish, shocked = prices.step(i)
            result.shocks += shocked
            price_part = price_txs(market, publish)
            txs += price_part
            if dex is not None:  # the pools to the oracle after this block's updates, in this block
                swaps = arbitrage_swaps(dex, read_reserves(rpc, dex), prices.published)
                txs += [tx for pair, swap in swaps.values() for tx in swap_txs(pair, swap)]
                result.arbitrage_swaps += len(swaps)

            arriving, queued = queued, []
            for plan in arriving:
                txs += txs_for(plan)
            count = _poisson(rng, config.arrivals_per_block)
            if count:
                current = {s: p for s, p in prices.published.items()}
                queued = plan_newcomers(current, count, config.seed, next_arrival)
                next_arrival += count
                chain.set_balances([p.user for p in queued], GAS_MONEY)
                chain.nonces.prefetch([p.user for p in queued])
                txs += liquidity_txs(market, queued)

            debtors = [u for u in users if hf.get(u, math.inf) < math.inf and u not in seen_unhealthy]
            repayers = rng.sample(debtors, k=min(len(debtors), _poisson(rng, config.repays_per_block)))
            safe = [u for u in debtors if hf.get(u, 0.0) > 1.6 and u not in repayers]
            withdrawers = rng.sample(safe, k=min(len(safe), _poisson(rng, config.withdrawals_per_block)))
            if repayers or withdrawers:
                legs_of = dict(
                    zip(repayers + withdrawers, user_reserves(rpc, market, repayers + withdrawers), strict=True)
                )
                for user in repayers:
                    debts = [(leg.variable_debt, s) for s, leg in legs_of[user].items() if leg.variable_debt]
                    if debts:
                        amount, symbol = max(debts)
                        fraction = 1.0 if rng.random() < 0.3 else rng.uniform(0.1, 0.8)
                        txs += _repay_txs(market, user, symbol, amount, fraction)
                        result.repays += 1
                for user in withdrawers:
                    supplied = [(leg.a_token_balance, s) for s, leg in legs_of[user].items() if leg.a_token_balance]
                    if supplied:
                        balance, symbol = max(supplied)
                        txs.append(_withdraw_tx(market, user, symbol, balance // 5))
                        result.withdrawals += 1

            due = [u for u, first in seen_unhealthy.items() if i - first >= max(1, config.liquidation_delay)]
            picks, hopeless = (
                planner.plan(due, head, timestamp + config.block_time, publish, COMPETITOR) if due else ([], [])
            )
            for user in hopeless:  # no collateral left to seize: bad debt, stop watching
                seen_unhealthy.pop(user, None)
                written_off.add(user)
            txs += liquidation_txs(market, COMPETITOR, picks)
            if extra_txs is not None:
                txs += extra_txs()

            timestamp += config.block_time
            done = chain.execute(txs, timestamp=timestamp, allow_revert=True)
            result.price_updates += len(publish)
            result.arrivals += len(arriving)
            events = liquidation_events(done.logs, market.pool)
            result.liquidations += len(events)
            _count_reverts(result, txs, done.ok)
            for event in events:  # look again after the close factor's half: maybe still unhealthy
                seen_unhealthy.pop(event.user, None)
                hf.pop(event.user, None)
            new_users = [p.user for p in arriving]
            users += new_users
            result.new_users += new_users

            if shocked or i % config.full_scan_every == 0:
                scan(users, i)
            else:
                watch = [u for u in users if hf.get(u, 0.0) < config.watch_hf]
                scan(watch, i)
            result.blocks = (result.blocks[0], done.block)
            head = done.block
            result.users_seen_liquidatable = len(ever_unhealthy)
            result.bad_debt_users = len(written_off)
            if on_block:
                on_block(i, result)
        if queued:  # newcomers whose liquidity is in place act in one last block
            timestamp += config.block_time
            last = [tx for plan in queued for tx in txs_for(plan)]
            done = chain.execute(last, timestamp, allow_revert=True)
            result.arrivals += len(queued)
            result.new_users += [p.user for p in queued]
            _count_reverts(result, last, done.ok)
            result.blocks = (result.blocks[0], done.block)
    result.final_prices = dict(prices.published)
    result.seconds = time.perf_counter() - started
    return result
