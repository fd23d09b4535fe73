"""The compiled member comparison (risk/member_changes.py) equals numpy's definition, index for index."""

from __future__ import annotations

import numpy as np
import pytest

from liq_pipeline.risk.member_changes import member_changes, reference_changes
from liq_pipeline.watch.candidates import ETA_RELATIVE, ETA_RESOLUTION_SEC


def _rows(seed: int, n: int):
    """Rows of every kind: members and not, ETAs written or not (NaN), inf, and moves right at the thresholds."""
    rng = np.random.default_rng(seed)
    live = rng.choice([np.nan, 0.0, 0.5, 5.0, 9.99, 10.0, 30.0, 150.0, np.inf], n)
    step = rng.choice([0.0, 0.5, 0.999, 1.0, -1.0, 1.001, 3.0], n)  # the 1 s resolution's edge
    eta = live + step
    relative = rng.random(n) < 0.3  # moves at the 10 % edge of larger ETAs
    eta[relative] = live[relative] * rng.choice([1.0, 1.0999, 1.1, 0.9, 0.9001], int(relative.sum()))
    eta[rng.random(n) < 0.05] = np.nan
    eta[rng.random(n) < 0.05] = np.inf
    member = rng.random(n) < 0.7
    return (
        member,
        eta,
        live,
        rng.random(n) < 0.2,  # liquidatable now, as written
        rng.random(n) < 0.2,  # liquidatable now
        rng.random(n) < 0.1,  # due for a refresh
    )


@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_pass_finds_the_same_rows_as_numpy(seed):
    rows = _rows(seed, 50_000)
    found = member_changes(*rows, ETA_RESOLUTION_SEC, ETA_RELATIVE)
    expected = reference_changes(*rows, ETA_RESOLUTION_SEC, ETA_RELATIVE)
    for got, want in zip(found, expected, strict=True):
        assert got.dtype == np.int64 and np.array_equal(got, want)
    assert all(part.size for part in expected)  # every list has rows: nothing compared vacuously


def test_the_kinds_of_change_one_row_each():
    nan = np.nan
    member = np.array([True, True, True, True, True, False, False, True])
    live = np.array([nan, 10.0, 10.0, 100.0, 100.0, 7.0, nan, 10.0])
    eta = np.array([3.0, 10.5, 11.0, 109.0, 110.0, nan, nan, 10.0])
    live_now = np.array([False, False, False, False, False, False, False, False])
    now = np.array([False, False, False, False, False, False, False, True])
    due = np.zeros(8, bool)
    full, moved, gone = member_changes(member, eta, live, live_now, now, due, 1.0, 0.1)
    # 0: new; 7: liquidatable now flipped; 2: moved 1 s; 4: moved 10 %; 1 and 3 under the thresholds; 5 left
    assert (full.tolist(), moved.tolist(), gone.tolist()) == ([0, 7], [2, 4], [5])
    due[1] = True  # its periodic refresh: details, not a score
    full, moved, gone = member_changes(member, eta, live, live_now, now, due, 1.0, 0.1)
    assert (full.tolist(), moved.tolist()) == ([0, 1, 7], [2, 4])


def test_views_and_float32_etas_are_read_as_they_are():
    """The writer passes slices of grown buffers and the evaluation's ETA columns: any layout, either float width."""
    member, eta, live, live_now, now, due = _rows(11, 20_000)
    strided = np.empty((20_000, 2))
    strided[:, 0] = eta
    narrow = eta.astype(np.float32)
    for values in (strided[:, 0], narrow):
        found = member_changes(member, values, live, live_now, now, due, 1.0, 0.1)
        expected = reference_changes(member, values, live, live_now, now, due, 1.0, 0.1)
        assert all(np.array_equal(a, b) for a, b in zip(found, expected, strict=True))
