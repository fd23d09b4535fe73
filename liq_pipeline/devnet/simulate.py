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

Before the block (issue #15, `pending_window_ms` > 0): Base shows a price update before its block is sealed (a
Flashblock, ~200 ms, whose order is final). Each block then goes: the price updates, with a top priority fee
(competitors.PRICE_UPDATE_PRIORITY_FEE: anvil, ordering by max fee, puts them first), the next block's timestamp
set so that anvil's "pending" state is that block's (under SVR, when the auction acts, in one batch with its
winner's backrun: nobody sees the updates without it); `on_pending(i, answers)`, where a bot reacts (what it sends
lands in the same block, behind the updates); the pre-confirmation competitor; the rest of the block (arbitrage,
newcomers, repays, withdrawals, the sealed competitor, extra_txs); then the block is mined `pending_window_ms`
after the updates were sent, at the earliest. `competitor` picks the rivals a public bot faces (competitors.py):
"sealed" (the competitor above, alone), "preconf" (plus one liquidating at the pending state), "svr" (plus
Chainlink SVR's auction winner backrunning each update; missed auctions delay the update by
`svr_fallback_blocks`). With the defaults (no window, "sealed") every block is one batch, as before. Deterministic
for a seed and a starting chain.
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
from .accounts import COMPETITOR, GAS_MONEY, LIQUIDITY_PROVIDER, OPERATOR
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
from .competitors import (
    COMPETITOR_MODES,
    PRECONF_COMPETITOR,
    PRICE_UPDATE_PRIORITY_FEE,
    ROLES,
    SVR_PRIORITY_FEE,
    SVR_SEARCHER,
    TOP_FEE_GAS_MONEY,
    SvrDelivery,
    below_one_pending,
    plan_behind_updates,
    role_of,
    svr_crossings,
    with_fee,
)
from .dex import ARBITRAGEUR, Dex, arbitrage_swaps, find_dex, read_reserves, swap_txs
from .market import Market
from .rpc import Rpc
from .seed import Portfolio, borrower_txs, liquidity_txs, plan_portfolios
from .spec import spec_by_symbol
from .txs import PRIORITY_FEE, Chain, Executed, Tx
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
    # Before the block (issue #15): 0 = each block sent and mined at once; > 0 = the price updates first, then
    # on_pending, then the rest, the block mined this long after the updates were sent (a Flashblock: 200 ms)
    pending_window_ms: int = 0
    competitor: str = "sealed"  # COMPETITOR_MODES: "sealed", "preconf" or "svr" (the last two need a window)
    competitor_priority_fee: int = PRIORITY_FEE  # wei per gas, the competitors' liquidations (sealed and preconf)
    svr_miss_rate: float = 0.1  # "svr": share of blocks whose updates the auction does not act on
    svr_fallback_blocks: int = 1  # "svr": a missed auction's updates go out this many blocks later

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"SimConfig.{name}={getattr(self, name)!r} is not valid: expected {expected}")

        if self.competitor not in COMPETITOR_MODES:
            raise bad("competitor", "one of " + ", ".join(repr(m) for m in COMPETITOR_MODES))
        if not isinstance(self.pending_window_ms, int) or self.pending_window_ms < 0:
            raise bad("pending_window_ms", "a whole number of milliseconds >= 0")
        if self.competitor != "sealed" and self.pending_window_ms <= 0:
            raise bad(
                "pending_window_ms",
                f"> 0 with competitor={self.competitor!r} (it acts between an update and its block's seal)",
            )
        if (
            not isinstance(self.competitor_priority_fee, int)
            or not 0 <= self.competitor_priority_fee < SVR_PRIORITY_FEE
        ):
            raise bad("competitor_priority_fee", f"wei per gas from 0 to {SVR_PRIORITY_FEE - 1} (under the updates')")
        if not 0.0 <= self.svr_miss_rate <= 1.0:
            raise bad("svr_miss_rate", "a probability from 0 to 1")
        if not isinstance(self.svr_fallback_blocks, int) or self.svr_fallback_blocks < 1:
            raise bad("svr_fallback_blocks", "a whole number of blocks >= 1")


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
    # by who (competitors.ROLES): "competitor" (sealed blocks), "preconf", "svr" (the auction's winner), "other"
    # (anyone else: a public bot). Liquidations: LiquidationCall events in the simulator's blocks (everyone's, as
    # `liquidations`); reverts: the simulator's own liquidationCalls only ("other" stays 0)
    liquidations_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    liquidation_reverts_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    svr_auctions_held: int = 0  # blocks whose updates the SVR auction acted on
    svr_auctions_missed: int = 0  # blocks whose updates it did not act on (held for the fallback)
    fallback_blocks: list[int] = field(default_factory=list)  # blocks where held updates went out
    new_users: list[str] = field(default_factory=list)
    final_prices: dict[str, int] = field(default_factory=dict)
    gas_topups: dict[str, int] = field(default_factory=dict)  # address -> times its gas money was topped up


def keep_funded(chain: Chain, funds: dict[str, int], topups: dict[str, int]) -> None:
    """Every account that pays gas in the simulated market back to its amount in `funds` once below half of it,
    counted in `topups`. Checked every block (one batch of balance reads): a fixed refill every 500 blocks let the
    executor's sender run dry within 25 blocks of a 100k-borrower wave."""
    held = chain.rpc.batch([("eth_getBalance", [address, "latest"]) for address in funds])
    low = [a for a, answer in zip(funds, held, strict=True) if int(answer, 16) < funds[a] // 2]
    if low:
        chain.rpc.batch([("anvil_setBalance", [address, hex(funds[address])]) for address in low])
    for address in low:
        topups[address] = topups.get(address, 0) + 1


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
            result.liquidation_reverts_by[role_of(tx.sender)] += 1
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
    on_pending: Callable[[int, dict[str, int]], None] | None = None,
) -> SimResult:
    """Run `config.blocks` blocks on the devnet behind `rpc`. `borrowers` are the users the competitor watches
    (newcomers are added). `on_block(i, result)` is called after each block. `dex`: the DEX whose pools follow
    the oracle (dex.load_dex(data_dir) reads dex.json); "auto" finds the one deployed on the chain
    (dex.find_dex); None: no arbitrage. `extra_txs()`: other actors' transactions added to each block (the arena's
    treasury refilling the Liquidator's inventory). `on_pending(i, answers)` (called only when
    `config.pending_window_ms` > 0): in every block, synchronously, once its price updates (`answers`, {symbol:
    answer}, maybe none) are in anvil's pool (under "svr", with the auction's backrun) and before the rest of the
    block is sent; what it sends lands in block i, behind them while its max fee stays under theirs
    (competitors.PRICE_UPDATE_PRIORITY_FEE). The window runs while it works: the block is mined
    `pending_window_ms` after the updates were sent, or as soon as the rest is sent if that comes later."""
    started = time.perf_counter()
    rng = random.Random(f"liq-devnet-sim:{config.seed}")
    chain = Chain(rpc)
    result = SimResult()
    prices = _Prices(market, oracle_prices(rpc, market), config, rng)
    onchain = dict(prices.published)  # the feeds' answers on chain (SVR holds some back: prices.published leads)
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
    paced = config.pending_window_ms > 0
    svr = (
        SvrDelivery(config.seed, config.svr_miss_rate, config.svr_fallback_blocks)
        if config.competitor == "svr"
        else None
    )

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

    def debtors_left() -> list[str]:
        """Whom a competitor reading the pending state checks: every user with debt at the last look."""
        return [u for u in users if u not in written_off and hf.get(u, 0.0) < math.inf]

    def write_off(hopeless: Sequence[str]) -> None:
        for user in hopeless:  # no collateral left to seize: bad debt, stop watching
            seen_unhealthy.pop(user, None)
            written_off.add(user)

    def paced_block(
        i: int,
        head: int,
        timestamp: int,
        price_part: list[Tx],
        rest: list[Tx],
        publish: dict[str, int],
        auctioned: bool,
    ) -> tuple[list[Tx], Executed]:
        """Block i (after the sealed block `head`, at `timestamp`) before its seal: the updates (anvil's pending
        state is then the block's, its timestamp set ahead), alone or, when the SVR auction acts, in one batch
        with its backrun; on_pending, the pre-confirmation competitor, the rest; mined when the window has passed
        since the updates were sent. Returns the simulator's transactions, in the order sent, and the block."""
        chain.set_next_timestamp(timestamp)
        own = list(price_part)
        if auctioned:  # the auction's bundle: its winner's backrun, planned before the updates are out, goes with
            # them in one batch, first (anvil adds a batch in order and announces each transaction as it is
            # added): whoever sees an update in the pool finds the backrun there; the block's order is by fee
            crossed = svr_crossings(rpc, market.pool, debtors_left(), head, timestamp, price_part)
            picks, _ = plan_behind_updates(planner, crossed, head, timestamp, publish, SVR_SEARCHER)
            own = with_fee(liquidation_txs(market, SVR_SEARCHER, picks), SVR_PRIORITY_FEE) + own
        sent_at = time.perf_counter()
        hashes = chain.send(own)
        if on_pending is not None:
            on_pending(i, dict(publish))
        late = list(rest)
        if config.competitor == "preconf":  # no faster than the bot: it reads the pending state after on_pending
            below = below_one_pending(rpc, market.pool, debtors_left())
            picks, hopeless = plan_behind_updates(
                planner, below, head, timestamp, publish, PRECONF_COMPETITOR, positions_at="pending"
            )
            write_off(hopeless)
            late += with_fee(liquidation_txs(market, PRECONF_COMPETITOR, picks), config.competitor_priority_fee)
        if extra_txs is not None:
            late += extra_txs()
        hashes += chain.send(late)
        own += late
        left = sent_at + config.pending_window_ms / 1000 - time.perf_counter()
        if left > 0:
            time.sleep(left)
        return own, chain.mine_and_check(own, hashes, timestamp, allow_revert=True)

    actors = [COMPETITOR, market.admin, LIQUIDITY_PROVIDER]  # they pay gas every block: topped up now and then
    actors += [ARBITRAGEUR] if dex is not None else []
    actors += [PRECONF_COMPETITOR] if config.competitor == "preconf" else []
    # the executor's sender on the devnet (`make dev`, `liq arena`): its liquidations pay in the debt asset, its gas
    # in ETH (at 100k borrowers and 10x volatility its 1,000 ETH lasted ~25 blocks, ~2,860 sends)
    actors += [OPERATOR]
    top_tippers = [market.admin] + ([SVR_SEARCHER] if svr is not None else [])  # paced: they tip at the top
    funds = dict.fromkeys(actors, GAS_MONEY) | (dict.fromkeys(top_tippers, TOP_FEE_GAS_MONEY) if paced else {})
    with planner_closed(planner), chain.manual_mining():
        timestamp = chain.latest_timestamp()
        head = chain.block_number()
        result.blocks = (head + 1, head)
        scan(users, 0)
        for i in range(1, config.blocks + 1):
            keep_funded(chain, funds, result.gas_topups)
            txs: list[Tx] = []
            publish, shocked = prices.step(i)
            result.shocks += shocked
            auctioned = fallback = False
            if svr is not None:  # what reaches the chain in this block: the auction's, or held ones falling back
                publish, auctioned, missed, fallback = svr.schedule(i, publish)
                result.svr_auctions_held += auctioned
                result.svr_auctions_missed += missed
            onchain.update(publish)
            price_part = price_txs(market, publish)
            if paced:
                price_part = with_fee(price_part, PRICE_UPDATE_PRIORITY_FEE)
            else:
                txs += price_part
            if dex is not None:  # the pools to the oracle after this block's updates, in this block
                swaps = arbitrage_swaps(dex, read_reserves(rpc, dex), onchain)
                txs += [tx for pair, swap in swaps.values() for tx in swap_txs(pair, swap)]
                result.arbitrage_swaps += len(swaps)

            arriving, queued = queued, []
            for plan in arriving:
                txs += txs_for(plan)
            count = _poisson(rng, config.arrivals_per_block)
            if count:
                current = dict(onchain)
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
            write_off(hopeless)
            txs += with_fee(liquidation_txs(market, COMPETITOR, picks), config.competitor_priority_fee)

            timestamp += config.block_time
            if not paced:
                if extra_txs is not None:
                    txs += extra_txs()
                done = chain.execute(txs, timestamp=timestamp, allow_revert=True)
            else:
                txs, done = paced_block(i, head, timestamp, price_part, txs, publish, auctioned)
                if fallback:
                    result.fallback_blocks.append(done.block)
            result.price_updates += len(publish)
            result.arrivals += len(arriving)
            events = liquidation_events(done.logs, market.pool)
            result.liquidations += len(events)
            for event in events:
                result.liquidations_by[role_of(event.liquidator)] += 1
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
    result.final_prices = dict(onchain)
    result.seconds = time.perf_counter() - started
    return result
