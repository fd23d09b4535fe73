"""Which candidate members changed since the last write, in one compiled pass over the rows per scenario.

The candidate writer (watch/candidates.py) compares, per scenario and per book row, what the evaluation found (a
member or not, its ETA, liquidatable now) with what it last wrote, and sorts the rows into three lists: details to
write (new members, members whose liquidatable-now flipped, members due for their periodic refresh), scores to move
(the ETA moved by at least `resolution` seconds or `relative` of the ETA written) and members to remove. numpy
takes ~8 passes and as many temporaries over every row per scenario; here it is one pass per scenario over the
same arrays: 2.4 against 4.6 ms per scenario at 1M rows (p50 of 201 comparisons on the generated 1M market, both
called on the same rows, 2026-12-07). `reference_changes` is the numpy version, kept as the definition and the
fallback without numba; a test holds the two equal, index for index, on random rows with NaN, inf and the
thresholds' edges.

Compiled by numba at first use and cached beside this file, as risk/fused.py's pass.
"""

from __future__ import annotations

import functools

import numpy as np

from .fused import compile_kernel, numba_available


@functools.cache
def _compiled():
    """_changes compiled at first use."""
    return compile_kernel(_changes)


def _changes(member, eta, live, live_now, now, due, resolution, relative, full, rescored, gone):  # pragma: no cover
    """numba kernel (a plain-Python body: numba compiles it; coverage cannot see inside). Fills the three index
    arrays from the front and returns how many of each it filled."""
    n_full = n_rescored = n_gone = 0
    for i in range(member.shape[0]):
        written = live[i]
        was = not np.isnan(written)
        if member[i]:
            if not was or now[i] != live_now[i] or due[i]:
                full[n_full] = i
                n_full += 1
            elif abs(eta[i] - written) >= max(resolution, relative * written):  # NaN: False, as in numpy
                rescored[n_rescored] = i
                n_rescored += 1
        elif was:
            gone[n_gone] = i
            n_gone += 1
    return n_full, n_rescored, n_gone


def member_changes(
    member: np.ndarray,
    eta: np.ndarray,
    live: np.ndarray,
    live_now: np.ndarray,
    now: np.ndarray,
    due: np.ndarray,
    resolution: float,
    relative: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows to detail, rows to rescore, rows to remove), as positions into the given arrays, ascending.

    member: a member now; eta: its ETA now; live: the ETA last written (NaN: not a member then); live_now: its
    liquidatable-now as written; now: liquidatable now; due: its details are due for a refresh (for a row that
    was and is a member)."""
    if not numba_available():
        return reference_changes(member, eta, live, live_now, now, due, resolution, relative)
    n = member.shape[0]
    full, rescored, gone = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    limits = float(resolution), float(relative)
    counts = _compiled()(member, eta, live, live_now, now, due, *limits, full, rescored, gone)
    # copies: the n-row buffers are not kept alive by three small views
    return full[: counts[0]].copy(), rescored[: counts[1]].copy(), gone[: counts[2]].copy()


def warm_member_changes() -> None:
    """Load (or compile) the pass now for the writer's argument types (C-contiguous bool and float64 rows): the
    writer calls it after its first, full write, so that no later block pays the load (~0.1 s from numba's cache,
    ~1 s compiling on a fresh machine) in the middle of its write."""
    one, no = np.ones(1), np.zeros(1, bool)
    member_changes(no, one, one, no, no, no, 1.0, 0.1)


def reference_changes(
    member: np.ndarray,
    eta: np.ndarray,
    live: np.ndarray,
    live_now: np.ndarray,
    now: np.ndarray,
    due: np.ndarray,
    resolution: float,
    relative: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """member_changes with numpy (the definition; the fallback without numba)."""
    was = ~np.isnan(live)
    with np.errstate(invalid="ignore"):
        moved = np.abs(eta - live) >= np.maximum(resolution, relative * live)
    full = member & (~was | (now != live_now) | (was & due))
    return np.flatnonzero(full), np.flatnonzero(member & moved & ~full), np.flatnonzero(was & ~member)


__all__ = ["member_changes", "reference_changes", "warm_member_changes"]
