"""Seeding N borrowers on the V3.6 market: devnet/seed.py's strategy, generalised to what V3.6 has.

What changes from V3.0 (../seed.py):
- e-mode: a user picks one of the categories and reads its collateral and borrowable bitmaps from the Pool
  (getEModeCategoryCollateralBitmap / getEModeCategoryBorrowableBitmap); it supplies at least one asset of the
  category's collateral set, maybe others (they count at their own reserve LT), and borrows only assets of the
  borrowable set. It enters e-mode BEFORE supplying: an e-mode-only collateral (reserve LTV/LT 0, `wstETH`) is
  enabled as collateral on supply only when the user's category lists it.
- the e-mode-only (LT-0) asset: held as collateral by users of the categories that list it, and supplied (not
  collateral) by some users outside e-mode; never borrowed (borrowing is off on it).
- `edge` users (EDGE_SHARE): stablecoin collateral and debt, placed at HF = 1 + 1e-9..1e-7 when seeded; interest
  then carries a share of them across 1 within a few blocks, where only exact arithmetic decides (a price shock
  on volatile assets leaves them there).
- `one_wei` users (ONE_WEI_SHARE): a 1-wei debt, which V3.6 rounds up to one unit of base currency.
- LTVs raised to the thresholds while seeding (see ../seed.py) with V3.6's configurator calls:
  configureReserveAsCollateral per reserve (LT-0 reserves untouched) and setEModeCategory without a price source.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..abi import call_data
from ..accounts import borrower_address
from ..actions import oracle_prices
from ..market import Market
from ..rpc import Rpc
from ..seed import (
    DISABLED_COLLATERAL_SHARE,
    HF_BANDS,
    MAX_UINT,
    SAME_ASSET_DEBT_SHARE,
    SIZE_BANDS,
    SPONSORED_SHARE,
    VARIABLE,
    Portfolio,
    SeedResult,
    _pick,
    _units,
    run_seeding,
)
from ..txs import Tx
from .deploy import eth_call

EMODE_SHARE = 0.35  # three categories
EDGE_SHARE = 0.04
ONE_WEI_SHARE = 0.02
LT0_HELD_SHARE = 0.10  # of the users outside e-mode: also supply the e-mode-only asset (no collateral for them)
BORROWING_ENABLED_BIT = 58  # ReserveConfiguration
FROZEN_BIT = 57


@dataclass(frozen=True)
class Category:
    category_id: int
    ltv: int
    liquidation_threshold: int
    label: str
    collateral: tuple[str, ...]
    borrowable: tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    """What the planner needs from the chain: categories with their bitmaps, which reserves can be borrowed."""

    categories: tuple[Category, ...]
    borrowable: tuple[str, ...]

    def category(self, category_id: int) -> Category:
        return next(c for c in self.categories if c.category_id == category_id)


def read_shape(rpc: Rpc, market: Market, block: int | str = "latest") -> Shape:
    by_id = {r.reserve_id: r.symbol for r in market.reserves}

    def symbols(bitmap: int) -> tuple[str, ...]:
        return tuple(by_id[i] for i in sorted(by_id) if bitmap >> i & 1)

    categories = []
    for e in market.emode_categories:
        (collateral,) = eth_call(
            rpc, market.pool, "getEModeCategoryCollateralBitmap(uint8)", ["uint128"], e.category_id, block=block
        )
        (borrowable,) = eth_call(
            rpc, market.pool, "getEModeCategoryBorrowableBitmap(uint8)", ["uint128"], e.category_id, block=block
        )
        categories.append(
            Category(e.category_id, e.ltv, e.liquidation_threshold, e.label, symbols(collateral), symbols(borrowable))
        )
    borrowable_reserves = []
    for r in market.reserves:
        (config,) = eth_call(rpc, market.pool, "getConfiguration(address)", ["uint256"], r.asset, block=block)
        if config >> BORROWING_ENABLED_BIT & 1 and not config >> FROZEN_BIT & 1:
            borrowable_reserves.append(r.symbol)
    return Shape(tuple(categories), tuple(borrowable_reserves))


def plan_portfolios(
    market: Market,
    shape: Shape,
    prices: dict[str, int],
    n: int,
    seed: int,
    start_index: int = 0,
    *,
    namespace: str = "borrower",
    within_ltv: bool = False,
) -> list[Portfolio]:
    """The borrowers to create on a V3.6 market: a pure function of the arguments (see the module docstring)."""
    rng = random.Random(f"liq-devnet-seed-v36:{namespace}:{seed}:{start_index}")
    reserves = market.by_symbol
    symbols = [r.symbol for r in market.reserves]
    collateral_ok = [s for s in symbols if reserves[s].liquidation_threshold > 0]  # outside e-mode
    lt0 = [s for s in symbols if reserves[s].liquidation_threshold == 0]
    stables = [s for s in symbols if abs(prices[s] - 10**8) <= 2 * 10**6 and reserves[s].liquidation_threshold]
    stable_categories = [
        c for c in shape.categories if set(c.collateral) <= set(stables) and set(c.borrowable) <= set(stables)
    ]
    borrowable = [s for s in shape.borrowable if s in reserves]
    plans: list[Portfolio] = []
    for index in range(start_index, start_index + n):
        user = borrower_address(seed, index, namespace)
        roll = rng.random()
        kind = "edge" if roll < EDGE_SHARE else "one_wei" if roll < EDGE_SHARE + ONE_WEI_SHARE else ""
        if kind == "edge":
            total_usd = math.exp(rng.uniform(math.log(10_000.0), math.log(1_000_000.0)))
            target_hf = 1.0 + math.exp(rng.uniform(math.log(1e-9), math.log(1e-7)))
        else:
            _, size_kind, low, high = _pick(rng, SIZE_BANDS)
            kind = kind or size_kind
            total_usd = math.exp(rng.uniform(math.log(low), math.log(high)))
            _, hf_low, hf_high = _pick(rng, HF_BANDS)
            target_hf = rng.uniform(hf_low, hf_high)

        category: Category | None = None
        if kind == "edge" and stables:
            category = rng.choice(stable_categories) if stable_categories and rng.random() < 0.5 else None
            pool = [rng.choice(stables)]  # one collateral: its LT is the average exactly (no floored mix)
            debt_candidates = [s for s in (category.borrowable if category else stables) if s in borrowable]
        else:
            if shape.categories and rng.random() < EMODE_SHARE:
                category = rng.choice(shape.categories)
            count = rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]
            if category:
                pool = [rng.choice(category.collateral)]
                others = [s for s in collateral_ok + list(category.collateral) if s not in pool]
                pool += rng.sample(sorted(set(others)), k=min(count - 1, len(set(others))))
                debt_candidates = [s for s in category.borrowable if s in borrowable]
            else:
                pool = rng.sample(collateral_ok, k=min(count, len(collateral_ok)))
                debt_candidates = borrowable
        weights = [rng.random() + 0.1 for _ in pool]
        collaterals = []
        for symbol, weight in zip(pool, weights, strict=True):
            amount = _units(total_usd * weight / sum(weights), reserves[symbol], prices[symbol])
            if amount > 0:
                collaterals.append((symbol, amount))
        if not collaterals:
            collaterals = [(pool[0], max(1, _units(total_usd, reserves[pool[0]], prices[pool[0]])))]

        threshold_usd = ltv_usd = 0.0
        for symbol, amount in collaterals:
            reserve = reserves[symbol]
            boosted = category is not None and symbol in category.collateral
            lt = category.liquidation_threshold if boosted else reserve.liquidation_threshold
            ltv = category.ltv if boosted else reserve.ltv
            usd = amount * prices[symbol] / 10**reserve.decimals / 1e8
            threshold_usd += usd * lt / 1e4
            ltv_usd += usd * ltv / 1e4
        if within_ltv:
            target_hf = max(target_hf, threshold_usd / ltv_usd * 1.01)
        debt_usd = threshold_usd / target_hf
        held = {s for s, _ in collaterals}
        debts: list[tuple[str, int]] = []
        if debt_candidates:
            fresh = [s for s in debt_candidates if s not in held]
            debt_count = min(rng.choices((1, 2), weights=(0.7, 0.3))[0], len(debt_candidates))
            if kind == "one_wei":
                debts = [(rng.choice(debt_candidates), 1)]
            else:
                if fresh and rng.random() >= SAME_ASSET_DEBT_SHARE:
                    debt_symbols = rng.sample(fresh, k=min(debt_count, len(fresh)))
                else:
                    debt_symbols = rng.sample(debt_candidates, k=debt_count)
                shares = [rng.random() + 0.2 for _ in debt_symbols]
                for symbol, share in zip(debt_symbols, shares, strict=True):
                    amount = _units(debt_usd * share / sum(shares), reserves[symbol], prices[symbol])
                    if amount > 0:
                        debts.append((symbol, amount))

        disabled = []
        spare = [s for s in collateral_ok if s not in held and s not in {d for d, _ in debts}]
        if kind != "edge" and spare and rng.random() < DISABLED_COLLATERAL_SHARE:
            symbol = rng.choice(spare)
            amount = _units(total_usd * rng.uniform(0.05, 0.5), reserves[symbol], prices[symbol])
            if amount > 0:
                disabled.append((symbol, amount))
        if category is None and lt0 and kind != "edge" and rng.random() < LT0_HELD_SHARE:
            symbol = rng.choice(lt0)  # supplied outside e-mode: not collateral (reserve LTV 0), nothing to turn off
            amount = _units(total_usd * rng.uniform(0.05, 0.5), reserves[symbol], prices[symbol])
            if amount > 0:
                disabled.append((symbol, amount))

        plans.append(
            Portfolio(
                user=user,
                kind=kind,
                target_hf=target_hf,
                emode=category.category_id if category else 0,
                collaterals=tuple(collaterals),
                disabled=tuple(disabled),
                debts=tuple(debts),
                # supplied on its behalf before it enters e-mode, an LT-0 asset would not become collateral
                sponsored=kind != "edge"
                and rng.random() < SPONSORED_SHARE
                and all(reserves[s].liquidation_threshold for s, _ in collaterals),
            )
        )
    return plans


def borrower_txs(market: Market, plan: Portfolio) -> list[Tx]:
    """setUserEMode first (an e-mode-only collateral is enabled on supply only inside its category), then
    supplies, collateral switched off where planned (not for an LT-0 asset: never on), borrows."""
    reserves, pool, user = market.by_symbol, market.pool, plan.user
    txs: list[Tx] = []
    if plan.emode:
        txs.append(Tx(user, pool, call_data("setUserEMode(uint8)", plan.emode), label="setUserEMode"))
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
        if reserves[symbol].liquidation_threshold:
            txs.append(
                Tx(
                    user,
                    pool,
                    call_data("setUserUseReserveAsCollateral(address,bool)", reserves[symbol].asset, False),
                    label=f"collateral off {symbol}",
                )
            )
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


def ltv_txs(market: Market, raised: bool) -> list[Tx]:
    """V3.6 admin transactions that set every LTV to its threshold (raised) or back to its configured value."""
    admin, configurator = market.admin, market.pool_configurator
    txs = []
    for r in market.reserves:
        if not r.liquidation_threshold:  # e-mode-only collateral: LTV and LT stay 0 outside e-mode
            continue
        txs.append(
            Tx(
                admin,
                configurator,
                call_data(
                    "configureReserveAsCollateral(address,uint256,uint256,uint256)",
                    r.asset,
                    r.liquidation_threshold if raised else r.ltv,
                    r.liquidation_threshold,
                    r.liquidation_bonus,
                ),
                label=f"ltv {r.symbol}",
            )
        )
    for e in market.emode_categories:
        txs.append(
            Tx(
                admin,
                configurator,
                call_data(
                    "setEModeCategory(uint8,uint16,uint16,uint16,string)",
                    e.category_id,
                    e.liquidation_threshold if raised else e.ltv,
                    e.liquidation_threshold,
                    e.liquidation_bonus,
                    e.label,
                ),
                label=f"emode ltv {e.category_id}",
            )
        )
    return txs


def seed(
    rpc: Rpc,
    market: Market,
    n_borrowers: int,
    seed: int = 0,
    *,
    start_index: int = 0,
    chunk_users: int = 250,
    progress: Callable[[int], None] | None = None,
    on_block: Callable[[int], None] | None = None,
) -> SeedResult:
    """Create `n_borrowers` borrowers on the V3.6 market: same signature and result as ../seed.py's `seed`."""
    shape = read_shape(rpc, market)
    plans = plan_portfolios(market, shape, oracle_prices(rpc, market), n_borrowers, seed, start_index)
    return run_seeding(
        rpc,
        market,
        plans,
        raise_ltv=ltv_txs(market, raised=True),
        restore_ltv=ltv_txs(market, raised=False),
        txs_for=lambda plan: borrower_txs(market, plan),
        chunk_users=chunk_users,
        progress=progress,
        on_block=on_block,
    )
