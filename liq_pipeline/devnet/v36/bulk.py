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

import functools
import math
import random
from dataclasses import dataclass

from .. import seed as _seed
from ..accounts import borrower_address
from ..market import Market
from ..rpc import Rpc
from ..seed import (
    SPONSORED_SHARE,
    Portfolio,
    debt_for,
    debts_and_disabled,
    draw_size_and_hf,
    extra_supply,
    split_collateral,
)
from ..txs import Tx
from .deploy import eth_call
from .spec import EModeSpec

EMODE_SHARE = 0.35  # three categories
EDGE_SHARE = 0.04
ONE_WEI_SHARE = 0.02
LT0_HELD_SHARE = 0.10  # of the users outside e-mode: also supply the e-mode-only asset (no collateral for them)
BORROWING_ENABLED_BIT = 58  # ReserveConfiguration
FROZEN_BIT = 57


Category = EModeSpec  # an e-mode category as read from the chain: its bitmaps as symbols


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
            Category(
                e.category_id,
                e.ltv,
                e.liquidation_threshold,
                e.liquidation_bonus,
                e.label,
                symbols(collateral),
                symbols(borrowable),
            )
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
            size_kind, total_usd, target_hf = draw_size_and_hf(rng)
            kind = kind or size_kind

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
        collaterals = split_collateral(rng, pool, total_usd, reserves, prices)
        boosted = category.collateral if category else ()
        target_hf, debt_usd = debt_for(collaterals, reserves, prices, target_hf, category, boosted, within_ltv)
        edge = kind == "edge"
        debts, disabled = debts_and_disabled(
            rng,
            debt_candidates,
            collaterals,
            debt_usd,
            collateral_ok,
            total_usd,
            market,
            prices,
            one_wei=kind == "one_wei",
            may_disable=not edge,
        )
        if category is None and lt0 and not edge and rng.random() < LT0_HELD_SHARE:
            # supplied outside e-mode: not collateral (reserve LTV 0), nothing to turn off
            disabled += extra_supply(rng, lt0, total_usd, reserves, prices)
        emode_id = category.category_id if category else 0
        # supplied on its behalf before it enters e-mode, an LT-0 asset would not become collateral
        sponsored = (
            not edge
            and rng.random() < SPONSORED_SHARE
            and all(reserves[s].liquidation_threshold for s, _ in collaterals)
        )
        plans.append(Portfolio(user, kind, target_hf, emode_id, tuple(collaterals), tuple(disabled), debts, sponsored))
    return plans


def borrower_txs(market: Market, plan: Portfolio) -> list[Tx]:
    """setUserEMode first (an e-mode-only collateral is enabled on supply only inside its category), then
    supplies, collateral switched off where planned (not for an LT-0 asset: never on), borrows."""
    return _seed.borrower_txs(market, plan, v36=True)


def ltv_txs(market: Market, raised: bool) -> list[Tx]:
    """V3.6 admin transactions that set every LTV to its threshold (raised) or back to its configured value."""
    return _seed.ltv_txs(market, raised, v36=True)


def _plan_on_chain(
    rpc: Rpc, market: Market, prices: dict[str, int], n: int, seed: int, start_index: int
) -> list[Portfolio]:
    return plan_portfolios(market, read_shape(rpc, market), prices, n, seed, start_index)


# Create `n_borrowers` borrowers on the V3.6 market: same signature and result as ../seed.py's `seed`.
seed = functools.partial(_seed.seed, planner=_plan_on_chain, v36=True)
