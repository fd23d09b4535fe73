"""The fused per-block pass: one compiled loop over the users' legs for every scenario at once.

For each user (a row of the position book) it reads the user's legs once, from the book's sparse leg layout
(risk/book.py: the held collateral legs and owed debt legs, each a reserve index and a scaled balance, instead of
dense users x reserves matrices), and computes in the same pass, for every scenario: the LT-weighted collateral,
collateral and debt sums, the rounding slack, the float HF and whether the float decision must be re-decided on
the exact integer path (the error band). No users x reserves temporary is made: what numpy did in ~10 passes over
the book and 24 MB temporaries is one pass here (docs/performance.md has the measurements). The rows go in
blocks of BLOCK (128): phase 1 sums each row's legs (scalar: each leg's weights are a lookup by reserve),
phase 2 takes the block's float HFs and the fast band test scenario by scenario in SIMD lanes, phase 3 settles
the few pairs the fast test left with _decide's formulas; each output is a rows x scenarios array, but for the
unweighted collateral sum: only the first scenario's column is written (see FusedPass).

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
EngineParams.fused_threads (the setting LIQ_FUSED_KERNEL) chooses: 0 runs the numpy pass instead (the same
decisions, slower), 1 (the default) this kernel on the calling thread, 2 or more this kernel over that many of
numba's threads (rows in chunks; `liq bench`'s reference kernel runs on one thread; numba's threading layer is
OpenMP here, which may be called from several threads at once; passes under PARALLEL_MIN_ROWS rows stay on the
calling thread). Without numba installed the engine runs the numpy pass.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .book import PositionBook
from .health import (
    AVG_LT_AMBIGUITY,
    DEBT_PRICE_BOUND,
    DUST_DEBT_HF,
    FLOAT_REL_TOL,
    SLACK_ROUNDING,
    HealthPass,
)
from .market import MarketState
from .valuation import ScenarioPrices, collateral_weights, debt_weights, stable_weights

_kernels: dict[bool, object] = {}  # the compiled pass (serial, parallel), built at first use (see _compiled)
LANES = 3  # scenarios summed at a time in registers; the weights are padded with zero columns to a multiple of it
CHUNKS_PER_THREAD = 8  # with threads > 1: row chunks per thread, so a thread slowed by another process is helped


@functools.cache
def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def fused_available(threads: int) -> bool:
    """The engine's per-block pass is this kernel when EngineParams.fused_threads (LIQ_FUSED_KERNEL) is >= 1 and
    numba is installed; otherwise health.py's numpy pass (the same decisions, slower)."""
    return threads >= 1 and numba_available()


# numba's flags for every compiled loop of the engine (the module docstring says why each)
KERNEL_FLAGS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)


def compile_kernel(function):
    """`function` compiled by numba with KERNEL_FLAGS (imported here, at first use: ~0.5-0.9 s)."""
    import numba

    return numba.njit(**KERNEL_FLAGS)(function)


def _compiled(parallel: bool):
    """The numba pass, compiled (or loaded from numba's cache) at first use: `_rows` over every row on the calling
    thread, or `_driver` over chunks of rows on numba's threads."""
    kernel = _kernels.get(parallel)
    if kernel is None:
        import numba

        flags = KERNEL_FLAGS
        serial = _kernels.get(False)
        if serial is None:
            if not hasattr(_leg_sums, "py_func"):  # what _rows calls, inlined into it (numba's IR, before LLVM)
                globals()["_leg_sums"] = numba.njit(inline="always", **flags)(_leg_sums)
            serial = _kernels[False] = numba.njit(**flags)(_rows)
        if parallel:
            globals().update(_rows_kernel=serial, prange=numba.prange)  # what _driver calls, resolved at compile
            _kernels[True] = numba.njit(parallel=True, **flags)(_driver)
        kernel = _kernels[parallel]
    return kernel


def warm(book: PositionBook, market: MarketState, threads: int) -> None:
    """Import numba and load (or compile) the pass for this book's argument types now, on one row (and on every
    row when the book is large enough for the threaded pass): a long-lived process calls it at start. Measured in
    `liq arena`: the first block whose evaluation took the fused pass (block 22 of seed 0: until then the screen
    left no live rows) spent 0.61 s in numba's import and cache load, and the liquidations of that block were sent
    0.43-0.50 s after it was seen (p99 of the run)."""
    if not fused_available(threads) or book.height == 0:
        return
    prices = [ScenarioPrices("warm", dict(market.prices), dict(market.prices))]
    fused_float(book, market, prices, np.zeros(1, np.int64), want_slack=True, threads=threads)
    if threads > 1 and book.height >= PARALLEL_MIN_ROWS:
        fused_float(book, market, prices, None, want_slack=True, threads=threads)


_rows_kernel = None  # the compiled _rows, set by _compiled before _driver is compiled
prange = range  # numba.prange once _compiled(True) ran (numba is imported at first use only)


def _driver(
    chunks, rows, every_row, c_idx, c_val, d_idx, d_val, d_stable, has_stable, emode, exact_only, lt_min_of,
    lt_uniform_of, lt_spread_of, lt_table, cw, dw, sw, c_slack, d_slack, floors_average, float_rel_tol,
    avg_lt_ambiguity, slack_rounding, safe_dust_hf, hf, band, weighted, collateral, debt, slack_out, banded_out,
):  # fmt: skip
    """_rows over `chunks` contiguous chunks of rows in parallel (numba's prange); each chunk lists its banded
    rows at its own offset of `banded_out`, then the lists are moved together (ascending, as one pass lists
    them)."""
    n = band.shape[0]
    size = (n + chunks - 1) // chunks
    counts = np.zeros(chunks, np.int64)
    for chunk in prange(chunks):
        start = min(n, chunk * size)
        counts[chunk] = _rows_kernel(
            start, min(n, start + size), rows, every_row, c_idx, c_val, d_idx, d_val, d_stable, has_stable,
            emode, exact_only, lt_min_of, lt_uniform_of, lt_spread_of, lt_table, cw, dw, sw, c_slack, d_slack,
            floors_average, float_rel_tol, avg_lt_ambiguity, slack_rounding, safe_dust_hf, hf, band, weighted,
            collateral, debt, slack_out, banded_out,
        )  # fmt: skip
    found = counts[0]
    for chunk in range(1, chunks):
        start = min(n, chunk * size)
        for i in range(counts[chunk]):
            banded_out[found + i] = banded_out[start + i]
        found += counts[chunk]
    return found


def _leg_sums(c_idx, c_val, d_idx, d_val, d_stable, has_stable, lt_table, cw, dw, sw, c_slack, d_slack, r, e, group):
    """One row's sums over its legs for the scenarios group .. group + 2 (weights padded to a multiple of LANES):
    LT-weighted collateral, collateral and debt, and the legs' rounding slack (collateral, debt), unscaled. Inlined
    into _rows by numba (see _compiled)."""
    slack_c = 0.0
    w0 = w1 = w2 = 0.0
    c0 = c1 = c2 = 0.0
    for j in range(c_idx.shape[1]):
        v = c_val[r, j]
        col = c_idx[r, j]
        slack_c += c_slack[col]  # a held leg (book.holds): its slack term; an empty slot's is 0.0
        w = v * lt_table[e, col]  # book.weighted's product
        w0 += w * cw[col, group]
        w1 += w * cw[col, group + 1]
        w2 += w * cw[col, group + 2]
        c0 += v * cw[col, group]
        c1 += v * cw[col, group + 1]
        c2 += v * cw[col, group + 2]
    slack_d = 0.0
    d0 = d1 = d2 = 0.0
    for j in range(d_idx.shape[1]):
        v = d_val[r, j]
        col = d_idx[r, j]
        slack_d += d_slack[col]  # an owed leg (book.owes)
        if has_stable:
            st = d_stable[r, j]
            d0 += v * dw[col, group] + st * sw[col, group]
            d1 += v * dw[col, group + 1] + st * sw[col, group + 1]
            d2 += v * dw[col, group + 2] + st * sw[col, group + 2]
        else:
            d0 += v * dw[col, group]
            d1 += v * dw[col, group + 1]
            d2 += v * dw[col, group + 2]
    return w0, w1, w2, c0, c1, c2, d0, d1, d2, slack_c, slack_d


BLOCK = 128  # rows per block: phase 1's sums row by row, then phase 2's decisions over the block in SIMD lanes


def _rows(
    start, stop,  # the positions (in 0..n) this call evaluates
    rows,  # int64: the book rows to evaluate (ignored when every_row)
    every_row,
    c_idx,  # users x Kc uint8: reserve column of each held collateral leg (empty slots: the zero column R)
    c_val,  # users x Kc float64: its scaled balance (0.0: no leg)
    d_idx,  # users x Kd uint8: reserve column of each owed debt leg (empty slots: R)
    d_val,  # users x Kd float64: scaled variable debt
    d_stable,  # users x Kd float64: stable debt (has_stable only)
    has_stable,
    emode,  # users int64
    exact_only,  # users bool
    lt_min_of,  # users float64: book.lt_min, the lowest threshold among held legs (NaN: none)
    lt_uniform_of,  # users bool: book.lt_uniform
    lt_spread_of,  # users float64: book.lt_spread, highest / lowest held threshold (1.0: none; inf: an LT-0 leg)
    lt_table,  # 256 x (reserves + 1) float64: effective threshold per e-mode category, column R zero
    cw,  # (reserves + 1) x scenarios (padded to a multiple of LANES): collateral weight, row R zero
    dw,  # (reserves + 1) x scenarios: debt weight, row R zero
    sw,  # (reserves + 1) x scenarios: stable debt weight, row R zero
    c_slack,  # reserves + 1: one token unit + one base unit of collateral (R: 0)
    d_slack,  # reserves + 1: the same for debt, at DEBT_PRICE_BOUND x the price (R: 0)
    floors_average,
    float_rel_tol,
    avg_lt_ambiguity,
    slack_rounding,
    safe_dust_hf,  # health.DUST_DEBT_HF
    hf,  # out: n x scenarios
    band,  # out: n x scenarios bool
    weighted,  # out: n x scenarios
    collateral,  # out: n x 1, the first scenario's (see FusedPass)
    debt,  # out: n x scenarios
    slack_out,  # out: n x 2 (collateral, debt slack), or 0 rows when not wanted
    banded_out,  # out: n int64, the positions of the rows with a banded scenario, from banded_out[start] on
):  # fmt: skip
    scenarios = hf.shape[1]
    want_slack = slack_out.shape[0] > 0
    # the fast test's bounds (see phase 2): ce x spread <= FAST_ERROR and de <= FAST_ERROR keep the tolerance
    # under fast_tolerance, which is widened 10x over (1 + FAST_ERROR) / (1 - FAST_ERROR) - 1 + float_rel_tol;
    # 1e-5: users of a few dollars (a satoshi of BTC is ~1e-5 of $1,000) and those within 2e-4 of HF 1 take the
    # slow test
    fast_error = 1e-5
    fast_tolerance = 10.0 * (float_rel_tol + 2.0 * fast_error)
    # The block's values, scenario-major. Phase 2 reads and writes only these arrays, allocated here: LLVM knows
    # they alias nothing, and vectorizes the loop; reading the sums from the output arrays (arguments, which may
    # alias for all it knows) left phase 2 scalar, ~11 ms at 1M x 3 against ~2 ms (2026-12-07).
    block_w = np.empty((scenarios, BLOCK))
    block_c = np.empty((scenarios, BLOCK))
    block_d = np.empty((scenarios, BLOCK))
    block_h = np.empty((scenarios, BLOCK))
    block_slack_c = np.empty(BLOCK)
    block_slack_d = np.empty(BLOCK)
    block_spread = np.empty(BLOCK)
    block_lt_min = np.empty(BLOCK)
    block_uniform = np.empty(BLOCK, np.bool_)
    block_exact = np.empty(BLOCK, np.bool_)
    block_fast = np.empty((scenarios, BLOCK), np.bool_)
    block_settled = np.empty(BLOCK, np.bool_)
    banded_count = 0
    for base in range(start, stop, BLOCK):
        size = min(BLOCK, stop - base)
        # Phase 1, row by row: the sums, leg by leg, LANES (3) scenarios at a time in registers (each leg read
        # once per group: _leg_sums), and the rounding slack with the first group. Empty slots (balance 0.0, column R
        # whose weights, threshold and slack terms are 0.0) add exact zeros: no test, no branch. Three lanes, not
        # four: the engine's passes are the current prices and the two shocked scenarios (baseline has the
        # current ones). The thresholds' lowest / uniform / spread are the book's (the same values from the same
        # legs, kept with them by every update): computing them here cost ~7 ms of ~43 at 1M users (measured by
        # leaving them out, 2026-12-07).
        for i in range(size):
            k = base + i
            r = k if every_row else rows[k]
            e = emode[r]
            if e < 0:
                e = 0
            elif e > 255:
                e = 255
            # the first three scenarios and the slack, with the group a constant: a loop over groups here made
            # LLVM keep the group's offsets and the slack's test in the legs' loops (the pass took 35.2 ms p50 at 1M
            # users x 3 scenarios against 30.9 ms like this, interleaved runs in one process, 2026-12-07)
            w0, w1, w2, c0, c1, c2, d0, d1, d2, slack_c, slack_d = _leg_sums(
                c_idx, c_val, d_idx, d_val, d_stable, has_stable, lt_table, cw, dw, sw, c_slack, d_slack, r, e, 0
            )
            lanes = min(3, scenarios)
            block_w[0, i] = weighted[k, 0] = w0
            block_c[0, i] = collateral[k, 0] = c0
            block_d[0, i] = debt[k, 0] = d0
            if lanes > 1:
                block_w[1, i] = weighted[k, 1] = w1
                block_c[1, i] = c1
                block_d[1, i] = debt[k, 1] = d1
            if lanes > 2:
                block_w[2, i] = weighted[k, 2] = w2
                block_c[2, i] = c2
                block_d[2, i] = debt[k, 2] = d2
            # more than three scenarios: the next three at a time (the stores written out twice: through an inlined
            # helper the pass took ~10 ms longer, interleaved runs in one process)
            for group in range(3, scenarios, 3):
                w0, w1, w2, c0, c1, c2, d0, d1, d2, _sc, _sd = _leg_sums(
                    c_idx, c_val, d_idx, d_val, d_stable, has_stable, lt_table, cw, dw, sw, c_slack, d_slack, r, e,
                    group,
                )  # fmt: skip
                lanes = min(3, scenarios - group)
                block_w[group, i] = weighted[k, group] = w0
                block_c[group, i] = c0
                block_d[group, i] = debt[k, group] = d0
                if lanes > 1:
                    block_w[group + 1, i] = weighted[k, group + 1] = w1
                    block_c[group + 1, i] = c1
                    block_d[group + 1, i] = debt[k, group + 1] = d1
                if lanes > 2:
                    block_w[group + 2, i] = weighted[k, group + 2] = w2
                    block_c[group + 2, i] = c2
                    block_d[group + 2, i] = debt[k, group + 2] = d2
            slack_c *= slack_rounding
            slack_d *= slack_rounding
            if want_slack:
                slack_out[k, 0] = slack_c
                slack_out[k, 1] = slack_d
            block_slack_c[i] = slack_c
            block_slack_d[i] = slack_d
            block_spread[i] = lt_spread_of[r]
            if floors_average:  # only V3.0-3.4's averaged threshold reads them (9 MB at 1M users otherwise)
                block_lt_min[i] = lt_min_of[r]
                block_uniform[i] = lt_uniform_of[r]
            block_exact[i] = exact_only[r]
            block_settled[i] = True
        # Phase 2, scenario by scenario over the block's rows (contiguous in the block arrays): the
        # float HF, the band of the rows the fast test settles, branch-free (selects, non-short-circuit & / |)
        # so that LLVM runs it in SIMD lanes, divisions included; scalar, the decisions were ~15 ms of the 1M x 3
        # pass (2026-12-07). health._decide's formulas, element for element.
        for s in range(scenarios):
            for i in range(size):
                W = block_w[s, i]
                C = block_c[s, i]
                D = block_d[s, i]
                slack_c = block_slack_c[i]
                slack_d = block_slack_d[i]
                owes = D > 0.0
                has_collateral = C > 0.0
                if floors_average:
                    ratio = W / C
                    floored = np.floor(ratio)
                    average = block_lt_min[i] if block_uniform[i] else floored
                    h = C * average / 10_000.0 / D
                    # |ratio - round(ratio)|: ratio - floor(ratio) and 1 - that are exact for ratio >= 1 (bps)
                    fraction = ratio - floored
                    distance = fraction if fraction < 1.0 - fraction else 1.0 - fraction
                    coll_error = slack_c / (C - slack_c)
                    ambiguous = (~block_uniform[i]) & (distance <= avg_lt_ambiguity + 2.0 * 10_000.0 * coll_error)
                else:
                    h = W / 10_000.0 / D
                    ambiguous = False
                h = h if has_collateral else 0.0
                h = h if owes else np.inf
                block_h[s, i] = h
                # Fast test, without the tolerance's divisions: past near_zero (C > 2 slack_c, D > 2 slack_d),
                # slack_c x spread <= FAST_ERROR x (C - slack_c) means ce = slack_c / (C - slack_c) <= FAST_ERROR /
                # spread (spread >= 1), likewise de <= FAST_ERROR; then _decide's tolerance (without an ambiguous
                # average) is at most float_rel_tol + (1 + FAST_ERROR) / (1 - FAST_ERROR) - 1, about float_rel_tol
                # + 2 FAST_ERROR, ten times under fast_tolerance (the products' own rounding, ~1e-16 relative,
                # cannot close that gap). So a pair passing it is not banded in _decide either.
                fast = (
                    owes
                    & has_collateral
                    & (2.0 * slack_d < D)  # not near_zero (given owes and has_collateral)
                    & (2.0 * slack_c < C)
                    & (~ambiguous)
                    & (np.abs(h - 1.0) > fast_tolerance)
                    & (slack_c * block_spread[i] <= fast_error * (C - slack_c))
                    & (slack_d <= fast_error * (D - slack_d))
                )
                block_fast[s, i] = fast
            for i in range(size):
                block_settled[i] = block_settled[i] & block_fast[s, i]
        # The HFs, and the fast pairs' band (phase 3 decides the others); three scenarios (the engine's passes)
        # written out: the loop over them took ~2 ms more at 1M users (interleaved runs in one process, 2026-12-07)
        if scenarios == 3:
            for i in range(size):
                k = base + i
                hf[k, 0] = block_h[0, i]
                hf[k, 1] = block_h[1, i]
                hf[k, 2] = block_h[2, i]
                exact = block_exact[i]
                band[k, 0] = exact
                band[k, 1] = exact
                band[k, 2] = exact
        else:
            for i in range(size):
                k = base + i
                for s in range(scenarios):
                    hf[k, s] = block_h[s, i]
                    band[k, s] = block_exact[i]
        # Phase 3, the few rows with a pair the fast test did not settle (or an exact-only user): _decide's band
        for i in range(size):
            if block_settled[i] and not block_exact[i]:
                continue
            k = base + i
            only_exact = block_exact[i]
            row_banded = only_exact
            for s in range(scenarios):
                if block_fast[s, i]:
                    continue
                h = block_h[s, i]
                W = block_w[s, i]
                C = block_c[s, i]
                D = block_d[s, i]
                slack_c = block_slack_c[i]
                slack_d = block_slack_d[i]
                owes = D > 0.0
                has_collateral = C > 0.0
                # health._decide's dust: a dust debt under solid collateral whose HF floor is over safe_dust_hf
                # is decided (not liquidatable) without the exact path. The lowest held threshold is read only
                # then: read for every row here (~3 % of the rows at 1M users, a cache miss each), the pass took
                # ~3 ms more (p50 33.9 against 30.8 ms, interleaved runs in one process, 2026-12-07)
                dust_debt = owes & (2.0 * slack_d >= D)
                dust_collateral = has_collateral & (2.0 * slack_c >= C)
                safe = False
                if dust_debt and not dust_collateral:
                    lt_min = lt_min_of[k if every_row else rows[k]]
                    safe = (C - slack_c) * lt_min / 10_000.0 / (D + slack_d) > safe_dust_hf  # NaN: not safe
                near_zero = owes & (dust_debt | dust_collateral) & (not safe)
                if not (owes and has_collateral) or near_zero:
                    band[k, s] = near_zero or only_exact
                    row_banded = row_banded | near_zero
                    continue
                coll_error = slack_c / (C - slack_c)
                debt_error = slack_d / (D - slack_d)
                if floors_average:
                    tolerance = float_rel_tol + (1.0 + coll_error) / (1.0 - debt_error) - 1.0
                    if not block_uniform[i]:
                        ratio = W / C
                        floored = np.floor(ratio)
                        fraction = ratio - floored
                        distance = fraction if fraction < 1.0 - fraction else 1.0 - fraction
                        if distance <= avg_lt_ambiguity + 2.0 * 10_000.0 * coll_error:  # an ambiguous average
                            tolerance = tolerance + 2.0 / floored
                else:
                    tolerance = float_rel_tol + (1.0 + coll_error * block_spread[i]) / (1.0 - debt_error) - 1.0
                near_one = not (np.abs(h - 1.0) > tolerance)  # NaN tolerance: banded
                band[k, s] = near_one or only_exact
                row_banded = row_banded | near_one
            if row_banded:  # the exact re-decision's rows, listed here: band.any(axis=1) cost ~14 ms at 1M x 3
                banded_out[start + banded_count] = k
                banded_count += 1
    return banded_count


def scenario_weights(
    book: PositionBook, market: MarketState, scenarios: Sequence[ScenarioPrices]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per reserve x scenario: collateral, debt and stable debt weights (health.py's, stacked), padded with zero
    columns to a multiple of LANES scenarios, and with a zero row for the legs' empty slots (Legs.pad)."""
    ids = book.reserve_ids
    width = len(ids)

    padded = -(-len(scenarios) // LANES) * LANES  # the kernel reads LANES scenario columns at a time

    def stacked(weights) -> np.ndarray:
        out = np.zeros((width + 1, padded))
        if scenarios and width:
            out[:width, : len(scenarios)] = np.column_stack([weights(market, s, ids) for s in scenarios])
        return out

    return stacked(collateral_weights), stacked(debt_weights), stacked(stable_weights)


def slack_terms(book: PositionBook, market: MarketState) -> tuple[np.ndarray, np.ndarray]:
    """Per reserve, what one leg adds to the rounding slack (health.rounding_slack's terms, in float64), and 0.0
    for the legs' empty slots (Legs.pad)."""
    unit_value = np.array([market.by_id[r].price / market.by_id[r].unit for r in book.reserve_ids], dtype=np.float64)
    return np.append(unit_value + 1.0, 0.0), np.append(DEBT_PRICE_BOUND * unit_value + 1.0, 0.0)


def leg_arguments(book: PositionBook) -> tuple:
    """The book's legs as the compiled loops take them: c_idx, c_val, d_idx, d_val, d_stable (an empty array
    without stable debt), has_stable, emode."""
    legs = book.legs
    stable = legs.d_stable if book.has_stable else _NO_STABLE
    return legs.c_idx, legs.c_val, legs.d_idx, legs.d_val, stable, book.has_stable, book.emode


def padded_thresholds(book: PositionBook) -> np.ndarray:
    """book.lt_table with a zero column for the legs' empty slots (Legs.pad), made once per book."""
    table = book._fused_lt_table
    if table is None or table.shape[1] != book.lt_table.shape[1] + 1:
        table = np.zeros((book.lt_table.shape[0], book.lt_table.shape[1] + 1))
        table[:, :-1] = book.lt_table
        book._fused_lt_table = table
    return table


class FusedScratch:
    """Output buffers of the fused pass kept from one call to the next (grown when a call needs more): the
    arrays a call returns are views of them, overwritten by the next call given the same scratch. Without one,
    each call allocates its outputs (~100 MB at 1M users x 3 scenarios: page faults of fresh memory, 10-30 ms
    of a ~60 ms pass in a process whose allocator returns freed memory to the kernel, as `liq bench`'s does;
    the watcher's process keeps freed buffers in its heap, watch/process_memory.py)."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)

    @property
    def nbytes(self) -> int:
        return sum(buffer.nbytes for buffer in self._buffers.values())


def fused_float(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    want_slack: bool = False,
    threads: int = 1,
    scratch: FusedScratch | None = None,
) -> FusedPass:
    """health.float_health's (hf, band, S, C[:, :1], D) for the book's `rows` (default: every user) in one compiled
    pass, the positions of the rows with a banded scenario, and each row's rounding slack when `want_slack`.
    `threads` > 1: the rows in chunks on numba's threads (at most numba's NUMBA_NUM_THREADS, the cores by
    default); `scratch`: the outputs are its buffers (see FusedScratch), else allocated here. Each output is its
    own rows x scenarios array (24 MB at 1M x 3): one rows x (4 x scenarios + 2) array written row by row was
    no faster in the kernel, and at 112 MB it is above glibc's largest mmap threshold (32 MB), so each
    evaluation mapped it afresh and faulted its pages in (evaluate() at 1M users ~50 ms slower, 2026-12-07);
    scenario-major outputs (scenarios x rows) were slower in the kernel (15 write streams whose addresses are
    equal modulo 4 KiB: cache set conflicts)."""
    n = book.height if rows is None else int(rows.size)
    count = len(scenarios)
    take = scratch.take if scratch is not None else _fresh
    hf = take("hf", (n, count))
    band = take("band", (n, count), np.bool_)
    weighted = take("weighted", (n, count))
    collateral = take("collateral", (n, 1))
    debt = take("debt", (n, count))
    slack = take("slack", (n if want_slack else 0, 2))
    banded = take("banded", (n,), np.int64)  # only the first `found` entries are written
    if n == 0 or count == 0:
        hf[:] = np.inf
        band[:] = False
        weighted[:], collateral[:], debt[:] = 0.0, 0.0, 0.0
        return FusedPass(hf, band, weighted, collateral, debt, banded[:0].copy(), slack if want_slack else None)
    cw, dw, sw = scenario_weights(book, market, scenarios)
    c_slack, d_slack = slack_terms(book, market)
    arguments = (
        _NO_ROWS if rows is None else np.ascontiguousarray(rows, dtype=np.int64),
        rows is None,
        *leg_arguments(book),
        book.exact_only,
        book.lt_min,
        book.lt_uniform,
        book.lt_spread,
        padded_thresholds(book),
        cw,
        dw,
        sw,
        c_slack,
        d_slack,
        market.rules.floors_average_threshold,
        FLOAT_REL_TOL,
        AVG_LT_AMBIGUITY,
        SLACK_ROUNDING,
        DUST_DEBT_HF,
        hf,
        band,
        weighted,
        collateral,
        debt,
        slack,
        banded,
    )
    threads = _usable_threads(threads, n)
    if threads > 1:
        import numba

        numba.set_num_threads(threads)
        found = _compiled(True)(threads * CHUNKS_PER_THREAD, *arguments)
    else:
        found = _compiled(False)(0, n, *arguments)
    return FusedPass(hf, band, weighted, collateral, debt, banded[:found].copy(), slack if want_slack else None)


# Under this many rows, one thread: on this 2-core machine, loaded (load average 4.5), the minimum of 15 passes
# on 2,000 / 10,000 / 50,000 / 200,000 rows took 0.23 / 0.6 / 3.2 / 7.5 ms on one thread against 4.4-7.1 /
# 4.9-6.0 / 3.8-6.0 / 3.9-8.1 ms on two (waiting for the second thread to be scheduled), 2026-12-07.
PARALLEL_MIN_ROWS = 200_000


def _usable_threads(threads: int, n: int) -> int:
    if threads <= 1 or n < PARALLEL_MIN_ROWS:
        return 1
    import numba

    return min(threads, numba.config.NUMBA_NUM_THREADS)


def _fresh(name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    return np.empty(shape, dtype)


@dataclass
class FusedPass:
    """The fused pass over some rows: float HF and band (rows x scenarios), the sums, the banded rows."""

    hf: np.ndarray  # rows x scenarios
    band: np.ndarray
    weighted: np.ndarray
    # rows x 1: the first scenario's unweighted collateral sum (the current prices': the engine reads no other, for
    # the rounding noise; the other columns' stores were 16 of the pass's 99 bytes written per user, and its p50 at
    # 1M users x 3 was 35.8 -> 33.8 ms without them, interleaved runs in one process, 2026-12-07)
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
    threads: int = 1,
    scratch: FusedScratch | None = None,
) -> HealthPass:
    """health.evaluate_health on the fused pass: every (row, scenario) HF, decided exactly (the banded ones on the
    integer path, risk/exact_batch.py); its `collateral` is the first scenario's column only (FusedPass).
    `threads`, `scratch`: fused_float's."""
    from .exact_batch import redecide_banded

    result = fused_float(book, market, scenarios, rows, threads=threads, scratch=scratch)
    count = redecide_banded(result.hf, result.band, book, market, scenarios, rows, banded=result.banded)
    return HealthPass(
        tuple(s.name for s in scenarios), result.hf, result.band, result.weighted, result.collateral, result.debt, count
    )


__all__ = [
    "LANES",
    "FusedPass",
    "FusedScratch",
    "fused_available",
    "fused_float",
    "fused_health",
    "leg_arguments",
    "numba_available",
    "padded_thresholds",
    "scenario_weights",
    "slack_terms",
    "warm",
]
