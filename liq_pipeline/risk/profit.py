"""Exact profit-maximising liquidation sizing (pure: no I/O).

For one user, every (collateral, debt) pair it holds and a set of `debtToCover` values, the liquidation that earns
the most net of every cost, each amount evaluated EXACTLY:

- the Pool's side with `risk.liquidation.liquidation_outcome` (the version's own rounding, close factor, dust rule,
  reverts): debt repaid, collateral received;
- the swap of the collateral received into the debt asset on a Uniswap V2 pair at its current reserves
  (`risk.amm.get_amount_out`, to the unit). A pair without a pool is skipped, unless collateral and debt are the
  same asset (no swap);
- the flash-loan premium on the debt repaid (`Pool.FLASHLOAN_PREMIUM_TOTAL`, bps): FlashLoanLogic's
  `amount.percentMul(premium)` (half up) up to 3.4, `percentMulCeil` in aave-v3-origin 3.5+ (`rules.token_math`);
- gas: L2 gas units x gas price + the L1 data fee (OP-stack, chain/l1_fee.py), in wei, converted into the debt
  asset with the ETH and debt-asset oracle prices, rounded up (a cost is never under-counted).

profit = swap output (or the collateral itself) - debt repaid - premium - gas, in debt-asset units.

Amounts tried per pair: `type(uint256).max` (as much as allowed), the close factor's cap, the amount that seizes
all the collateral (when the collateral binds), the largest amount the 3.3+ dust rule accepts, and a golden-section
search over the integers below that (the swap's slippage makes profit concave in the amount; the integer floors
add a few units of noise, so the search ends with every integer of a small window around its best point).
A pair is searched only when a bound on what any of its amounts earns (the largest liquidation at the pair's spot
price, and the swap's continuous maximum with its slippage) can reach the minimum profit and beat the best pair
found so far; the bounds never undercut an amount's exact profit, so skipping a pair never changes the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from math import isqrt

from .amm import FEE_DENOMINATOR, FEE_NUMERATOR, get_amount_out
from .exact import AccountData, account_data
from .liquidation import MIN_LEFTOVER_BASE, MUST_NOT_LEAVE_DUST, LiquidationOutcome, liquidation_outcome
from .market import MarketState, UserPosition
from .versions import ProtocolRules
from .wadray import UINT256_MAX, percent_mul, percent_mul_ceil

WEI_PER_ETH = 10**18
_INV_PHI = Fraction(987, 1597)  # 1/phi to 6 digits: the golden-section step (Fibonacci ratio)
WINDOW = 16  # the search ends with every integer within this of its best point
# ... and where it starts at the swap's analytic optimum, within OPTIMUM_REACH_SHIFT (amount / 2^26) of it: the
# profit is flat there (its slope is 0) and the integer floors make a plateau of amounts one unit apart in profit.
# Measured on 200 random V3.6 whales against the wider search (window 16, amount / 2^20), together with the dust
# rule's guided boundary search: 0.33 ms a plan instead of 1.33, the same profit or one debt-asset unit less
OPTIMUM_WINDOW = 4
OPTIMUM_REACH_SHIFT = 26
CLIMB_STEPS = 16
# collateral units a liquidation of x may seize over k x (k: seized / repaid at the largest amount), besides the
# bonus's multiple of the price conversion's floor: the bonus's and the protocol fee's roundings at x and at the
# largest amount (through k), ~3 each. A review's fuzzing (~32,000 cases, every version) found the greatest excess
# 0.76 of a unit's value with 6 and no bonus term; a 555 % bonus (65,535 bps) needed the bonus term
SEIZED_ROUNDING_UNITS = 6
MAX_SEARCH_STEPS = 200  # enough for any uint128 range (0.618^200 * 2^128 < 1)

# (reserve id a, reserve id b) -> (pool reserve of a, pool reserve of b), raw token units; one entry per pool, either
# order (the lookup tries both).
PoolReserves = Mapping[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class CostInputs:
    """Everything a liquidation costs besides the Pool's own arithmetic."""

    flash_premium_bps: int  # Pool.FLASHLOAN_PREMIUM_TOTAL (5 = 0.05 %); 0 in inventory mode
    gas_units: int  # L2 gas of the whole transaction (flash loan + liquidation + swap)
    gas_price_wei: int  # L2 effective gas price (base fee + priority fee)
    l1_fee_wei: int  # OP-stack L1 data fee of the transaction (0 elsewhere)
    eth_price: int  # ETH's oracle price in the market's base currency (8 decimals on Base)

    @property
    def gas_wei(self) -> int:
        return self.gas_units * self.gas_price_wei + self.l1_fee_wei


@dataclass(frozen=True)
class Costs:
    """The costs of one plan, broken down."""

    flash_premium: int  # debt-asset units
    l2_gas_wei: int
    l1_fee_wei: int
    gas: int  # l2 + l1 in debt-asset units (rounded up)
    swap_in: int  # collateral sold (0 when collateral = debt)
    swap_out: int  # debt asset bought (= collateral received when collateral = debt)

    @property
    def total(self) -> int:
        """Premium + gas, debt-asset units (the swap's slippage is in swap_out)."""
        return self.flash_premium + self.gas


@dataclass(frozen=True)
class LiquidationPlan:
    """The most profitable liquidationCall for one user, net of every cost."""

    user: str
    collateral_id: int
    debt_id: int
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int  # the argument to send (UINT256_MAX: "as much as allowed")
    outcome: LiquidationOutcome  # what the Pool does with it
    costs: Costs
    profit: int  # debt-asset units: swap_out - debt repaid - premium - gas
    profit_base: int  # base currency units (8 decimals: USD on Base), floored
    base_currency_unit: int
    evaluated: int  # liquidation outcomes computed to choose it (every pair)
    mode: str = (
        "flash"  # "flash": flash loan, collateral sold on the pair; "inventory": debt asset held, collateral kept
    )

    @property
    def profit_usd(self) -> float:
        return self.profit_base / self.base_currency_unit


def pool_reserves(pools: PoolReserves, collateral_id: int, debt_id: int) -> tuple[int, int] | None:
    """(pool reserve of the collateral, pool reserve of the debt asset), or None when there is no pool or it is
    unfunded (a reserve of 0 on either side: nothing can be swapped on it, so it is no venue)."""
    if (collateral_id, debt_id) in pools:
        reserves = pools[collateral_id, debt_id]
    elif (debt_id, collateral_id) in pools:
        debt_side, collateral_side = pools[debt_id, collateral_id]
        reserves = collateral_side, debt_side
    else:
        return None
    return reserves if min(reserves) > 0 else None


def flash_premium(amount: int, premium_bps: int, rules: ProtocolRules) -> int:
    """FlashLoanLogic's premium: percentMul (half up) up to 3.4, percentMulCeil from aave-v3-origin 3.5."""
    if not premium_bps:
        return 0
    return percent_mul_ceil(amount, premium_bps) if rules.token_math else percent_mul(amount, premium_bps)


def gas_in_debt(gas_wei: int, eth_price: int, debt_price: int, debt_unit: int) -> int:
    """`gas_wei` worth of ETH in debt-asset units, rounded up."""
    if gas_wei <= 0:
        return 0
    return -(-gas_wei * eth_price * debt_unit // (WEI_PER_ETH * debt_price))


@dataclass
class _Pair:
    """Evaluates amounts of one (collateral, debt) pair, each once."""

    position: UserPosition
    market: MarketState
    collateral_id: int
    debt_id: int
    reserves: tuple[int, int] | None  # None: collateral = debt, no swap
    premium_bps: int
    gas: int  # debt-asset units
    liquidator: str | None
    account: AccountData  # the position's, in `market` (already at the landing block's timestamp)
    inventory: int | None = None  # inventory mode: the debt asset held (the most it can repay); None: flash loan

    def __post_init__(self) -> None:
        self.seen: dict[int, tuple[int | None, LiquidationOutcome]] = {}

    def outcome(self, amount: int) -> LiquidationOutcome:
        return self.evaluate(amount)[1]

    def evaluate(self, amount: int) -> tuple[int | None, LiquidationOutcome]:
        """(profit or None when the Pool reverts or the swap is impossible, the outcome)."""
        if amount in self.seen:
            return self.seen[amount]
        out = liquidation_outcome(
            self.position,
            self.market,
            self.collateral_id,
            self.debt_id,
            amount,
            liquidator=self.liquidator,
            account=self.account,
            with_position_after=False,  # the plan's own outcome has it (_as_plan)
        )
        profit = None
        if out.ok and out.debt_repaid > 0 and out.collateral_seized > 0:
            bought = self.bought(out.collateral_seized)
            if bought is not None and (self.inventory is None or out.debt_repaid <= self.inventory):
                flash = self.inventory is None
                premium = flash_premium(out.debt_repaid, self.premium_bps, self.market.rules) if flash else 0
                profit = bought - out.debt_repaid - premium - self.gas
        self.seen[amount] = (profit, out)
        return profit, out

    def bought(self, collateral: int) -> int | None:
        if self.collateral_id == self.debt_id:
            return collateral
        if self.inventory is not None:  # kept, valued at the oracle as the Liquidator values it (floored)
            coll, debt = self.market.by_id[self.collateral_id], self.market.by_id[self.debt_id]
            return collateral * coll.price * debt.unit // (debt.price * coll.unit)
        if self.reserves is None:
            return None
        reserve_in, reserve_out = self.reserves
        if reserve_in <= 0 or reserve_out <= 0:
            return None
        return get_amount_out(collateral, reserve_in, reserve_out)

    def profit(self, amount: int) -> float | int:
        value = self.evaluate(amount)[0]
        return float("-inf") if value is None else value

    @property
    def swaps(self) -> bool:
        """The collateral is sold on a pair (profit concave in the amount); otherwise profit is linear in it."""
        return self.inventory is None and self.collateral_id != self.debt_id

    def upper_bound(self, at_max: LiquidationOutcome) -> int:
        """A bound no amount's profit exceeds (debt-asset units), from the outcome of the largest amount: the
        collateral per unit repaid is the same at every amount (the bonus at the oracle prices, up to rounding), and
        a swap never pays more than the pair's spot price (its output is concave), so profit is at most linear in
        the amount: the largest liquidation valued at spot (or at the oracle, kept) minus what it repays when that
        gains, else ~0 (a small amount), plus the integers' roundings (`_rounding_slack`), minus the gas."""
        seized, repaid = at_max.collateral_seized, at_max.debt_repaid
        if self.collateral_id == self.debt_id:
            value = seized
        elif not self.swaps:
            value = self.bought(seized) or 0
        else:
            reserve_in, reserve_out = self.reserves
            value = seized * reserve_out * FEE_NUMERATOR // (reserve_in * FEE_DENOMINATOR)
        # a loss at the largest amount bounds nothing below it: small amounts lose less (review, 2026-12-08: a
        # 3-unit collateral pair bounded at -103 earned +19 at 418)
        return max(0, value - repaid) * 101 // 100 + self._rounding_slack(at_max) - self.gas

    def profit_bound(self, at_max: LiquidationOutcome) -> int:
        """The tighter of the two bounds on what any amount of this pair earns (debt-asset units)."""
        slippage = self.slippage_bound(at_max)
        spot = self.upper_bound(at_max)
        return spot if slippage is None else min(spot, slippage)

    def _rounding_slack(self, at: LiquidationOutcome) -> int:
        """Debt units the integer roundings may add to an amount's profit over the bounds' rational model: the
        collateral a liquidation of x seizes over k x, in collateral units (the price conversion's floor is lost
        before the bonus multiplies it: up to the bonus's multiple, then the bonus's and the protocol fee's
        roundings, at x and at the largest amount through k), each worth at most one unit's value; and a unit of
        the premium's rounding and one of the output's."""
        units = -(-at.liquidation_bonus // 10_000) + SEIZED_ROUNDING_UNITS
        if self.collateral_id == self.debt_id:
            unit_value = 1
        elif not self.swaps:  # kept, valued at the oracle
            coll, debt = self.market.by_id[self.collateral_id], self.market.by_id[self.debt_id]
            unit_value = -(-(coll.price * debt.unit) // (debt.price * coll.unit))
        elif self.reserves is None or self.reserves[0] <= 0:
            unit_value = 0
        else:  # at most the swap's first marginal price
            unit_value = -(-self.reserves[1] // self.reserves[0])
        return units * unit_value + 2

    def slippage_bound(self, at: LiquidationOutcome) -> int | None:
        """A bound no amount's profit exceeds (debt-asset units), the swap's slippage counted (`upper_bound` values
        all of it at the spot price), from the collateral-per-repaid rate k of `at`; None when nothing is sold on a
        pair. Continuous, profit(x) = out(k x) - (1 + premium) x with out(y) = 997 y R_out / (1000 R_in + 997 y);
        with u = 997 k x, B = 1000 R_in and c = (1 + premium) / (997 k) it is R_out u / (B + u) - c u, whose
        maximum over u >= 0 is (sqrt(R_out) - sqrt(B c))^2 (0 when R_out <= B c). The integers add at most
        `_rounding_slack`, and 1 % as `upper_bound`'s. Why: on the 100k devnet three quarters of the users the
        executor planned had no profitable plan (mostly pairs its earlier transactions of the block had moved),
        and searching their pairs was 82 % of the planning of its largest wave (121 of 148 ms)."""
        seized, repaid = at.collateral_seized, at.debt_repaid
        if not self.swaps or self.reserves is None or seized <= 0 or repaid <= 0:
            return None
        reserve_in, reserve_out = self.reserves
        if reserve_in <= 0 or reserve_out <= 0:
            return None
        # B c rounded down and sqrt(R_out) rounded up: the gap, and so the bound, can only be larger
        bc = FEE_DENOMINATOR * reserve_in * (10_000 + self.premium_bps) * repaid // (10_000 * FEE_NUMERATOR * seized)
        gap = isqrt(reserve_out) + 1 - isqrt(bc)
        best = gap * gap if gap > 0 else 0
        return best * 101 // 100 + self._rounding_slack(at) - self.gas

    def dust_boundary(self, at: LiquidationOutcome) -> int | None:
        """Where the 3.3+ dust rule starts refusing, from one outcome `at` of this pair (accepted or refused by the
        rule: its amounts are filled in either way): the largest debtToCover leaving >= MIN_LEFTOVER_BASE of the
        debt and of the collateral, with the collateral taken per unit repaid (bonus and fee) taken as linear. A
        guess for the exact search: the integer roundings move it by a few units."""
        repaid, taken = at.debt_repaid, at.collateral_seized + at.protocol_fee
        if repaid <= 0 or taken <= 0:
            return None
        debt, collateral = self.market.by_id[self.debt_id], self.market.by_id[self.collateral_id]
        debt_floor = -(-MIN_LEFTOVER_BASE * debt.unit // debt.price)
        collateral_floor = -(-MIN_LEFTOVER_BASE * collateral.unit // collateral.price)
        by_debt = at.user_reserve_debt - debt_floor
        by_collateral = (at.user_collateral_balance - collateral_floor) * repaid // taken
        return min(by_debt, by_collateral)

    def swap_optimum(self, at: LiquidationOutcome) -> int | None:
        """The debtToCover where the swap's marginal output equals the marginal repayment (1 + premium), for the
        collateral-per-repaid rate k of `at`: out(k x) = 997 k x R_out / (1000 R_in + 997 k x), whose derivative
        equals (10000 + bps) / 10000 at x = (sqrt(997 k R_out 1000 R_in 10000 / (10000 + bps)) - 1000 R_in) /
        (997 k). None when there is no interior optimum."""
        seized, repaid = at.collateral_seized, at.debt_repaid
        if not self.swaps or self.reserves is None or seized <= 0 or repaid <= 0:
            return None
        reserve_in, reserve_out = self.reserves
        a = FEE_DENOMINATOR * reserve_in
        # k = seized / repaid, in integers: sqrt(997 * seized * R_out * a * 10000 / (repaid * (10000 + bps)))
        root = isqrt(FEE_NUMERATOR * seized * reserve_out * a * 10_000 // (repaid * (10_000 + self.premium_bps)))
        if root <= a:
            return None
        return (root - a) * repaid // (FEE_NUMERATOR * seized)


def _ladder(limit: int, start: int = 1) -> list[int]:
    """1, 10, 100, ... up to `limit`, and `limit` itself; from the largest power of ten <= `start`."""
    out, x = [], 10 ** (len(str(start)) - 1) if start > 1 else 1
    while x < limit:
        out.append(x)
        x *= 10
    return [*out, limit] if limit >= 1 else []


def _largest_accepted(accepted: Callable[[int], bool], low: int, high: int, guess: int | None = None) -> int:
    """The largest x in [low, high] with accepted(x) (accepted(low) holds; accepted is monotone: true, then false).
    From a `guess` near the boundary, steps of 1, 2, 4, ... away from it until it is bracketed, then bisection:
    ~2 log2(|error|) + 2 evaluations where bisecting a uint range from scratch takes ~log2(high - low), 38 of a
    plan's 79 evaluations measured on random V3.6 whales."""
    if accepted(high):
        return high
    if guess is not None and low < guess < high:
        step = 1
        if accepted(guess):
            low = guess
            while low + step < high and accepted(low + step):
                low, step = low + step, step * 2
            high = min(high, low + step)
        else:
            high = guess
            while high - step > low and not accepted(high - step):
                high, step = high - step, step * 2
            low = max(low, high - step)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accepted(middle) else (low, middle)
    return low


def golden_max(f: Callable[[int], float | int], low: int, high: int, window: int = WINDOW) -> int:
    """An x in [low, high] maximising a unimodal-up-to-noise f: golden-section search over the integers, then every
    integer within `window` of the best point seen, then up to CLIMB_STEPS on while a neighbour is better. Ties go
    to the smaller x."""
    a, b = low, high
    for _ in range(MAX_SEARCH_STEPS):
        if b - a <= 2 * window:
            break
        step = int((b - a) * _INV_PHI)
        c, d = b - step, a + step
        if c >= d:
            break
        if f(c) >= f(d):
            b = d
        else:
            a = c
    best = None
    for x in range(max(low, a - window), min(high, b + window) + 1):
        if best is None or f(x) > f(best):
            best = x
    if best is None:
        return low
    # a best point on the window's edge climbs on while a neighbour is better, a few steps at most: up a plateau
    # of the floors' noise. Unbounded, it walked a sawtooth one unit at a time (an 18-decimal debt against a
    # collateral of fewer decimals seizes the same amount over ~1e10 amounts, profit falling by one unit at each:
    # 18 GB of evaluations on the 100k devnet before the bench was killed)
    for step in (1, -1):
        for _ in range(CLIMB_STEPS):
            if not (low <= best + step <= high and f(best + step) > f(best)):
                break
            best += step
    return best


def _plan_pair(pair: _Pair) -> tuple[int, int] | None:
    """(best profit, its debtToCover) for one pair, or None when every amount reverts."""
    market = pair.market
    candidates: list[int] = [UINT256_MAX]
    at_max = pair.outcome(UINT256_MAX)
    cap = at_max.max_liquidatable_debt
    if at_max.ok:
        top = at_max.debt_repaid
        candidates += [cap, top]  # the close factor's cap; the collateral boundary when the collateral binds
    elif at_max.reason == MUST_NOT_LEAVE_DUST and cap > 1:
        top = cap
    else:
        return None  # every amount reverts the same way (HF, flags, grace period, not borrowed, ...)
    high = top
    if market.rules.dust_rule_and_deficits and top > 1:
        # Amounts just under a full close leave < $1,000 and revert: the search stays below that boundary.
        def accepted(x: int) -> bool:
            return pair.outcome(x).ok

        # Tiny amounts revert too (a scaled burn of 0: InvalidBurnAmount): the first accepted amount on a x10
        # ladder bounds the search from below (amounts that small earn less than the gas anyway).
        # (and amounts under the gas cost never pay it: the ladder starts at its power of ten)
        low = next((x for x in _ladder(top - 1, start=pair.gas) if accepted(x)), None)
        if low is None:
            high = 0
        else:
            high = _largest_accepted(accepted, low, top - 1, pair.dust_boundary(at_max))
            candidates.append(high)
    else:
        low = 1
    if pair.inventory is not None and high > pair.inventory:  # never more than the inventory holds
        high = pair.inventory
        candidates.append(high)
    if low is not None and high >= low:
        candidates.append(low)
        if pair.swaps:  # concave: the analytic optimum, refined over the integers around it
            guess = pair.swap_optimum(pair.outcome(high))
            if guess is not None and low < guess < high:
                reach = max(4 * WINDOW, guess >> OPTIMUM_REACH_SHIFT)
                found = golden_max(pair.profit, max(low, guess - reach), min(high, guess + reach), OPTIMUM_WINDOW)
                candidates.append(found)
        # linear (no swap): the best amount is an end of the range, both candidates already
    best: tuple[int, int] | None = None
    for amount in candidates:
        profit = pair.evaluate(amount)[0]
        if profit is not None and (best is None or profit > best[0]):
            best = (profit, amount)
    return best


def _at_landing(market: MarketState, timestamp: int | None) -> MarketState:
    """`market` at the landing block's time, once per plan: a shifted MarketState recomputes every reserve's indices
    (measured: a third of a plan's time when each of its hundreds of evaluations shifted its own)."""
    if timestamp is None or timestamp == market.timestamp:
        return market
    return dataclasses.replace(market, timestamp=timestamp)


def plan_liquidation(
    position: UserPosition,
    market: MarketState,
    pools: PoolReserves,
    costs: CostInputs,
    *,
    liquidator: str | None = None,
    timestamp: int | None = None,
    min_profit_base: int = 1,
    inventory: Mapping[int, int] | None = None,
) -> LiquidationPlan | None:
    """The (collateral, debt, debtToCover) that earns the most (compared in base currency across debt assets),
    or None when no amount of any pair earns at least `min_profit_base` (base-currency units) or the Pool would
    revert on all of them. `pools`: see PoolReserves; `timestamp`: the block the transaction lands in.
    `inventory`: reserve id -> the debt asset the liquidator holds: each pair is then also planned in inventory mode
    (no flash loan, no swap, the collateral kept and valued at the oracle, as the Liquidator contract values it)."""
    market = _at_landing(market, timestamp)
    account = account_data(position, market)
    by_id = market.by_id
    collaterals = sorted(r for r, leg in position.legs.items() if leg.collateral_enabled and leg.scaled_atoken)
    debts = sorted(r for r, leg in position.legs.items() if leg.scaled_variable_debt or leg.stable_debt)
    pairs: list[tuple[Fraction, _Pair]] = []  # (upper bound of its profit in base currency, pair)
    for debt_id in debts:
        debt = by_id[debt_id]
        gas = gas_in_debt(costs.gas_wei, costs.eth_price, debt.price, debt.unit)
        for collateral_id in collaterals:
            reserves = None if collateral_id == debt_id else pool_reserves(pools, collateral_id, debt_id)
            held = (inventory or {}).get(debt_id, 0)
            options = []
            if reserves is not None or collateral_id == debt_id:
                options.append(None)  # a flash loan, the collateral sold on the pair
            if held > 0:
                options.append(held)  # the debt asset held, the collateral kept
            for limit in options:
                pair = _Pair(
                    position,
                    market,
                    collateral_id,
                    debt_id,
                    reserves,
                    costs.flash_premium_bps,
                    gas,
                    liquidator,
                    account,
                    limit,
                )
                at_max = pair.outcome(UINT256_MAX)
                if at_max.ok or at_max.reason == MUST_NOT_LEAVE_DUST:
                    pairs.append((Fraction(pair.profit_bound(at_max) * debt.price, debt.unit), pair))
    # The most promising pair first; a pair whose bound is below the best profit found cannot win and is not
    # searched (most users' pairs differ by far more than the bound's slack).
    pairs.sort(key=lambda item: item[0], reverse=True)
    best: tuple[Fraction, int, _Pair, int] | None = None
    evaluated = 0
    for bound, pair in pairs:
        # a pair that cannot earn min_profit_base is not searched: on the 100k devnet three quarters of the plans
        # were of users below 1 with no profitable liquidation (dust, bad debt), 70 % of the planning time
        if bound <= 0 or bound < min_profit_base or (best is not None and bound <= best[0]):
            evaluated += len(pair.seen)
            continue
        found = _plan_pair(pair)
        evaluated += len(pair.seen)
        if found is None:
            continue
        profit, amount = found
        debt = by_id[pair.debt_id]
        value = Fraction(profit * debt.price, debt.unit)
        if best is None or value > best[0]:
            best = (value, profit, pair, amount)
    if best is None:
        return None
    value, profit, pair, amount = best
    return _as_plan(pair, amount, profit, value, costs, min_profit_base, evaluated)


def _as_plan(
    pair: _Pair, amount: int, profit: int, value: Fraction, costs: CostInputs, min_profit_base: int, evaluated: int
) -> LiquidationPlan | None:
    """The plan of `amount` on `pair` (whose profit in debt units and in base currency are given), or None when it
    earns less than `min_profit_base`."""
    market, by_id = pair.market, pair.market.by_id
    profit_base = value.numerator // value.denominator
    if profit <= 0 or profit_base < min_profit_base:
        return None
    outcome = liquidation_outcome(  # the chosen amount's outcome in full (the search's lack position_after)
        pair.position,
        market,
        pair.collateral_id,
        pair.debt_id,
        amount,
        liquidator=pair.liquidator,
        account=pair.account,
    )
    flash = pair.inventory is None
    premium = flash_premium(outcome.debt_repaid, pair.premium_bps, market.rules) if flash else 0
    bought = pair.bought(outcome.collateral_seized)
    swapped = flash and pair.collateral_id != pair.debt_id
    breakdown = Costs(
        flash_premium=premium,
        l2_gas_wei=costs.gas_units * costs.gas_price_wei,
        l1_fee_wei=costs.l1_fee_wei,
        gas=pair.gas,
        swap_in=outcome.collateral_seized if swapped else 0,
        swap_out=(bought or 0) if flash else 0,  # same asset in flash mode: the collateral itself
    )
    return LiquidationPlan(
        user=pair.position.user,
        collateral_id=pair.collateral_id,
        debt_id=pair.debt_id,
        collateral_asset=by_id[pair.collateral_id].asset,
        debt_asset=by_id[pair.debt_id].asset,
        debt_to_cover=amount,
        outcome=outcome,
        costs=breakdown,
        profit=profit,
        profit_base=profit_base,
        base_currency_unit=market.base_currency_unit,
        evaluated=evaluated,
        mode="flash" if flash else "inventory",
    )


def plan_at(
    position: UserPosition,
    market: MarketState,
    pools: PoolReserves,
    costs: CostInputs,
    collateral_id: int,
    debt_id: int,
    debt_to_cover: int,
    mode: str,
    *,
    liquidator: str | None = None,
    timestamp: int | None = None,
    min_profit_base: int = 1,
    inventory: Mapping[int, int] | None = None,
) -> LiquidationPlan | None:
    """One given liquidation (a precomputed plan's pair, amount and mode), evaluated exactly in the current state:
    its plan, or None when the Pool would revert, the swap is impossible, or it no longer earns `min_profit_base`.
    No search: what a plan found for an earlier state costs one evaluation to check here."""
    market = _at_landing(market, timestamp)
    if collateral_id not in position.legs or debt_id not in position.legs:
        return None
    held = (inventory or {}).get(debt_id, 0) if mode == "inventory" else None
    if mode == "inventory" and held <= 0:
        return None
    reserves = None if collateral_id == debt_id else pool_reserves(pools, collateral_id, debt_id)
    if mode == "flash" and reserves is None and collateral_id != debt_id:
        return None
    debt = market.by_id[debt_id]
    gas = gas_in_debt(costs.gas_wei, costs.eth_price, debt.price, debt.unit)
    pair = _Pair(
        position,
        market,
        collateral_id,
        debt_id,
        reserves,
        costs.flash_premium_bps,
        gas,
        liquidator,
        account_data(position, market),
        held,
    )
    profit = pair.evaluate(debt_to_cover)[0]
    if profit is None:
        return None
    return _as_plan(pair, debt_to_cover, profit, Fraction(profit * debt.price, debt.unit), costs, min_profit_base, 1)
