"""Borrowers with varied portfolios, created fast and deterministically for a seed.

Variety: 1-4 collaterals and 1-2 debts over 18/8/6-decimal assets; ~20 % in the stablecoin e-mode; ~12 % with a
supplied asset they turned off as collateral; ~8 % dust and ~5 % whales; ~4 % whose collateral another address
supplied for them (supply onBehalfOf); some borrow an asset they also supply. Health factors are drawn from just
above 1 (1.0001) to very safe (8).

Speed: calldata is encoded with eth-abi and cached selectors, transactions go out as JSON-RPC batches with
explicit nonces and gas, and each chunk of users is one manually mined block (see txs.py).

HF targets below LT/LTV (1.02-1.3 here) cannot be reached by borrowing: the Pool caps new debt at the LTV. While
seeding, each reserve's (and the e-mode category's) LTV is raised to its liquidation threshold and restored
afterwards, in the same admin transactions a risk steward would send; users end up between LTV and threshold,
as after a price move. The configuration events are on chain like any other.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from .abi import call_data
from .accounts import GAS_MONEY, LIQUIDITY_PROVIDER, borrower_address
from .actions import oracle_prices
from .anvil import BLOCK_TIME
from .market import EModeInfo, Market, ReserveInfo
from .rpc import Rpc
from .spec import RAY, spec_by_symbol
from .txs import Chain, Tx

MAX_UINT = 2**256 - 1
VARIABLE = 2  # interest rate mode

# (weight, low, high): health factor bands a borrower is placed in.
HF_BANDS = ((0.12, 1.0001, 1.01), (0.25, 1.01, 1.15), (0.33, 1.15, 2.0), (0.30, 2.0, 8.0))
# (weight, kind, low USD, high USD) of total collateral value, log-uniform inside a band.
SIZE_BANDS = ((0.08, "dust", 1.0, 50.0), (0.87, "normal", 500.0, 250_000.0), (0.05, "large", 1_000_000.0, 20_000_000.0))
EMODE_SHARE = 0.20
DISABLED_COLLATERAL_SHARE = 0.12
SPONSORED_SHARE = 0.04
SAME_ASSET_DEBT_SHARE = 0.08
CHUNK_USERS = 250  # one mined block per chunk: ~2,500 transactions


@dataclass(frozen=True)
class Portfolio:
    user: str
    kind: str
    target_hf: float
    emode: int
    collaterals: tuple[tuple[str, int], ...]  # (symbol, amount in token units), enabled as collateral
    disabled: tuple[tuple[str, int], ...]  # supplied, then turned off as collateral
    debts: tuple[tuple[str, int], ...]  # variable debt, token units
    sponsored: bool  # collateral supplied by the liquidity provider on the user's behalf


@dataclass
class SeedResult:
    users: list[str]
    portfolios: list[Portfolio]
    blocks: tuple[int, int]
    seconds: float = 0.0
    transactions: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return len(self.users) / self.seconds if self.seconds else 0.0


def _pick(rng: random.Random, bands):
    x, acc = rng.random(), 0.0
    for band in bands:
        acc += band[0]
        if x < acc:
            return band
    return bands[-1]


def _units(usd: float, reserve: ReserveInfo, price: int) -> int:
    """Token units worth `usd` at an 8-decimal price, rounded down."""
    return int(usd * 10**8) * 10**reserve.decimals // price


def _spread(
    usd: float, symbols: list[str], weights: list[float], reserves: dict[str, ReserveInfo], prices: dict[str, int]
) -> list[tuple[str, int]]:
    """`usd` over `symbols` in proportion to `weights`, in token units; amounts that round to 0 left out."""
    spread = []
    for symbol, weight in zip(symbols, weights, strict=True):
        amount = _units(usd * weight / sum(weights), reserves[symbol], prices[symbol])
        if amount > 0:
            spread.append((symbol, amount))
    return spread


def draw_size_and_hf(rng: random.Random) -> tuple[str, float, float]:
    """(size kind, total collateral USD, target health factor), drawn from SIZE_BANDS and HF_BANDS."""
    _, kind, low, high = _pick(rng, SIZE_BANDS)
    total_usd = math.exp(rng.uniform(math.log(low), math.log(high)))
    _, hf_low, hf_high = _pick(rng, HF_BANDS)
    return kind, total_usd, rng.uniform(hf_low, hf_high)


def split_collateral(
    rng: random.Random, pool: list[str], total_usd: float, reserves: dict[str, ReserveInfo], prices: dict[str, int]
) -> list[tuple[str, int]]:
    """`total_usd` over the assets of `pool` at random weights (at least one unit of the first)."""
    weights = [rng.random() + 0.1 for _ in pool]
    collaterals = _spread(total_usd, pool, weights, reserves, prices)
    if not collaterals:
        collaterals = [(pool[0], max(1, _units(total_usd, reserves[pool[0]], prices[pool[0]])))]
    return collaterals


def debt_for(
    collaterals: list[tuple[str, int]],
    reserves: dict[str, ReserveInfo],
    prices: dict[str, int],
    target_hf: float,
    category: EModeInfo | None,
    boosted: Collection[str],
    within_ltv: bool,
) -> tuple[float, float]:
    """(target HF, debt USD): debt = sum(collateral x threshold) / target HF, the e-mode category's LT and LTV
    for the `boosted` collaterals. within_ltv: the target raised to keep the debt under the LTVs."""
    threshold_usd = ltv_usd = 0.0
    for symbol, amount in collaterals:
        reserve = reserves[symbol]
        boost = category if category is not None and symbol in boosted else None
        lt = boost.liquidation_threshold if boost else reserve.liquidation_threshold
        ltv = boost.ltv if boost else reserve.ltv
        usd = amount * prices[symbol] / 10**reserve.decimals / 1e8
        threshold_usd += usd * lt / 1e4
        ltv_usd += usd * ltv / 1e4
    if within_ltv:
        target_hf = max(target_hf, threshold_usd / ltv_usd * 1.01)  # 1 % room for the price moving
    return target_hf, threshold_usd / target_hf


def split_debt(
    rng: random.Random,
    candidates: list[str],
    held: set[str],
    debt_usd: float,
    reserves: dict[str, ReserveInfo],
    prices: dict[str, int],
    one_wei: bool = False,
) -> list[tuple[str, int]]:
    """The debt over 1-2 of the candidates, mostly ones not held as collateral (one_wei: 1 wei of one)."""
    fresh = [s for s in candidates if s not in held]
    debt_count = min(rng.choices((1, 2), weights=(0.7, 0.3))[0], len(candidates))
    if one_wei:
        return [(rng.choice(candidates), 1)]
    if fresh and rng.random() >= SAME_ASSET_DEBT_SHARE:
        debt_symbols = rng.sample(fresh, k=min(debt_count, len(fresh)))
    else:
        debt_symbols = rng.sample(candidates, k=debt_count)
    shares = [rng.random() + 0.2 for _ in debt_symbols]
    return _spread(debt_usd, debt_symbols, shares, reserves, prices)


def debts_and_disabled(
    rng: random.Random,
    candidates: list[str],
    collaterals: list[tuple[str, int]],
    debt_usd: float,
    spare_pool: list[str],
    total_usd: float,
    market: Market,
    prices: dict[str, int],
    *,
    one_wei: bool = False,
    may_disable: bool = True,
) -> tuple[tuple[tuple[str, int], ...], list[tuple[str, int]]]:
    """(debts, supplies turned off as collateral): `debt_usd` over the `candidates` (split_debt), and maybe
    (DISABLED_COLLATERAL_SHARE) one asset of `spare_pool` that is neither held nor borrowed."""
    reserves = market.by_symbol
    held = {s for s, _ in collaterals}
    debts = split_debt(rng, candidates, held, debt_usd, reserves, prices, one_wei) if candidates else []
    disabled = []
    spare = [s for s in spare_pool if s not in held and s not in {d for d, _ in debts}]
    if may_disable and spare and rng.random() < DISABLED_COLLATERAL_SHARE:
        disabled += extra_supply(rng, spare, total_usd, reserves, prices)
    return tuple(debts), disabled


def extra_supply(
    rng: random.Random, spare: list[str], total_usd: float, reserves: dict[str, ReserveInfo], prices: dict[str, int]
) -> list[tuple[str, int]]:
    """One of `spare`, worth 5-50 % of `total_usd` (none if that rounds to 0 units)."""
    symbol = rng.choice(spare)
    amount = _units(total_usd * rng.uniform(0.05, 0.5), reserves[symbol], prices[symbol])
    return [(symbol, amount)] if amount > 0 else []


def plan_portfolios(
    market: Market,
    prices: dict[str, int],
    n: int,
    seed: int,
    start_index: int = 0,
    *,
    namespace: str = "borrower",
    within_ltv: bool = False,
) -> list[Portfolio]:
    """The borrowers to create: a pure function of the arguments.

    within_ltv: keep each debt under the configured LTVs (the simulator's newcomers borrow against the real
    LTVs; `seed` raises them to the thresholds while it works, see the module docstring)."""
    rng = random.Random(f"liq-devnet-seed:{namespace}:{seed}:{start_index}")
    reserves = market.by_symbol
    symbols = [r.symbol for r in market.reserves]
    emode = market.emode_categories[0] if market.emode_categories else None
    emode_symbols = [r.symbol for r in market.reserves if emode and r.emode_category == emode.category_id]
    boosted = {r.symbol for r in market.reserves if r.emode_category}  # at the category's LT/LTV in e-mode
    plans: list[Portfolio] = []
    for index in range(start_index, start_index + n):
        user = borrower_address(seed, index, namespace)
        kind, total_usd, target_hf = draw_size_and_hf(rng)
        in_emode = bool(emode_symbols) and rng.random() < EMODE_SHARE

        count = rng.choices((1, 2, 3, 4), weights=(0.4, 0.3, 0.2, 0.1))[0]
        if in_emode:
            pool = [rng.choice(emode_symbols)]
            pool += rng.sample([s for s in symbols if s not in pool], k=min(count - 1, len(symbols) - 1))
        else:
            pool = rng.sample(symbols, k=count)
        collaterals = split_collateral(rng, pool, total_usd, reserves, prices)

        # Debt = sum(collateral x threshold) / target HF, split over 1-2 assets.
        category = emode if in_emode else None
        target_hf, debt_usd = debt_for(collaterals, reserves, prices, target_hf, category, boosted, within_ltv)
        candidates = emode_symbols if in_emode else symbols
        debts, disabled = debts_and_disabled(rng, candidates, collaterals, debt_usd, symbols, total_usd, market, prices)
        emode_id = category.category_id if category else 0
        sponsored = rng.random() < SPONSORED_SHARE
        plans.append(Portfolio(user, kind, target_hf, emode_id, tuple(collaterals), tuple(disabled), debts, sponsored))
    return plans


def borrower_txs(market: Market, plan: Portfolio, *, v36: bool = False) -> list[Tx]:
    """Supplies, collateral switched off where planned, setUserEMode, borrows.

    v36: V3.6's order and rules: setUserEMode first (an e-mode-only collateral is enabled on supply only inside
    its category), and no collateral switch for an LT-0 asset (never on)."""
    reserves, pool, user = market.by_symbol, market.pool, plan.user
    txs: list[Tx] = []
    emode = [Tx(user, pool, call_data("setUserEMode(uint8)", plan.emode), label="setUserEMode")] if plan.emode else []
    if v36:
        txs += emode
    own_supplies = [] if plan.sponsored else list(plan.collaterals)
    for symbol, amount in [*own_supplies, *plan.disabled]:
        asset = reserves[symbol].asset
        txs.append(Tx(user, asset, call_data("mint(address,uint256)", user, amount), label=f"mint {symbol}"))
        txs.append(Tx(user, asset, call_data("approve(address,uint256)", pool, MAX_UINT), label=f"approve {symbol}"))
        txs.append(
            Tx(
                user,
                pool,
                call_data("supply(address,uint256,address,uint16)", asset, amount, user, 0),
                label=f"supply {symbol}",
            )
        )
    for symbol, _ in plan.disabled:
        if v36 and not reserves[symbol].liquidation_threshold:
            continue
        txs.append(
            Tx(
                user,
                pool,
                call_data("setUserUseReserveAsCollateral(address,bool)", reserves[symbol].asset, False),
                label=f"collateral off {symbol}",
            )
        )
    if not v36:
        txs += emode
    for symbol, amount in plan.debts:
        txs.append(
            Tx(
                user,
                pool,
                call_data(
                    "borrow(address,uint256,uint256,uint16,address)", reserves[symbol].asset, amount, VARIABLE, 0, user
                ),
                label=f"borrow {symbol}",
            )
        )
    return txs


SETUP_TXS_PER_BLOCK = 250


def liquidity_txs(market: Market, plans: list[Portfolio]) -> list[Tx]:
    """The liquidity provider covers every planned borrow on its own (so no borrower depends on another's
    supply inside one block) and supplies the sponsored users' collateral on their behalf.

    It supplies enough that a reserve's utilization from these borrows stays under ~80 % of its optimal usage:
    with a single whale borrowing most of a thin reserve, rates would otherwise sit on slope 2 (100 %+ a year)."""
    reserves, pool, lp = market.by_symbol, market.pool, LIQUIDITY_PROVIDER
    specs = spec_by_symbol()
    borrowed: dict[str, int] = {}
    for plan in plans:
        for symbol, amount in plan.debts:
            borrowed[symbol] = borrowed.get(symbol, 0) + amount
    liquidity = {}
    for symbol, amount in borrowed.items():
        optimal = specs[symbol].strategy.optimal_usage / RAY if symbol in specs else 0.5
        liquidity[symbol] = int(amount / (0.8 * optimal)) + 1
    sponsored = [(plan.user, s, a) for plan in plans if plan.sponsored for s, a in plan.collaterals]
    need = dict(liquidity)
    for _, symbol, amount in sponsored:
        need[symbol] = need.get(symbol, 0) + amount
    txs: list[Tx] = []
    for symbol, amount in need.items():
        asset = reserves[symbol].asset
        txs.append(Tx(lp, asset, call_data("mint(address,uint256)", lp, amount), label=f"lp mint {symbol}"))
        txs.append(Tx(lp, asset, call_data("approve(address,uint256)", pool, MAX_UINT), label=f"lp approve {symbol}"))
    supply = "supply(address,uint256,address,uint16)"
    for symbol, amount in liquidity.items():
        asset = reserves[symbol].asset
        txs.append(Tx(lp, pool, call_data(supply, asset, amount, lp, 0), label=f"lp supply {symbol}"))
    for user, symbol, amount in sponsored:
        asset = reserves[symbol].asset
        label = f"supply {symbol} on behalf of {user}"
        txs.append(Tx(lp, pool, call_data(supply, asset, amount, user, 0), label=label))
    return txs


def ltv_txs(market: Market, raised: bool, *, v36: bool = False) -> list[Tx]:
    """Admin transactions that set every LTV to its threshold (raised) or back to its configured value.

    v36: V3.6's configurator: setEModeCategory without a price source, LT-0 reserves (e-mode-only collateral,
    LTV and LT 0 outside e-mode) untouched."""
    admin, configurator = market.admin, market.pool_configurator
    txs = []
    for r in market.reserves:
        if v36 and not r.liquidation_threshold:
            continue
        ltv = r.liquidation_threshold if raised else r.ltv
        txs.append(
            Tx(
                admin,
                configurator,
                call_data(
                    "configureReserveAsCollateral(address,uint256,uint256,uint256)",
                    r.asset,
                    ltv,
                    r.liquidation_threshold,
                    r.liquidation_bonus,
                ),
                label=f"ltv {r.symbol}",
            )
        )
    for e in market.emode_categories:
        ltv = e.liquidation_threshold if raised else e.ltv
        price_source = () if v36 else (e.price_source,)  # V3.6 takes none
        signature = f"setEModeCategory(uint8,uint16,uint16,uint16,{'' if v36 else 'address,'}string)"
        args = (e.category_id, ltv, e.liquidation_threshold, e.liquidation_bonus, *price_source, e.label)
        data = call_data(signature, *args)
        txs.append(Tx(admin, configurator, data, label=f"emode ltv {e.category_id}"))
    return txs


# (rpc, market, prices, n, seed, start_index) -> the borrowers to create
Planner = Callable[[Rpc, Market, dict[str, int], int, int, int], list[Portfolio]]


def _plan_v30(rpc: Rpc, market: Market, prices: dict[str, int], n: int, seed: int, start_index: int) -> list[Portfolio]:
    return plan_portfolios(market, prices, n, seed, start_index)


def seed(
    rpc: Rpc,
    market: Market,
    n_borrowers: int,
    seed: int = 0,
    *,
    start_index: int = 0,
    chunk_users: int = CHUNK_USERS,
    progress: Callable[[int], None] | None = None,
    on_block: Callable[[int], None] | None = None,
    planner: Planner = _plan_v30,
    v36: bool = False,
) -> SeedResult:
    """Create `n_borrowers` borrowers (addresses borrower_address(seed, start_index + i)).

    Each chunk is one block, 2 s after the previous one. `progress(k)` is called after each chunk with the
    number of users created in it; `on_block(number)` after every block mined (the state cache collects the
    history with it before the node drops it). `planner` and `v36` serve V3.6 (v36/bulk.py's `seed`)."""
    plans = planner(rpc, market, oracle_prices(rpc, market), n_borrowers, seed, start_index)
    return run_seeding(
        rpc,
        market,
        plans,
        raise_ltv=ltv_txs(market, raised=True, v36=v36),
        restore_ltv=ltv_txs(market, raised=False, v36=v36),
        txs_for=lambda plan: borrower_txs(market, plan, v36=v36),
        chunk_users=chunk_users,
        progress=progress,
        on_block=on_block,
    )


def run_seeding(
    rpc: Rpc,
    market: Market,
    plans: list[Portfolio],
    *,
    raise_ltv: list[Tx],
    restore_ltv: list[Tx],
    txs_for: Callable[[Portfolio], list[Tx]],
    chunk_users: int = CHUNK_USERS,
    progress: Callable[[int], None] | None = None,
    on_block: Callable[[int], None] | None = None,
) -> SeedResult:
    """The seeding blocks for planned portfolios (any protocol version: the admin transactions that raise and
    restore the LTVs, and each user's transactions, come from the caller)."""
    started = time.perf_counter()
    chain = Chain(rpc)
    first_block = chain.block_number() + 1
    sent = 0
    with chain.manual_mining():
        chain.nonces.prefetch([market.admin, LIQUIDITY_PROVIDER])
        chain.set_balances([LIQUIDITY_PROVIDER], GAS_MONEY)
        timestamp = chain.latest_timestamp()

        reverted = 0

        def run(txs: list[Tx], allow_revert: bool = False) -> None:
            nonlocal timestamp, sent, reverted
            timestamp += BLOCK_TIME
            done = chain.execute(txs, timestamp=timestamp, allow_revert=allow_revert)
            sent += len(txs)
            reverted += done.ok.count(False)
            if on_block:
                on_block(done.block)

        # One sender's transactions, in nonce order; explicit 3M gas each counts against the 1G block gas limit,
        # so at most ~300 fit in a block (100k borrowers need thousands of sponsored supplies): chunk them.
        setup = raise_ltv + liquidity_txs(market, plans)
        for begin in range(0, len(setup), SETUP_TXS_PER_BLOCK):
            run(setup[begin : begin + SETUP_TXS_PER_BLOCK])
        try:
            for begin in range(0, len(plans), chunk_users):
                part = plans[begin : begin + chunk_users]
                users = [plan.user for plan in part]
                chain.set_balances(users, GAS_MONEY)
                chain.nonces.prefetch(users)  # one batch; a reused address keeps its nonce
                # at 100k borrowers a rare borrow can revert (a reserve's liquidity or cap met): the user keeps its
                # collateral, the revert is counted in the result instead of aborting the whole seeding
                run([tx for plan in part for tx in txs_for(plan)], allow_revert=True)
                if progress:
                    progress(len(part))
        finally:
            run(restore_ltv)
    users = [plan.user for plan in plans]
    return SeedResult(
        users=users,
        portfolios=plans,
        blocks=(first_block, chain.block_number()),
        seconds=time.perf_counter() - started,
        transactions=sent,
        extra={"reverted": reverted},
    )
