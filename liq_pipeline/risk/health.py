"""Vectorized health factors for every user at once, with an exact re-decision near HF = 1.

The book (risk/book.py) holds float mirrors of the positions; `evaluate_health` (every block) makes per scenario
three weighted sums over the reserves, i.e. matrix products `(users x reserves) @ (reserves x scenarios)`; each
reserve's weight (risk/valuation.py) folds its normalized index, 10^-decimals and the scenario price into one
number. numpy does this in one BLAS call per sum (a polars plan of the same sums cost ~10k expression objects per
block, several ms of Python before any row is touched).

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from .book import PositionBook, build_book, take_rows
from .exact import AccountData, account_data
from .market import MarketState
from .valuation import ScenarioPrices, baseline_prices, collateral_weights, debt_weights, stable_weights

FLOAT_REL_TOL = 1e-9  # far above float64 summation error, far below any real decision margin
AVG_LT_AMBIGUITY = 1e-6  # a float average threshold this close to a whole bps cannot be floored safely
DEBT_PRICE_BOUND = 2.0  # scenario debt prices stay below 2x the oracle price (shocks < 100 %)
GATHER_FIRST = 8  # rows under 1/8 of the book: gather the inputs first (4.9k of 100k rows: 3.1 -> 1.7 ms)
SLACK_ROUNDING = 1.0 + 1e-5  # headroom over the float32 rounding of the slack sums
# A debt within its rounding slack of zero, under solid collateral: not liquidatable without the exact path when
# even the largest exact debt leaves the HF above this (see _decide: a margin far over the integer roundings)
DUST_DEBT_HF = 2.0
CHUNK_ROWS = 32_768  # rows per slice of the elementwise pass (temporaries under 1 MB: in cache)


@dataclass
class HealthPass:
    """Every user's HF in every scenario (columns in `names` order), decided exactly, and the sums behind it."""

    names: tuple[str, ...]
    hf: np.ndarray  # users x scenarios; inf = no debt
    exact: np.ndarray  # users x scenarios: decided on the integer path
    weighted: np.ndarray  # LT-weighted collateral, base units
    collateral: np.ndarray
    debt: np.ndarray
    exact_count: int

    def column(self, name: str) -> int:
        return self.names.index(name)


def rounding_slack(book: PositionBook, market: MarketState, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """Rounding slack per user in base units (collateral, debt): one token unit plus one base unit per leg, debt
    legs at twice the oracle price (scenario prices stay below it)."""
    ids = book.reserve_ids
    unit_value = np.array([market.by_id[r].price / market.by_id[r].unit for r in ids])
    # float32 sums of n terms (a few dozen at most): relative error < n x 6e-8 (~2e-6 at 30), covered by
    # SLACK_ROUNDING (a wider slack only sends more users to the exact path)
    weights = [(unit_value + 1.0).astype(np.float32), (DEBT_PRICE_BOUND * unit_value + 1.0).astype(np.float32)]
    collateral = (book.holds[rows] @ weights[0]).astype(np.float64) * SLACK_ROUNDING
    debt = (book.owes[rows] @ weights[1]).astype(np.float64) * SLACK_ROUNDING
    return collateral, debt


def _scenario_weights(book: PositionBook, market: MarketState, scenarios: Sequence[ScenarioPrices]) -> tuple:
    """Per reserve and scenario: collateral, debt and stable debt weights (stable None where not counted)."""
    ids = book.reserve_ids
    coll_w = np.column_stack([collateral_weights(market, s, ids) for s in scenarios])
    debt_w = np.column_stack([debt_weights(market, s, ids) for s in scenarios])
    stable_w = np.column_stack([stable_weights(market, s, ids) for s in scenarios]) if book.has_stable else None
    return coll_w, debt_w, stable_w


def _products(weighted, coll, debt, stable, weights: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coll_w, debt_w, stable_w = weights
    owed = debt @ debt_w
    if stable_w is not None:
        owed = owed + stable @ stable_w
    return weighted @ coll_w, coll @ coll_w, owed


def scenario_products(
    book: PositionBook, market: MarketState, scenarios: Sequence[ScenarioPrices]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's LT-weighted collateral, collateral and debt in base units, users x scenarios: one product
    per matrix for all the scenarios of a block (reading the book once instead of once per pass)."""
    weights = _scenario_weights(book, market, scenarios)
    return _products(book.weighted, book.coll, book.debt, book.stable, weights)


def float_health(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    slack: tuple[np.ndarray, np.ndarray] | None = None,
    products: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    columns: slice = slice(None),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float HF per user and scenario and whether it must be re-decided exactly: (hf, band, S, C, D), for the
    book's `rows` (default: every user) in that order. `slack`: rounding_slack of every user, if known;
    `products`: scenario_products, if known (`columns`: these scenarios' columns in them)."""
    if products is None and rows is not None and rows.size * GATHER_FIRST < book.height:
        # a small share of the users (a quiet block's few near a decision): gather their rows, then multiply
        picked = [np.take(m, rows, axis=0) for m in (book.weighted, book.coll, book.debt)]
        picked.append(np.take(book.stable, rows, axis=0) if book.has_stable else None)
        weighted, collateral, debt = _products(*picked, _scenario_weights(book, market, scenarios))
    else:
        # products over every user, then the rows (a users x scenarios result is cheaper to gather than the
        # inputs), then these columns made contiguous: deciding on strided columns is ~2x slower
        products = products or scenario_products(book, market, scenarios)
        weighted, collateral, debt = (np.ascontiguousarray(take_rows(p, rows)[:, columns]) for p in products)
    slack_c, slack_d = (take_rows(v, rows)[:, None] for v in (slack or rounding_slack(book, market)))
    per_user = {name: take_rows(getattr(book, name), rows)[:, None] for name in ("lt_uniform", "lt_min", "lt_spread")}
    exact_only = take_rows(book.exact_only, rows)[:, None]
    hf = np.empty_like(weighted)
    band = np.empty(weighted.shape, bool)
    # In slices of rows: each step's temporaries stay in cache (whole-array temporaries at 1M users x 3 scenarios
    # are 24 MB each, and the page faults of allocating them doubled the pass).
    for start in range(0, weighted.shape[0], CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        hf[part], band[part] = _decide(
            market.rules.floors_average_threshold,
            weighted[part],
            collateral[part],
            debt[part],
            slack_c[part],
            slack_d[part],
            per_user["lt_uniform"][part],
            per_user["lt_min"][part],
            per_user["lt_spread"][part],
        )
        band[part] |= exact_only[part]
    return hf, band, weighted, collateral, debt


def _decide(
    floors_average: bool,
    weighted: np.ndarray,
    collateral: np.ndarray,
    debt: np.ndarray,
    slack_c: np.ndarray,
    slack_d: np.ndarray,
    lt_uniform: np.ndarray,
    lt_min: np.ndarray,
    lt_spread: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Float HF and whether the exact path must decide it, for rows of sums (users x scenarios)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # |float - exact| <= slack, so relative to the EXACT total the error is at most slack / (float - slack).
        coll_error = slack_c / (collateral - slack_c)
        debt_error = slack_d / (debt - slack_d)
        if floors_average:
            # HF_float / HF_exact lies within [(1 - ec) / (1 + ed), (1 + ec) / (1 - ed)]; the upper side is wider.
            tolerance = FLOAT_REL_TOL + (1.0 + coll_error) / (1.0 - debt_error) - 1.0
            # avgLT = floor(sum(coll x LT) / coll). Exact when every collateral leg has the same threshold; else
            # the float ratio is off by up to LT x (relative error), and a floor that close to a whole bps may be
            # off by one bps: then widen the band by two bps of threshold rather than trust it.
            ratio = weighted / collateral
            average = np.floor(ratio)
            np.copyto(average, lt_min, where=lt_uniform)  # in place: ~20 % of this pass as a np.where
            distance = np.abs(ratio - np.round(ratio))
            ambiguous = ~lt_uniform & (distance <= AVG_LT_AMBIGUITY + 2.0 * 10_000.0 * coll_error)
            tolerance = tolerance + np.where(ambiguous, 2.0 / average, 0.0)
            hf = collateral * average / 10_000.0 / debt
        else:
            # The LT-weighted sum: a leg's error counts at its own threshold, up to max/min threshold times ec.
            tolerance = FLOAT_REL_TOL + (1.0 + coll_error * lt_spread) / (1.0 - debt_error) - 1.0
            hf = weighted / 10_000.0 / debt
        owes = debt > 0
        has_collateral = collateral > 0
        np.copyto(hf, 0.0, where=~has_collateral)
        np.copyto(hf, np.inf, where=~owes)
        near_one = owes & has_collateral & ~(np.abs(hf - 1.0) > tolerance)  # NaN tolerance: banded
        # Totals within their rounding slack of zero may be zero on chain (a dust debt floors to 0 base units: HF
        # is then infinite): the float HF says nothing, only the exact path can tell its value. Its decision is
        # known without it for a dust debt under solid collateral: every counted leg's threshold is at least the
        # lowest held one and the exact totals are within the slacks, so the exact HF is at least (C - slack_c) x
        # lowest threshold / 10^4 / (D + slack_d), less half a base unit of percentMul's rounding over a debt of
        # at least one (V3.0-3.4). Above DUST_DEBT_HF (2) it is over 1: not liquidatable, not banded. (Dust debts
        # left by repays and liquidations: 2 % of the 100k devnet's users were re-decided exactly twice a block,
        # ~50 ms of a 60 ms block, 2026-12-07.) An LT-0 leg held (V3.6+) makes the lowest threshold 0: banded.
        dust_debt = owes & (2.0 * slack_d >= debt)
        dust_collateral = has_collateral & (2.0 * slack_c >= collateral)
        floor_hf = (collateral - slack_c) * lt_min / 10_000.0 / (debt + slack_d)
        safe = dust_debt & ~dust_collateral & (floor_hf > DUST_DEBT_HF)  # NaN (no held leg): not safe
        near_zero = owes & (dust_debt | dust_collateral) & ~safe
    return hf, near_one | near_zero


def decision_preserving_float(data: AccountData) -> float:
    """The exact HF as a float whose `< 1.0` gives the exact decision (1e18 - 1 wad would round to 1.0)."""
    value = data.hf_float
    if data.liquidatable and value >= 1.0:
        return math.nextafter(1.0, 0.0)
    return value


def redecide_exactly(
    hf: np.ndarray,
    band: np.ndarray,
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
) -> int:
    """Replace, in place, the float HF of every banded (user, scenario) by the exact one. `hf` and `band` hold
    the book's `rows` (default: every user). Returns how many."""
    banded = np.flatnonzero(band.any(axis=1))
    if banded.size == 0:
        return 0
    book_rows = banded if rows is None else rows[banded]
    positions = book.exact_positions(book_rows)
    count = 0
    for row, position in zip(banded.tolist(), positions, strict=True):
        for column in np.flatnonzero(band[row]).tolist():
            s = scenarios[column]
            hf[row, column] = decision_preserving_float(account_data(position, market, s.collateral, s.debt))
            count += 1
    return count


def evaluate_health(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    slack: tuple[np.ndarray, np.ndarray] | None = None,
    products: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    columns: slice = slice(None),
) -> HealthPass:
    """The HF of the book's `rows` (default: every user) in every scenario, exactly decided, with the sums the
    projections reuse; arrays hold the rows in the order given. `products`: scenario_products, if known."""
    hf, band, weighted, collateral, debt = float_health(book, market, scenarios, rows, slack, products, columns)
    count = redecide_exactly(hf, band, book, market, scenarios, rows)
    return HealthPass(tuple(s.name for s in scenarios), hf, band, weighted, collateral, debt, count)


def health_factors(
    positions: pl.DataFrame | PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices] | None = None,
) -> pl.DataFrame:
    """HF of every user in every scenario: `user`, `hf_{s}` (float, inf = no debt), `liquidatable_{s}`,
    `exact_{s}` (decided on the exact path). Decisions equal the exact path's for every user."""
    scenarios = list(scenarios or [baseline_prices(market)])
    book = positions if isinstance(positions, PositionBook) else build_book(positions, market)
    result = evaluate_health(book, market, scenarios)
    columns: dict[str, pl.Series] = {"user": book.positions["user"]}
    for j, s in enumerate(scenarios):
        columns[f"hf_{s.name}"] = pl.Series(result.hf[:, j])
        columns[f"liquidatable_{s.name}"] = pl.Series(result.hf[:, j] < 1.0)
        columns[f"exact_{s.name}"] = pl.Series(result.exact[:, j])
    return pl.DataFrame(columns)
