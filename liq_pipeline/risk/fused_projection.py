"""The projection's growth and volatility of each user's log HF in one compiled loop over its legs.

projection.growth_and_sigma computes, for the rows a scenario projects, g (the drift of ln HF per second: the
LT-weighted collateral's growth less the debt's) and sigma (sum over the moving reserves of sigma_r x |w_r - v_r|,
the reserve's share of the weighted collateral less its share of the debt) with numpy on the book's dense users x
reserves matrices: gathers of those rows, products and temporaries, 70-110 ns a row (21,000 of 100,000 rows:
1.5-2.3 ms). Here the same sums run over each row's sparse legs (book.legs, as the fused HF pass reads them), ~27
ns a row (0.57-0.59 ms). On a price move at 100k borrowers (~21,000 rows projected per scenario) the projection
took 12.3 of the evaluation's 17.7 ms before (2026-12-07, docs/performance.md). The terms are the numpy
version's products in the same order; only the order of the sums differs (legs instead of BLAS's), so g and sigma
agree to rounding (a test holds them within 1e-12 relative on random books of every version). ETA, projected HF
and band minimum stay projection.py's numpy functions.

Compiled by numba at first use (cached beside this file), as risk/fused.py's pass; without numba, or with the
fused pass off (EngineParams.fused_threads 0), projection.py uses the numpy version.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from .book import PositionBook
from .fused import compile_kernel, fused_available, leg_arguments, padded_thresholds
from .market import MarketState
from .valuation import ScenarioPrices, growth_terms


@functools.cache
def _compiled():
    """_rows compiled at first use."""
    return compile_kernel(_rows)


def _rows(
    rows,  # int64: the book rows
    c_idx, c_val, d_idx, d_val, d_stable, has_stable, emode, lt_table,  # the book's legs (fused._rows's)
    cw, cwg, dw, dwg, sw, swg, vol,  # per reserve + the pad column (zero): weights, weights x growth, sigma_r
    weighted, debt,  # per row: the scenario's LT-weighted collateral and debt sums
    g_out, sigma_out,
):  # fmt: skip
    kc = c_idx.shape[1]
    kd = d_idx.shape[1]
    for k in range(rows.size):
        r = rows[k]
        total_w = weighted[k]
        total_d = debt[k]
        if not (total_w > 0.0 and total_d > 0.0):  # NaN included: growth_and_sigma's `valid`
            g_out[k] = 0.0
            sigma_out[k] = 0.0
            continue
        inverse_w = 1.0 / total_w
        inverse_d = 1.0 / total_d
        e = emode[r]
        if e < 0:
            e = 0
        elif e > 255:
            e = 255
        # branch-free (selects, not jumps: whether a debt leg shares a collateral leg's reserve is a coin toss
        # per row, and a mispredicted jump costs more than the leg's arithmetic); a reserve that does not move
        # adds |x| x 0.0 = 0.0 (x finite: both sums are positive here), as numpy's sum over moving reserves skips it
        grow_d = 0.0
        for i in range(kd):
            col = d_idx[r, i]
            grow = d_val[r, i] * dwg[col]
            if has_stable:
                grow += d_stable[r, i] * swg[col]
            grow_d += grow
        grow_c = 0.0
        sigma = 0.0
        for j in range(kc):
            col = c_idx[r, j]
            w = c_val[r, j] * lt_table[e, col]  # book.weighted's product
            grow_c += w * cwg[col]
            net = w * cw[col] * inverse_w  # the reserve's collateral share less its debt share
            for i in range(kd):
                owed = d_val[r, i] * dw[col]
                if has_stable:
                    owed = owed + d_stable[r, i] * sw[col]
                net = net - (owed * inverse_d if d_idx[r, i] == col else 0.0)
            sigma += abs(net) * vol[col]
        for i in range(kd):  # debt legs in a reserve without a collateral leg: their share alone
            col = d_idx[r, i]
            collateral_too = False
            for j in range(kc):
                collateral_too = collateral_too | (c_idx[r, j] == col)
            owed = d_val[r, i] * dw[col]
            if has_stable:
                owed = owed + d_stable[r, i] * sw[col]
            sigma += (0.0 if collateral_too else abs(0.0 - owed * inverse_d)) * vol[col]
        g_out[k] = grow_c * inverse_w - grow_d * inverse_d
        sigma_out[k] = sigma


def _padded(values: np.ndarray) -> np.ndarray:
    """Per reserve, with a zero for the legs' empty slots (Legs.pad: one past the last reserve)."""
    return np.append(np.asarray(values, dtype=np.float64), 0.0)


def fused_growth_and_sigma(
    market: MarketState,
    prices: ScenarioPrices,
    book: PositionBook,
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
    weighted: np.ndarray,
    debt: np.ndarray,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """projection.growth_and_sigma (the same arguments and meaning) over the book's sparse legs, compiled."""
    rows = np.arange(book.height, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    g, sigma = np.empty(rows.size), np.empty(rows.size)
    if rows.size == 0:
        return g, sigma
    t = growth_terms(market, prices, book.reserve_ids, drift, volatility)
    _compiled()(
        rows,
        *leg_arguments(book),
        padded_thresholds(book),
        _padded(t.collateral),
        _padded(t.collateral * t.collateral_growth),
        _padded(t.debt),
        _padded(t.debt * t.debt_growth),
        _padded(t.stable),
        _padded(t.stable * t.debt_growth),
        _padded(t.volatility),
        np.ascontiguousarray(weighted, dtype=np.float64),
        np.ascontiguousarray(debt, dtype=np.float64),
        g,
        sigma,
    )
    return g, sigma


def warm_projection(book: PositionBook, market: MarketState, threads: int) -> None:
    """Load (or compile) the loop for this book's argument types now, on one row: a long-lived process calls it at
    start (the first projection of the 100k devnet's watcher otherwise loaded numba's cache inside a block, 7 ms)."""
    if not fused_available(threads) or book.height == 0:
        return
    prices = ScenarioPrices("warm", dict(market.prices), dict(market.prices))
    fused_growth_and_sigma(market, prices, book, {}, {}, np.ones(1), np.ones(1), np.zeros(1, np.int64))


__all__ = ["fused_growth_and_sigma", "warm_projection"]
