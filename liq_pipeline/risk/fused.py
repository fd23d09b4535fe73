"""The fused per-block pass: one compiled loop over the users' legs for every scenario at once.

For each user (a row of the position book) it reads the user's legs once, from the book's sparse leg layout
(risk/book.py: the held collateral legs and owed debt legs, each a reserve index and a scaled balance, instead of
dense users x reserves matrices), and computes in the same pass, for every scenario: the LT-weighted collateral,
collateral and debt sums, the rounding slack, the lowest / highest held threshold, the float HF and whether the
float decision must be re-decided on the exact integer path (the error band). Nothing is allocated per user and
no users x reserves temporary is made: what numpy did in ~10 passes over the book and 24 MB temporaries is one
pass here (docs/performance.md has the measurements, numpy vs this kernel, dense vs sparse).

The band is health._decide's: the same formulas, plus a fast test that settles the users far from HF 1 without
the tolerance's divisions and is proven (in the loop) to answer as the formulas would; a test holds the fused band
equal to health.float_health's on random books of every version's rules. Why it covers every float error (the
derivation of health.py, kept):
- the float sums differ from the exact integer totals by at most the rounding slack (one token unit plus one
  base unit per leg, debt legs at DEBT_PRICE_BOUND x the oracle price): the slack here is summed in float64 from
  the same per-reserve terms (numpy sums float32 terms; here float64 terms and sums, and SLACK_ROUNDING's 1e-5
  headroom is kept: the relative error of a float64 sum of <= 30 positive terms is < 4e-15, so the slack used is
  never under the real one);
- the float sums themselves (products of float64 balances and weights, summed leg by leg in a different order
  than BLAS's, all terms positive) are within ~30 x 2^-53 relative of the real-number sums: FLOAT_REL_TOL
  (1e-9) covers that with six orders of magnitude to spare, as it covered BLAS's order;
- the floored average threshold (V3.0-3.4) and the V3.5+ threshold spread widen the band exactly as in _decide.
So every (user, scenario) whose float decision could differ from the exact one is banded, and re-decided exactly
(risk/exact_batch.py) by the callers.

numba (`@njit(cache=True)`, nogil, no fastmath: IEEE semantics, no reassociation; error_model="numpy": x/0 is
inf/NaN like numpy, which the band relies on). numba is imported at the first evaluation, not with this module
(importing numba costs ~0.5-0.9 s), and the compiled kernel is cached on disk beside this file (__pycache__):
the first evaluation on a machine compiles for ~1.3-2.5 s, later processes load the cache in ~0.1 s after the
import (docs/performance.md). A read-only install compiles in every process (NUMBA_CACHE_DIR moves the cache).
Set LIQ_FUSED_KERNEL=0 to run the numpy pass instead (the same decisions, slower); without numba installed the
engine runs the numpy pass.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .book import PositionBook
from .health import (
    AVG_LT_AMBIGUITY,
    DEBT_PRICE_BOUND,
    FLOAT_REL_TOL,
    SLACK_ROUNDING,
    HealthPass,
)
from .market import MarketState
from .valuation import ScenarioPrices, collateral_weights, debt_weights, stable_weights

_kernel = None  # the compiled pass, built at first use (see _compiled)


def fused_enabled() -> bool:
    """The engine's per-block pass is this kernel unless LIQ_FUSED_KERNEL=0, or numba is not installed (then
    health.py's numpy pass: the same decisions, slower)."""
    return os.environ.get("LIQ_FUSED_KERNEL", "1") != "0" and numba_available()


@functools.cache
def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def _compiled():
    """The numba kernel, compiled (or loaded from numba's cache) at first use."""
    global _kernel
    if _kernel is None:
        from numba import njit

        _kernel = njit(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)(_pass)
    return _kernel


def _pass(
    rows,  # int64: the book rows to evaluate (ignored when every_row)
    every_row,
    c_idx,  # users x Kc uint8: reserve column of each held collateral leg
    c_val,  # users x Kc float64: its scaled balance (0.0: no leg)
    d_idx,  # users x Kd uint8: reserve column of each owed debt leg
    d_val,  # users x Kd float64: scaled variable debt
    d_stable,  # users x Kd float64: stable debt (has_stable only)
    has_stable,
    emode,  # users int64
    exact_only,  # users bool
    lt_table,  # 256 x reserves float64: effective threshold per e-mode category
    cw,  # reserves x scenarios: collateral weight
    dw,  # reserves x scenarios: debt weight
    sw,  # reserves x scenarios: stable debt weight
    c_slack,  # reserves: one token unit + one base unit of collateral
    d_slack,  # reserves: the same for debt, at DEBT_PRICE_BOUND x the price
    floors_average,
    float_rel_tol,
    avg_lt_ambiguity,
    slack_rounding,
    hf,  # out: n x scenarios
    band,  # out: n x scenarios bool
    weighted,  # out: n x scenarios
    collateral,  # out: n x scenarios
    debt,  # out: n x scenarios
    slack_out,  # out: n x 2 (collateral, debt slack), or 0 rows when not wanted
    banded_out,  # out: n int64, the positions (in 0..n) of the rows with a banded scenario, first `returned` of them
):
    n = hf.shape[0]
    scenarios = hf.shape[1]
    kc = c_idx.shape[1]
    kd = d_idx.shape[1]
    want_slack = slack_out.shape[0] > 0
    # the fast test's bounds (see below): ce x spread <= FAST_ERROR and de <= FAST_ERROR keep the tolerance
    # under fast_tolerance, which is widened 10x over (1 + FAST_ERROR) / (1 - FAST_ERROR) - 1 + float_rel_tol;
    # 1e-5: users of a few dollars (a satoshi of BTC is ~1e-5 of $1,000) and those within 2e-4 of HF 1 take the
    # slow test
    fast_error = 1e-5
    fast_tolerance = 10.0 * (float_rel_tol + 2.0 * fast_error)
    banded_count = 0
    for k in range(n):
        r = k if every_row else rows[k]
        row_banded = False
        e = emode[r]
        if e < 0:
            e = 0
        elif e > 255:
            e = 255
        # per user, from its legs: the rounding slack and the lowest / highest held threshold (book.lt_min,
        # lt_uniform, lt_spread and rounding_slack, from the same legs)
        slack_c = 0.0
        slack_d = 0.0
        lt_min = np.inf
        lt_max = -np.inf
        # Branch-free: a user's 1-4 legs among the padded slots made every data-dependent `if` (or `x if c else y`)
        # a mispredicted jump, ~20 ms of this loop at 1M users (measured); 0/1 float masks multiply instead, and
        # the min / max compile to selects. held_mask x threshold + (1 - held_mask) x 1e300 is the threshold
        # exactly (x 1.0 + 0.0) or 1e300 (no threshold reaches it).
        held_count = 0.0
        for j in range(kc):
            mask = np.float64(c_val[r, j] > 0.0)  # a held leg (book.holds); padding is 0.0
            col = c_idx[r, j]
            threshold = lt_table[e, col]
            held_count += mask
            slack_c += c_slack[col] * mask
            low = threshold * mask + 1e300 * (1.0 - mask)
            high = threshold * mask - 1e300 * (1.0 - mask)
            lt_min = low if low < lt_min else lt_min
            lt_max = high if high > lt_max else lt_max
        held = held_count > 0.0
        for j in range(kd):
            owed = d_val[r, j] > 0.0
            if has_stable:
                owed = owed | (d_stable[r, j] > 0.0)
            slack_d += d_slack[d_idx[r, j]] * np.float64(owed)  # an owed leg (book.owes)
        slack_c *= slack_rounding
        slack_d *= slack_rounding
        if want_slack:
            slack_out[k, 0] = slack_c
            slack_out[k, 1] = slack_d
        uniform = (not held) or lt_min == lt_max
        if not held:
            lt_min = np.nan
            spread = 1.0
        elif lt_min > 0.0:
            spread = lt_max / lt_min
        else:
            spread = np.inf  # a held LT-0 leg (V3.6+): no ratio bounds the weighted sum's error
        only_exact = exact_only[r]
        # the sums, leg by leg, four scenarios at a time in registers (the weights are padded with zero columns to
        # a multiple of four): each leg is read once per group of four scenarios
        for group in range(0, scenarios, 4):
            w0 = w1 = w2 = w3 = 0.0
            c0 = c1 = c2 = c3 = 0.0
            # padded slots (balance 0.0, column 0: finite weights and thresholds) add exact zeros: no branch
            for j in range(kc):
                v = c_val[r, j]
                col = c_idx[r, j]
                w = v * lt_table[e, col]  # book.weighted's product
                w0 += w * cw[col, group]
                w1 += w * cw[col, group + 1]
                w2 += w * cw[col, group + 2]
                w3 += w * cw[col, group + 3]
                c0 += v * cw[col, group]
                c1 += v * cw[col, group + 1]
                c2 += v * cw[col, group + 2]
                c3 += v * cw[col, group + 3]
            d0 = d1 = d2 = d3 = 0.0
            for j in range(kd):
                v = d_val[r, j]
                col = d_idx[r, j]
                if has_stable:
                    st = d_stable[r, j]
                    d0 += v * dw[col, group] + st * sw[col, group]
                    d1 += v * dw[col, group + 1] + st * sw[col, group + 1]
                    d2 += v * dw[col, group + 2] + st * sw[col, group + 2]
                    d3 += v * dw[col, group + 3] + st * sw[col, group + 3]
                else:
                    d0 += v * dw[col, group]
                    d1 += v * dw[col, group + 1]
                    d2 += v * dw[col, group + 2]
                    d3 += v * dw[col, group + 3]
            lanes = min(4, scenarios - group)
            weighted[k, group] = w0
            collateral[k, group] = c0
            debt[k, group] = d0
            if lanes > 1:
                weighted[k, group + 1] = w1
                collateral[k, group + 1] = c1
                debt[k, group + 1] = d1
            if lanes > 2:
                weighted[k, group + 2] = w2
                collateral[k, group + 2] = c2
                debt[k, group + 2] = d2
            if lanes > 3:
                weighted[k, group + 3] = w3
                collateral[k, group + 3] = c3
                debt[k, group + 3] = d3
        for s in range(scenarios):
            W = weighted[k, s]
            C = collateral[k, s]
            D = debt[k, s]
            owes = D > 0.0
            has_collateral = C > 0.0
            # health._decide, element for element (selects and non-short-circuit & / |: random per-user branches
            # are mispredicted jumps, see above)
            if floors_average:
                ratio = W / C
                floored = np.floor(ratio)
                average = lt_min if uniform else floored
                h = C * average / 10_000.0 / D
                # |ratio - round(ratio)|: ratio - floor(ratio) and 1 - that are exact for ratio >= 1 (bps)
                fraction = ratio - floored
                distance = fraction if fraction < 1.0 - fraction else 1.0 - fraction
                coll_error = slack_c / (C - slack_c)
                ambiguous = (not uniform) & (distance <= avg_lt_ambiguity + 2.0 * 10_000.0 * coll_error)
            else:
                h = W / 10_000.0 / D
                ambiguous = False
            h = h if has_collateral else 0.0
            h = h if owes else np.inf
            hf[k, s] = h
            near_zero = owes & ((2.0 * slack_d >= D) | (has_collateral & (2.0 * slack_c >= C)))
            # Fast test, without the tolerance's divisions. Past near_zero (C > 2 slack_c, D > 2 slack_d),
            # slack_c x spread <= FAST_ERROR x (C - slack_c) means ce = slack_c / (C - slack_c) <= FAST_ERROR / spread
            # (spread >= 1), likewise de <= FAST_ERROR; then _decide's tolerance (without an ambiguous average,
            # tested exactly above) is at most float_rel_tol + (1 + FAST_ERROR) / (1 - FAST_ERROR) - 1, about
            # float_rel_tol + 2 FAST_ERROR, ten times under fast_tolerance (the products' own rounding, ~1e-16
            # relative, cannot close that gap). So a user passing it is not banded in _decide either: the band is
            # _decide's, only cheaper to tell for the users far from 1.
            fast = (
                owes
                & has_collateral
                & (not near_zero)
                & (not ambiguous)
                & (np.abs(h - 1.0) > fast_tolerance)
                & (slack_c * spread <= fast_error * (C - slack_c))
                & (slack_d <= fast_error * (D - slack_d))
            )
            if fast:
                band[k, s] = only_exact
                row_banded = row_banded | only_exact
                continue
            if not (owes and has_collateral) or near_zero:
                band[k, s] = near_zero or only_exact
                row_banded = row_banded | near_zero | only_exact
                continue
            coll_error = slack_c / (C - slack_c)
            debt_error = slack_d / (D - slack_d)
            if floors_average:
                tolerance = float_rel_tol + (1.0 + coll_error) / (1.0 - debt_error) - 1.0
                if ambiguous:
                    tolerance = tolerance + 2.0 / average
            else:
                tolerance = float_rel_tol + (1.0 + coll_error * spread) / (1.0 - debt_error) - 1.0
            near_one = not (np.abs(h - 1.0) > tolerance)  # NaN tolerance: banded
            band[k, s] = near_one or only_exact
            row_banded = row_banded | near_one | only_exact
        if row_banded:  # the exact re-decision's rows, listed here: band.any(axis=1) cost ~14 ms at 1M x 3
            banded_out[banded_count] = k
            banded_count += 1
    return banded_count


def scenario_weights(
    book: PositionBook, market: MarketState, scenarios: Sequence[ScenarioPrices]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per reserve x scenario: collateral, debt and stable debt weights (health.py's, stacked), padded with zero
    columns to a multiple of four scenarios."""
    ids = book.reserve_ids
    width = len(ids)

    padded = -(-len(scenarios) // 4) * 4  # the kernel reads four scenario columns at a time

    def stacked(weights) -> np.ndarray:
        out = np.zeros((width, padded))
        if scenarios and width:
            out[:, : len(scenarios)] = np.column_stack([weights(market, s, ids) for s in scenarios])
        return out

    return stacked(collateral_weights), stacked(debt_weights), stacked(stable_weights)


def slack_terms(book: PositionBook, market: MarketState) -> tuple[np.ndarray, np.ndarray]:
    """Per reserve, what one leg adds to the rounding slack (health.rounding_slack's terms, in float64)."""
    unit_value = np.array([market.by_id[r].price / market.by_id[r].unit for r in book.reserve_ids], dtype=np.float64)
    return unit_value + 1.0, DEBT_PRICE_BOUND * unit_value + 1.0


def fused_float(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    want_slack: bool = False,
) -> FusedPass:
    """health.float_health's (hf, band, S, C, D) for the book's `rows` (default: every user) in one compiled
    pass, the positions of the rows with a banded scenario, and each row's rounding slack when `want_slack`."""
    n = book.height if rows is None else int(rows.size)
    count = len(scenarios)
    hf = np.empty((n, count))
    band = np.empty((n, count), dtype=np.bool_)
    weighted = np.empty((n, count))
    collateral = np.empty((n, count))
    debt = np.empty((n, count))
    slack = np.empty((n if want_slack else 0, 2))
    banded = np.empty(n, np.int64)  # only the first `found` entries are written (the pages of the rest never are)
    if n == 0 or count == 0:
        hf[:] = np.inf
        band[:] = False
        weighted[:], collateral[:], debt[:] = 0.0, 0.0, 0.0
        return FusedPass(hf, band, weighted, collateral, debt, banded[:0], slack if want_slack else None)
    cw, dw, sw = scenario_weights(book, market, scenarios)
    c_slack, d_slack = slack_terms(book, market)
    legs = book.legs
    found = _compiled()(
        _NO_ROWS if rows is None else np.ascontiguousarray(rows, dtype=np.int64),
        rows is None,
        legs.c_idx,
        legs.c_val,
        legs.d_idx,
        legs.d_val,
        legs.d_stable if book.has_stable else _NO_STABLE,
        book.has_stable,
        book.emode,
        book.exact_only,
        book.lt_table,
        cw,
        dw,
        sw,
        c_slack,
        d_slack,
        market.rules.floors_average_threshold,
        FLOAT_REL_TOL,
        AVG_LT_AMBIGUITY,
        SLACK_ROUNDING,
        hf,
        band,
        weighted,
        collateral,
        debt,
        slack,
        banded,
    )
    return FusedPass(hf, band, weighted, collateral, debt, banded[:found].copy(), slack if want_slack else None)


@dataclass
class FusedPass:
    """The fused pass over some rows: float HF and band (rows x scenarios), the sums, the banded rows."""

    hf: np.ndarray
    band: np.ndarray
    weighted: np.ndarray
    collateral: np.ndarray
    debt: np.ndarray
    banded: np.ndarray  # positions (into these rows) with at least one banded scenario, ascending
    slack: np.ndarray | None  # rows x 2: rounding slack (collateral, debt), when asked for


_NO_ROWS = np.zeros(0, np.int64)
_NO_STABLE = np.zeros((0, 0))


def fused_health(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
) -> HealthPass:
    """health.evaluate_health on the fused pass: every (row, scenario) HF, decided exactly (the banded ones on the
    integer path, risk/exact_batch.py)."""
    from .exact_batch import redecide_banded

    result = fused_float(book, market, scenarios, rows)
    count = redecide_banded(result.hf, result.band, book, market, scenarios, rows, banded=result.banded)
    return HealthPass(
        tuple(s.name for s in scenarios), result.hf, result.band, result.weighted, result.collateral, result.debt, count
    )


__all__ = [
    "FusedPass",
    "fused_enabled",
    "fused_float",
    "fused_health",
    "numba_available",
    "scenario_weights",
    "slack_terms",
]
