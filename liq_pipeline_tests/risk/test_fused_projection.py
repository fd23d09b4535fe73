"""The compiled growth and volatility of ln HF (risk/fused_projection.py) against projection.py's numpy version."""

from __future__ import annotations

import random

import numpy as np
import pytest

from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.fused_projection import fused_growth_and_sigma
from liq_pipeline.risk.health import float_health
from liq_pipeline.risk.market import positions_frame
from liq_pipeline.risk.projection import growth_and_sigma
from liq_pipeline_tests.risk.test_fused import _population
from liq_pipeline_tests.risk.test_health_property import VERSIONS

pytest.importorskip("numba")


@pytest.mark.parametrize("version", VERSIONS)
def test_fused_growth_and_sigma_equal_numpy_to_rounding(version: str):
    """Random books of every version (e-mode, disabled collateral, LT-0 reserves, dust, whales, stable debt where
    counted, users without debt or collateral), every scenario, drifts of both signs, some reserves not moving:
    the same g and sigma as the numpy version up to the order of the sums, on every row and on a subset."""
    for seed in range(4):
        m, people, scenarios = _population(seed * 31 + 5, version)
        book = build_book(positions_frame(people, m.reserve_ids), m)
        rng = random.Random(seed)
        drift = {r: rng.choice([0.0, 3e-9, -2e-8]) for r in m.reserve_ids}
        volatility = {r: rng.choice([None, 0.0, 1e-5, 4e-4]) for r in m.reserve_ids}
        _hf, _band, weighted, _collateral, debt = float_health(book, m, scenarios)
        rows = np.array(rng.sample(range(book.height), book.height // 2), dtype=np.int64)
        for column, prices in enumerate(scenarios):
            for subset in (None, rows):
                at = slice(None) if subset is None else subset
                w, d = weighted[at, column], debt[at, column]
                g, sigma = growth_and_sigma(m, prices, book, drift, volatility, w, d, subset)
                fused_g, fused_sigma = fused_growth_and_sigma(m, prices, book, drift, volatility, w, d, subset)
                # g is a difference of two growths: its rounding is relative to them, not to g
                scale = max(float(np.abs(g).max()), 1e-30)
                np.testing.assert_allclose(fused_g, g, rtol=1e-12, atol=1e-12 * scale)
                np.testing.assert_allclose(fused_sigma, sigma, rtol=1e-12, atol=0)
                invalid = ~((w > 0) & (d > 0))
                assert invalid.any()  # users without debt are in every population: both give them 0
                assert not fused_g[invalid].any() and not fused_sigma[invalid].any()


def test_no_rows_gives_empty_arrays():
    m, people, scenarios = _population(2, "3.7", users=10)
    book = build_book(positions_frame(people, m.reserve_ids), m)
    none = np.zeros(0, dtype=np.int64)
    g, sigma = fused_growth_and_sigma(m, scenarios[0], book, {}, {}, np.zeros(0), np.zeros(0), none)
    assert g.shape == sigma.shape == (0,)


def test_warm_projection_loads_the_loop_for_the_books_types():
    """`Watcher.warm_up` warms the projection's loop too: the first projection of a block then finds it ready."""
    from liq_pipeline.risk import fused_projection

    m, people, scenarios = _population(3, "3.6")
    book = build_book(positions_frame(people, m.reserve_ids), m)
    fused_projection._compiled.cache_clear()  # as in a fresh process
    fused_projection.warm_projection(book, m, threads=1)
    kernel = fused_projection._compiled()
    assert kernel is not None and kernel.signatures
    before = len(kernel.signatures)
    _hf, _band, weighted, _collateral, debt = float_health(book, m, scenarios)
    rows = np.arange(book.height, dtype=np.int64)
    fused_growth_and_sigma(m, scenarios[1], book, {}, {}, weighted[:, 1], debt[:, 1], rows)
    assert len(kernel.signatures) == before  # the real call found the warmed specialization
    fused_projection.warm_projection(book, m, threads=0)  # the numpy pass: nothing to warm
    empty = build_book(positions_frame([], m.reserve_ids), m)
    fused_projection.warm_projection(empty, m, threads=1)  # no rows: fine
