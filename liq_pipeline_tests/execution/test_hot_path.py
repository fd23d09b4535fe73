"""The hot path's choice of users: the precompute's top K and its order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from liq_pipeline.execution.hot_path import soonest_rows


def _result(eta: dict[str, list[float]], hf: list[float], horizon: float = 600.0):
    return SimpleNamespace(
        eta={name: np.array(values) for name, values in eta.items()},
        hf_current=np.array(hf),
        params=SimpleNamespace(horizon_sec=horizon),
    )


def test_soonest_rows_by_eta_over_every_scenario_within_the_horizon():
    result = _result({"baseline": [50, np.inf, 900, 10], "adverse": [70, 30, 5, np.inf]}, [1.1, 1.2, 1.3, 1.05])
    near, soonest = soonest_rows(result, 2)
    assert sorted(near.tolist()) == [2, 3] and soonest.tolist() == [50, 30, 5, 10]
    assert sorted(soonest_rows(result, 10)[0].tolist()) == [0, 1, 2, 3]
    assert sorted(soonest_rows(result, 2, skip=[2])[0].tolist()) == [1, 3]


def test_below_one_first_then_soonest_and_the_largest_debts_among_equal_etas():
    # rows 0-2 have an ETA of 0 (HF under 1 + the buffer); only 1 and 2 are below 1; row 3 crosses in 5 s
    result = _result({"baseline": [0, 0, 0, 5, 0]}, [1.01, 0.99, 0.98, 1.1, np.nan])
    debt = np.array([9e9, 1e6, 2e6, 5e9, np.nan])
    near, _ = soonest_rows(result, 3, weight=debt, below_first=True)
    assert near.tolist() == [2, 1, 0]  # below 1 by debt, then the largest ETA-0 user (row 4's NaN debt: last)
    near, _ = soonest_rows(result, 2, weight=debt)
    assert near.tolist() == [0, 2]  # without below_first: the largest debts among the ETA-0 users
