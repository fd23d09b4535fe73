"""Projected health factor and time to liquidation, in closed form.

Model, per user and scenario: the log of the health factor moves with a drift g (price trends of the user's assets
plus interest: collateral earns the liquidity rate, debt compounds at the variable borrow rate) and is pushed
down by a volatility band of z standard deviations:
    ln HF(t) = ln HF_s - z * sigma * sqrt(t) + g * t
    g     = sum_c w_c (mu_c + i_c)  -  sum_d v_d (mu_d + b_d)       (w, v: value weights of collateral, debt legs)
    sigma = sum_r sigma_r * |w_r - v_r|                               (assets fully correlated: a safe upper bound)
HF_s is the HF right after the scenario's price shock. The time to reach the threshold T = 1 + buffer solves a
quadratic in u = sqrt(t):  g u^2 - z sigma u + L = 0 with L = ln(HF_s / T) > 0; its smallest positive root is
    u = 2 L / (z sigma + sqrt(z^2 sigma^2 - 4 g L))
and no root (infinite ETA) when the discriminant is negative or the denominator is zero. A user already at or
below T has ETA 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .book import PositionBook, take_rows
from .carry import band_minimum
from .fused import fused_available
from .fused_projection import fused_growth_and_sigma
from .indices import debt_growth_per_second, income_growth_per_second
from .market import MarketState
from .params import EngineParams
from .scenarios import ScenarioSpec
from .valuation import ScenarioPrices, growth_terms


def growth_and_sigma(
    market: MarketState,
    prices: ScenarioPrices,
    book: PositionBook,
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
    weighted: np.ndarray,
    debt: np.ndarray,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """g (per second) and sigma (per sqrt second) of the log HF of the book's `rows` (default: all) in one
    scenario. `weighted` and `debt` are those rows' LT-weighted collateral and debt sums in the scenario
    (health.evaluate_health computes them): the value weights are each leg's share of them.
    """
    book_weighted, book_debt = take_rows(book.weighted, rows), take_rows(book.debt, rows)
    book_stable = take_rows(book.stable, rows) if book.has_stable else None
    terms = growth_terms(market, prices, book.reserve_ids, drift, volatility)
    coll_w, debt_w, stable_w, vol = terms.collateral, terms.debt, terms.stable, terms.volatility
    coll_growth, debt_growth = terms.collateral_growth, terms.debt_growth
    valid = (weighted > 0) & (debt > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_weighted, inverse_debt = 1.0 / weighted, 1.0 / debt
        owed_growth = book_debt @ (debt_w * debt_growth)
        if book_stable is not None:
            owed_growth = owed_growth + book_stable @ (stable_w * debt_growth)
        g = (book_weighted @ (coll_w * coll_growth)) * inverse_weighted - owed_growth * inverse_debt
        moving = np.flatnonzero(vol)
        if moving.size:
            # sum_r sigma_r |w_r - v_r| over the reserves whose price moves
            coll_share = book_weighted[:, moving] * coll_w[moving] * inverse_weighted[:, None]
            owed = book_debt[:, moving] * debt_w[moving]
            if book_stable is not None:
                owed = owed + book_stable[:, moving] * stable_w[moving]
            sigma = np.abs(coll_share - owed * inverse_debt[:, None]) @ vol[moving]
        else:
            sigma = np.zeros_like(weighted)
    return np.where(valid, g, 0.0), np.where(valid, sigma, 0.0)


def reach_bound(
    market: MarketState,
    ids: tuple[int, ...],
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
    sigmas: float,
    horizon_sec: float,
) -> float:
    """An upper bound, valid for every user, of how far ln HF can fall along the band path within the horizon:
    z sigma sqrt(H) + max(0, -g) H. The weights w and v each sum to 1, so sigma = sum_r sigma_r |w_r - v_r| <= 2 max
    sigma_r, and -g <= max_r (mu_r + b_r) - min_r (mu_r + i_r). A user whose HF right after the shock is above
    T exp(bound) cannot reach T within the horizon: its ETA and projected HF need not be computed for candidates."""
    if not ids:
        return 0.0
    sigma = 2.0 * max(float(volatility.get(r) or 0.0) for r in ids)
    income = [drift.get(r, 0.0) + income_growth_per_second(market.by_id[r].liquidity_rate) for r in ids]
    borrow = [drift.get(r, 0.0) + debt_growth_per_second(market.by_id[r].variable_borrow_rate) for r in ids]
    fall = max(0.0, max(borrow) - min(income))
    return sigmas * sigma * horizon_sec**0.5 + fall * horizon_sec


def eta_seconds(hf: np.ndarray, g: np.ndarray, sigma: np.ndarray, sigmas: float, threshold: float) -> np.ndarray:
    """Seconds until HF < threshold along the band path; 0 if already there; inf if never."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        distance = np.log(hf / threshold)
        band = sigma * sigmas
        discriminant = band * band - 4.0 * g * distance
        denominator = band + np.sqrt(np.clip(discriminant, 0.0, None))
        root = 2.0 * distance / denominator
        never = (discriminant < 0) | (denominator <= 0) | np.isinf(hf)
    return np.where(hf < threshold, 0.0, np.where(never, np.inf, root * root))


def projected_hf(hf: np.ndarray, g: np.ndarray, sigma: np.ndarray, sigmas: float, horizon_sec: float) -> np.ndarray:
    """HF at the end of the horizon along the band path."""
    exponent = g * horizon_sec - sigma * sigmas * horizon_sec**0.5
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isinf(hf), hf, hf * np.exp(exponent))


def project_rows(
    book: PositionBook,
    market: MarketState,
    prices: ScenarioPrices,
    spec: ScenarioSpec,
    params: EngineParams,
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
    sums: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    hf: Mapping[str, np.ndarray],
    eta: dict[str, np.ndarray],
    projected: dict[str, np.ndarray],
) -> np.ndarray:
    """ETA and projected HF of the book's `rows` in one scenario, written into `eta` and `projected`; returns the
    rows' band minimum (carry.band_minimum: negative for a candidate). `sums`: every row's (S, D) in the scenario,
    `hf`: every row's HF right after the shock, per scenario."""
    weighted, debt = sums
    # over the legs, compiled, where the engine runs the fused pass (3-4x the numpy version: fused_projection.py)
    grow = fused_growth_and_sigma if fused_available(params.fused_threads) else growth_and_sigma
    g, sigma = grow(market, prices, book, drift, volatility, weighted[rows], debt[rows], rows)
    shocked_hf = hf[spec.name][rows]
    eta[spec.name][rows] = eta_seconds(shocked_hf, g, sigma, spec.sigmas, params.threshold)
    projected[spec.name][rows] = projected_hf(shocked_hf, g, sigma, spec.sigmas, params.horizon_sec)
    return band_minimum(shocked_hf, g, sigma, spec.sigmas, params.threshold, params.horizon_sec)
