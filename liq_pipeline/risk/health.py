"""Vectorized health factors for every user at once, with an exact re-decision near HF = 1.

Two stages, split by how often their inputs change:
- `build_book` (when positions change): float mirrors of the exact Int128 scaled balances, collateral masked by
  the user's enabled bit and LT > 0, LT-weighted collateral with each user's e-mode threshold, per-leg flags.
- `hf_float_exprs` (every block, every scenario): three weighted sums over the reserves, like a users x reserves
  matrix product; each reserve's weight folds its normalized index, 10^-decimals and the scenario price into one
  number, so the per-user work is R multiply-adds per sum.

Float alone flips HF<1 decisions near 1 (measured: thousands of flips among users placed within 1e-4 of 1 under
V3.0 rounding), so every user whose float HF is within its error bound of 1 is re-computed on the exact integer
path, and so is every user whose floored average threshold the float cannot settle. No decision of this module
differs from the exact path.

Error bound of the float HF, relative: float64 sums (< 1e-13) plus the contract's roundings that the fast path
skips: each leg's balance is rounded to a whole token unit (worth price / 10^decimals base units: 95,000 for one
satoshi of BTC) and its base value to a whole base unit. Summed per user as slack, divided by the totals. Under
V3.0-3.4 rounding, a floored average threshold too close to a whole bps widens the band by two bps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from .exact import AccountData, account_data
from .market import MarketState, coll_col, debt_col, on_col, stable_col, user_positions
from .wadray import RAY

FLOAT_REL_TOL = 1e-9  # far above float64 summation error, far below any real decision margin
AVG_LT_AMBIGUITY = 1e-6  # a float average threshold this close to a whole bps cannot be floored safely
DEBT_PRICE_BOUND = 2.0  # scenario debt prices stay below 2x the oracle price (shocks < 100 %)


@dataclass(frozen=True)
class ScenarioPrices:
    """Integer prices of one scenario: collateral legs and debt legs are valued separately."""

    name: str
    collateral: Mapping[int, int]
    debt: Mapping[int, int]


def baseline_prices(market: MarketState) -> ScenarioPrices:
    return ScenarioPrices("baseline", dict(market.prices), dict(market.prices))


# Column names of the book's float mirrors, per reserve id.
def cs(r: int) -> str:
    return f"_cs_{r}"  # scaled collateral, only where enabled and LT > 0


def ws(r: int) -> str:
    return f"_ws_{r}"  # scaled collateral x the user's effective liquidation threshold (bps)


def ds(r: int) -> str:
    return f"_ds_{r}"  # scaled variable debt


def st(r: int) -> str:
    return f"_st_{r}"  # stable debt balance (V3.0-3.1 only)


def hc(r: int) -> str:
    return f"_hc_{r}"  # 1.0 when the user holds usable collateral here


def hd(r: int) -> str:
    return f"_hd_{r}"  # 1.0 when the user owes debt here


@dataclass(frozen=True)
class PositionBook:
    """Exact positions and their float mirrors, row for row in the same order."""

    positions: pl.DataFrame  # the exact wide frame (Int128), the exact path's source
    floats: pl.DataFrame  # user, emode and the float columns above, plus _lt_min, _lt_uniform, _exact_only
    reserve_ids: tuple[int, ...]
    has_stable: bool

    @property
    def height(self) -> int:
        return self.floats.height


def _threshold_expr(market: MarketState, reserve_id: int) -> pl.Expr:
    """The user's liquidation threshold on this reserve: the e-mode one when the user's category covers it."""
    own = float(market.by_id[reserve_id].liquidation_threshold)
    by_category = {
        category: float(market.emode_categories[category].liquidation_threshold)
        for category in market.emode_categories
        if market.in_emode(category, reserve_id)
    }
    if not by_category:
        return pl.lit(own)
    return pl.col("emode").replace_strict(by_category, default=own, return_dtype=pl.Float64)


def build_book(positions: pl.DataFrame, market: MarketState) -> PositionBook:
    """Float mirrors of the positions. Depends on the market's configuration (thresholds, e-mode), not on its
    prices or indices: rebuild when positions or configuration change, not every block."""
    names = set(positions.columns)
    ids = tuple(r for r in market.reserve_ids if coll_col(r) in names)
    has_stable = market.rules.counts_stable_debt and any(stable_col(r) in names for r in ids)
    exprs: list[pl.Expr] = [pl.col("user"), pl.col("emode")]
    thresholds: list[pl.Expr] = []
    for r in ids:
        reserve = market.by_id[r]
        usable = pl.col(on_col(r)) & pl.lit(reserve.liquidation_threshold > 0)
        scaled = pl.when(usable).then(pl.col(coll_col(r)).cast(pl.Float64)).otherwise(0.0)
        threshold = _threshold_expr(market, r)
        holds = usable & (pl.col(coll_col(r)) > 0)
        owes = pl.col(debt_col(r)) > 0
        exprs += [
            scaled.alias(cs(r)),
            (scaled * threshold).alias(ws(r)),
            pl.col(debt_col(r)).cast(pl.Float64).alias(ds(r)),
        ]
        if has_stable:
            stable = pl.col(stable_col(r)) if stable_col(r) in names else pl.lit(0)
            exprs.append(stable.cast(pl.Float64).alias(st(r)))
            owes = owes | (stable > 0)
        exprs += [holds.cast(pl.Float64).alias(hc(r)), owes.cast(pl.Float64).alias(hd(r))]
        thresholds.append(pl.when(holds).then(threshold))
    lt_min = pl.min_horizontal(thresholds) if thresholds else pl.lit(None, pl.Float64)
    lt_max = pl.max_horizontal(thresholds) if thresholds else pl.lit(None, pl.Float64)
    override_categories = [
        c for c, category in market.emode_categories.items() if market.rules.emode_price_source and category.price
    ]
    exprs += [
        lt_min.alias("_lt_min"),
        (lt_min == lt_max).fill_null(True).alias("_lt_uniform"),
        (lt_max / lt_min).fill_null(1.0).alias("_lt_spread"),
        pl.col("emode").is_in(override_categories).alias("_exact_only"),
    ]
    return PositionBook(positions, positions.select(exprs), ids, has_stable)


def chain_sum(terms: Sequence[pl.Expr]) -> pl.Expr:
    """Sum of expressions as a plain chain of +: polars fuses it into one pass (~3x faster than sum_horizontal
    over the same terms, measured at 1M rows)."""
    if not terms:
        return pl.lit(0.0)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def weighted_sum(columns: Sequence[str], weights: Sequence[float]) -> pl.Expr:
    return chain_sum([pl.col(c) * w for c, w in zip(columns, weights, strict=True) if w != 0.0])


def collateral_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> list[float]:
    """Base-currency value of one scaled collateral unit per reserve: income index x price / 10^decimals."""
    return [market.income_index[r] / RAY * prices.collateral[r] / market.by_id[r].unit for r in ids]


def debt_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> list[float]:
    """Base-currency value of one scaled debt unit per reserve: debt index x price / 10^decimals."""
    return [market.debt_index[r] / RAY * prices.debt[r] / market.by_id[r].unit for r in ids]


def scenario_sums(market: MarketState, prices: ScenarioPrices, book: PositionBook) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(LT-weighted collateral, collateral, debt) in base-currency units for one scenario."""
    ids = book.reserve_ids
    coll_w = collateral_weights(market, prices, ids)
    weighted = weighted_sum([ws(r) for r in ids], coll_w)
    collateral = weighted_sum([cs(r) for r in ids], coll_w)
    debt = weighted_sum([ds(r) for r in ids], debt_weights(market, prices, ids))
    if book.has_stable:
        debt = debt + weighted_sum([st(r) for r in ids], [prices.debt[r] / market.by_id[r].unit for r in ids])
    return weighted, collateral, debt


def slack_exprs(market: MarketState, book: PositionBook) -> tuple[pl.Expr, pl.Expr]:
    """Rounding slack per user in base units: one token unit plus one base unit per leg (debt at 2x price)."""
    ids = book.reserve_ids
    unit_value = [market.by_id[r].price / market.by_id[r].unit for r in ids]
    coll = weighted_sum([hc(r) for r in ids], [v + 1.0 for v in unit_value])
    debt = weighted_sum([hd(r) for r in ids], [DEBT_PRICE_BOUND * v + 1.0 for v in unit_value])
    return coll, debt


def sum_exprs(market: MarketState, prices: ScenarioPrices, book: PositionBook, suffix: str) -> list[pl.Expr]:
    """Stage 1 of a scenario: its three weighted sums as columns `_S_`, `_C_`, `_D_{suffix}`."""
    weighted, collateral, debt = scenario_sums(market, prices, book)
    return [weighted.alias(f"_S_{suffix}"), collateral.alias(f"_C_{suffix}"), debt.alias(f"_D_{suffix}")]


def block_slack_exprs(market: MarketState, book: PositionBook) -> list[pl.Expr]:
    """Stage 1, once per block: rounding slack columns `_slack_c`, `_slack_d` (see slack_exprs)."""
    coll, debt = slack_exprs(market, book)
    return [coll.alias("_slack_c"), debt.alias("_slack_d")]


def hf_float_exprs(market: MarketState, suffix: str) -> list[pl.Expr]:
    """Stage 2: float HF and whether it must be re-decided exactly, as `hf_{suffix}` and `band_{suffix}`, from
    stage 1's columns. Staged so that polars evaluates each sum once (measured 5x faster than one big select)."""
    weighted, collateral, debt = pl.col(f"_S_{suffix}"), pl.col(f"_C_{suffix}"), pl.col(f"_D_{suffix}")
    # |float - exact| <= slack, so relative to the EXACT total the error is at most slack / (float - slack).
    coll_error = pl.col("_slack_c") / (collateral - pl.col("_slack_c"))
    debt_error = pl.col("_slack_d") / (debt - pl.col("_slack_d"))
    if market.rules.floors_average_threshold:
        # HF_float / HF_exact lies within [(1 - ec) / (1 + ed), (1 + ec) / (1 - ed)]; the upper side is the wider.
        tolerance = FLOAT_REL_TOL + (1.0 + coll_error) / (1.0 - debt_error) - 1.0
        # avgLT = floor(sum(coll x LT) / coll). Exact when every collateral leg has the same threshold; else the
        # float ratio is off by up to LT x (relative error), and a floor that close to a whole bps may be off by
        # one bps: then widen the band by two bps of threshold rather than trust it.
        ratio = weighted / collateral
        average = pl.when(pl.col("_lt_uniform")).then(pl.col("_lt_min")).otherwise(ratio.floor())
        distance = (ratio - ratio.round(0)).abs()
        ambiguous = ~pl.col("_lt_uniform") & (distance <= AVG_LT_AMBIGUITY + 2.0 * 10_000.0 * coll_error)
        tolerance = tolerance + pl.when(ambiguous).then(2.0 / average).otherwise(0.0)
        hf = collateral * average / 10_000.0 / debt
    else:
        # The LT-weighted sum: a leg's error counts at its own threshold, up to max/min threshold times ec.
        weighted_error = coll_error * pl.col("_lt_spread")
        tolerance = FLOAT_REL_TOL + (1.0 + weighted_error) / (1.0 - debt_error) - 1.0
        hf = weighted / 10_000.0 / debt
    hf = pl.when(debt > 0).then(pl.when(collateral > 0).then(hf).otherwise(0.0)).otherwise(float("inf"))
    owes = debt > 0
    near_one = owes & (collateral > 0) & ((hf - 1.0).abs() <= tolerance)
    # Totals within their rounding slack of zero may be zero on chain (a dust debt floors to 0 base units: HF is
    # then infinite): only the exact path can tell.
    slack_d, slack_c = pl.col("_slack_d"), pl.col("_slack_c")
    near_zero = owes & ((2.0 * slack_d >= debt) | ((collateral > 0) & (2.0 * slack_c >= collateral)))
    band = (near_one | near_zero).fill_null(True) | pl.col("_exact_only")
    return [hf.alias(f"hf_{suffix}"), band.alias(f"band_{suffix}")]


def decision_preserving_float(data: AccountData) -> float:
    """The exact HF as a float whose `< 1.0` gives the exact decision (1e18 - 1 wad would round to 1.0)."""
    value = data.hf_float
    if data.liquidatable and value >= 1.0:
        return math.nextafter(1.0, 0.0)
    return value


def redecide_exactly(
    evaluated: pl.DataFrame,
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
) -> tuple[pl.DataFrame, int]:
    """Replace the float HF of every banded (user, scenario) by the exact one, flagged `exact_{scenario}`.
    `evaluated` is row-aligned with the book. Returns the frame and the number of exact evaluations."""
    band_columns = [f"band_{s.name}" for s in scenarios]
    rows = evaluated.select(pl.arg_where(pl.any_horizontal(band_columns))).to_series()
    exact_flags = {s.name: pl.col(f"band_{s.name}").alias(f"exact_{s.name}") for s in scenarios}
    if rows.len() == 0:
        return evaluated.with_columns(exact_flags.values()), 0
    positions = user_positions(book.positions[rows], market.reserve_ids)
    banded = evaluated.select(band_columns)[rows]
    values = {s.name: evaluated[f"hf_{s.name}"].to_numpy().copy() for s in scenarios}
    count = 0
    for row_index, position, flags in zip(rows.to_list(), positions, banded.iter_rows(), strict=True):
        for s, flagged in zip(scenarios, flags, strict=True):
            if flagged:
                values[s.name][row_index] = decision_preserving_float(
                    account_data(position, market, s.collateral, s.debt)
                )
                count += 1
    replaced = [pl.Series(f"hf_{name}", array) for name, array in values.items()]
    return evaluated.with_columns(*replaced, *exact_flags.values()), count


def evaluate_health(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    extra: Sequence[pl.Expr] = (),
) -> tuple[pl.DataFrame, int]:
    """One pass over the book: `hf_{s}` for every scenario (exactly decided), `exact_{s}`, and any extra
    expressions evaluated over the same frame (projections). Returns the frame and the exact evaluation count."""
    stage1: list[pl.Expr] = [*block_slack_exprs(market, book)]
    stage2: list[pl.Expr] = [pl.col("user")]
    for s in scenarios:
        stage1 += sum_exprs(market, s, book, s.name)
        stage2 += hf_float_exprs(market, s.name)
    # extra expressions (projections) see the book's columns and stage 1's sums
    evaluated = book.floats.lazy().with_columns(*stage1).select(*stage2, *extra).collect()
    decided, count = redecide_exactly(evaluated, book, market, scenarios)
    return decided.drop([f"band_{s.name}" for s in scenarios]), count


def health_factors(
    positions: pl.DataFrame | PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices] | None = None,
) -> pl.DataFrame:
    """HF of every user in every scenario: `user`, `hf_{s}` (float, inf = no debt), `liquidatable_{s}`,
    `exact_{s}` (decided on the exact path). Decisions equal the exact path's for every user."""
    scenarios = list(scenarios or [baseline_prices(market)])
    book = positions if isinstance(positions, PositionBook) else build_book(positions, market)
    decided, _count = evaluate_health(book, market, scenarios)
    return decided.select(
        "user",
        *[
            expr
            for s in scenarios
            for expr in (
                pl.col(f"hf_{s.name}"),
                (pl.col(f"hf_{s.name}") < 1.0).alias(f"liquidatable_{s.name}"),
                pl.col(f"exact_{s.name}"),
            )
        ],
    )
