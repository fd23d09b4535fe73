"""The fused per-block pass (risk/fused.py) and its exact re-decision (risk/exact_batch.py) decide exactly.

Random markets and users of every protocol version's rules (test_health_property's: decimals 6/8/18, e-mode,
disabled collateral, LT-0 reserves, dust, whales, users pushed to within a few wei of HF = 1), plus stable debt
where the version counts it (V3.0-3.1) and e-mode categories with their own price source (V3.0-3.1, exact path
only). Each (user, scenario) decision of the fused pass must equal exact.account_data's, and its error band must
be health.float_health's band (the same formulas): a band that missed a user near 1 would show here as a flip.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import polars as pl
import pytest

from liq_pipeline.risk import fused as fused_module
from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.exact_batch import account_data_many, redecide_banded
from liq_pipeline.risk.fused import FusedScratch, fused_float, fused_health
from liq_pipeline.risk.health import float_health
from liq_pipeline.risk.market import Leg, UserPosition, positions_frame
from liq_pipeline.risk.params import AssetTrend, EngineParams
from liq_pipeline.risk.scenarios import ScenarioSpec, default_specs, scenario_prices
from liq_pipeline.risk.synthetic import sample
from liq_pipeline.risk.wadray import WAD
from liq_pipeline_tests.risk.test_health_property import VERSIONS, _pushed_to_one, _random_market, _random_user

pytest.importorskip("numba")  # the kernel's compiler (without it the engine runs the numpy pass)


def _market(rng: random.Random, version: str):
    """test_health_property's random market; in V3.0-3.1 the e-mode category may carry its own price."""
    m = _random_market(rng, version)
    if m.rules.emode_price_source and rng.random() < 0.5:
        category = dataclasses.replace(m.emode_categories[1], price=rng.choice([99_000_000, 3_100 * 10**8]))
        m = dataclasses.replace(m, emode_categories={1: category})
    return m


def _with_stable(rng: random.Random, position: UserPosition, m) -> UserPosition:
    """Some debt legs also owe stable debt (counted in V3.0-3.1 only; ignored after)."""
    legs = {}
    for rid, leg in position.legs.items():
        stable = 0
        if leg.scaled_variable_debt and rng.random() < 0.3:
            stable = rng.choice([1, rng.randint(1, 10**4) * m.by_id[rid].unit])
        legs[rid] = Leg(leg.scaled_atoken, leg.scaled_variable_debt, stable, leg.collateral_enabled)
    return UserPosition(position.user, position.emode_category, legs)


def _population(seed: int, version: str, users: int = 80):
    rng = random.Random(seed)
    m = _market(rng, version)
    people = [_random_user(rng, m, f"0x{i:040x}") for i in range(users)]
    people += [_pushed_to_one(u, m, rng.choice([-2, -1, 0, 1, 2])) for u in people[: users // 2]]
    if m.rules.counts_stable_debt:
        people = [_with_stable(rng, u, m) if k % 3 == 0 else u for k, u in enumerate(people)]
    people = [UserPosition(f"0x{i:040x}", u.emode_category, u.legs) for i, u in enumerate(people)]
    specs = [ScenarioSpec("baseline", 0, 0.0), ScenarioSpec("adverse", rng.choice([1, 100, 200, 2_000]), 1.0)]
    specs.append(ScenarioSpec("extreme", rng.choice([0, 300, 5_000]), 2.0))
    scenarios = [scenario_prices(spec, m) for spec in specs]
    return m, people, scenarios


def _check(seed: int, version: str) -> tuple[int, int]:
    """Assert the fused pass decides like the exact path; return (pairs within 1e-6 of HF 1, float-only flips)."""
    m, people, scenarios = _population(seed, version)
    book = build_book(positions_frame(people, m.reserve_ids), m)
    result = fused_health(book, m, scenarios)
    fused = fused_float(book, m, scenarios)
    hf, band, weighted, collateral, debt = float_health(book, m, scenarios)
    np.testing.assert_array_equal(fused.band, band)  # _decide's band, element for element
    # the float HF, to rounding, outside the band; V3.0-3.4 floor an average threshold that the sums' rounding
    # may put one bps apart when it sits on a whole bps (the band widens by two bps there: decisions are safe)
    settled = np.isfinite(hf) & (hf > 0) & ~band
    np.testing.assert_array_equal(np.isfinite(fused.hf), np.isfinite(hf))
    rtol = 1.0 / 6_000 if m.rules.floors_average_threshold else 1e-13
    np.testing.assert_allclose(fused.hf[settled], hf[settled], rtol=rtol, atol=0)
    np.testing.assert_array_equal(fused.banded, np.flatnonzero(band.any(axis=1)))
    # the unweighted collateral sum: the first scenario's only (FusedPass.collateral)
    for mine, numpy_sum in ((fused.weighted, weighted), (fused.collateral, collateral[:, :1]), (fused.debt, debt)):
        np.testing.assert_allclose(mine, numpy_sum, rtol=1e-13, atol=0)  # leg order vs BLAS order: rounding only
    near = flips = 0
    for row, position in enumerate(people):
        for column, s in enumerate(scenarios):
            exact = account_data(position, m, s.collateral, s.debt)
            assert (result.hf[row, column] < 1.0) == exact.liquidatable, (version, position, s.name, exact)
            flips += bool(fused.hf[row, column] < 1.0) != exact.liquidatable
            near += abs(exact.health_factor - WAD) < 10**12
    # a subset of rows, in any order, gives the same rows' values
    rows = np.array(random.Random(seed).sample(range(book.height), book.height // 3), dtype=np.int64)
    part = fused_health(book, m, scenarios, rows)
    np.testing.assert_array_equal(part.hf, result.hf[rows])
    np.testing.assert_array_equal(part.exact, result.exact[rows])
    return near, flips


@pytest.mark.parametrize("version", VERSIONS)
def test_fused_decisions_equal_exact(version: str):
    near = flips = 0
    for seed in range(6):
        n, f = _check(seed * 101 + 7, version)
        near, flips = near + n, flips + f
    assert near >= 20, f"only {near} user-scenarios within 1e-6 of HF = 1 ({version})"
    # the float decision alone is wrong for some of them: the band and the re-decision are what make it exact
    assert flips > 0, version


@pytest.mark.parametrize("version", ["3.0", "3.1", "3.4", "3.5", "3.6", "3.7"])
def test_account_data_many_equals_account_data(version: str):
    m, people, scenarios = _population(11, version, users=60)
    tables: dict = {}
    for position in people:
        mine = account_data_many(position, m, scenarios, tables)
        assert mine == [account_data(position, m, s.collateral, s.debt) for s in scenarios], position
    assert account_data_many(UserPosition("0x00", 0, {}), m, scenarios) == [
        account_data(UserPosition("0x00", 0, {}), m, s.collateral, s.debt) for s in scenarios
    ]


def test_redecide_banded_only_the_columns_asked():
    m, people, scenarios = _population(3, "3.5")
    book = build_book(positions_frame(people, m.reserve_ids), m)
    fused = fused_float(book, m, scenarios)
    assert fused.band[:, 1].any()
    hf = fused.hf.copy()
    count = redecide_banded(hf, fused.band, book, m, scenarios, None, (0,), fused.banded)
    assert count == int(fused.band[:, 0].sum())
    np.testing.assert_array_equal(hf[:, 1:], fused.hf[:, 1:])  # untouched


def test_sparse_legs_mirror_the_dense_book():
    m, people, _scenarios = _population(5, "3.0")
    book = build_book(positions_frame(people, m.reserve_ids), m)
    legs = book.legs
    width = len(book.reserve_ids)
    assert legs.pad == width
    dense = np.zeros((book.height, width + 1))  # the last column: empty slots (Legs.pad)
    for k in range(legs.c_idx.shape[1]):
        np.add.at(dense, (np.arange(book.height), legs.c_idx[:, k].astype(np.int64)), legs.c_val[:, k])
    np.testing.assert_array_equal(dense[:, :width], np.where(book.holds > 0, book.coll, 0.0))
    assert not dense[:, width].any()
    # an empty slot is exactly the pad column with a zero balance, a leg never is
    np.testing.assert_array_equal(legs.c_idx == width, legs.c_val == 0.0)
    np.testing.assert_array_equal(legs.d_idx == width, legs.d_val == 0.0)
    owed = np.zeros((book.height, width + 1))
    for k in range(legs.d_idx.shape[1]):
        np.add.at(owed, (np.arange(book.height), legs.d_idx[:, k].astype(np.int64)), legs.d_val[:, k])
    np.testing.assert_array_equal(owed[:, :width], book.debt)
    assert (legs.c_idx == width).any() and (legs.d_idx == width).any()  # the population has empty slots
    assert legs.c_idx.shape[1] == int((book.holds > 0).sum(axis=1).max())
    assert legs.nbytes < sum(getattr(book, n).nbytes for n in ("coll", "weighted", "debt", "holds", "owes"))


def test_updates_widen_the_legs_and_keep_rows():
    """A re-read user holding more legs than anyone before widens the layout; rows and appended users follow."""
    m, people, scenarios = _population(8, "3.1")
    few = [UserPosition(u.user, u.emode_category, dict(list(u.legs.items())[:1])) for u in people]
    book = build_book(positions_frame(few, m.reserve_ids), m)
    width = book.legs.c_idx.shape[1] + book.legs.d_idx.shape[1]
    changed = people[:10] + [UserPosition(f"0x{9_000 + i:040x}", 0, people[-1 - i].legs) for i in range(3)]
    book.update(positions_frame(changed, m.reserve_ids), m)
    assert book.legs.c_idx.shape[1] + book.legs.d_idx.shape[1] > width
    pad = book.legs.pad  # widened slots are empty slots: the pad column, a zero balance
    np.testing.assert_array_equal(book.legs.c_idx == pad, book.legs.c_val == 0.0)
    np.testing.assert_array_equal(book.legs.d_idx == pad, book.legs.d_val == 0.0)
    everyone = people[:10] + few[10:] + changed[10:]
    fresh = build_book(positions_frame(everyone, m.reserve_ids), m)
    assert book.positions["user"].to_list() == fresh.positions["user"].to_list()
    np.testing.assert_array_equal(fused_health(book, m, scenarios).hf, fused_health(fresh, m, scenarios).hf)


@pytest.mark.parametrize("version", ["3.0", "3.7"])
def test_engine_on_the_fused_pass_equals_the_numpy_pass(version: str, monkeypatch):
    """evaluate() with the fused pass (the default), on two threads, and with the numpy pass (fused_threads=0,
    LIQ_FUSED_KERNEL=0) decides alike, on a full pass and on the screened and carried blocks after it."""
    monkeypatch.setattr(fused_module, "PARALLEL_MIN_ROWS", 1)  # 3,000 rows: run the threads anyway
    generated = sample(3_000, version=version, seed=4, near_one_share=0.05)
    market, positions = generated.market, generated.positions
    trends = {r: AssetTrend(0.0, v) for r, v in generated.volatility.items()}
    results = {}
    for setting in ("1", "0", "2"):
        specs = default_specs(["baseline", "adverse", "extreme"])
        params = EngineParams(specs, horizon_sec=180, hf_buffer_bps=40, fused_threads=int(setting))
        book = build_book(positions, market)
        first = evaluate(book, market, params, trends)
        later = dataclasses.replace(market, block=market.block + 1, timestamp=market.timestamp + 2)
        second = evaluate(book, later, params, trends, screen=first.screen, previous=first)
        results[setting] = (first, second)
    for threaded, fused in zip(results["2"], results["1"], strict=True):
        np.testing.assert_array_equal(threaded.hf_current, fused.hf_current)
        for name in fused.hf:
            np.testing.assert_array_equal(threaded.hf[name], fused.hf[name])
    for fused, numpy_pass in zip(results["1"], results["0"], strict=True):
        assert fused.exact_redecided == numpy_pass.exact_redecided
        np.testing.assert_array_equal(fused.hf_current < 1.0, numpy_pass.hf_current < 1.0)
        for name in fused.hf:
            np.testing.assert_array_equal(fused.hf[name] < 1.0, numpy_pass.hf[name] < 1.0)
            np.testing.assert_array_equal(np.isnan(fused.hf[name]), np.isnan(numpy_pass.hf[name]))
        frame = fused.candidates.sort(["user", "scenario"])
        other = numpy_pass.candidates.sort(["user", "scenario"])
        assert frame.select("user", "scenario").equals(other.select("user", "scenario"))
    assert isinstance(results["1"][0].users, pl.DataFrame)


@pytest.mark.parametrize("version", ["3.0", "3.5", "3.7"])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_threads_scratch_and_scenario_counts_give_the_same_pass(version: str, count: int, monkeypatch):
    """Any number of scenarios (the kernel sums three at a time: 1-5 cover a partial, a whole and a second group),
    in chunks over two threads and into a scratch reused across calls, gives the single-thread pass exactly: the
    values, the band, the banded rows in ascending order (the chunks' lists moved together)."""
    monkeypatch.setattr(fused_module, "PARALLEL_MIN_ROWS", 1)
    m, people, scenarios = _population(21, version, users=120)
    extra = [ScenarioSpec(f"s{k}", 150 * (k + 1), 1.0) for k in range(3)]
    scenarios = (scenarios + [scenario_prices(spec, m) for spec in extra])[:count]
    book = build_book(positions_frame(people, m.reserve_ids), m)
    alone = [fused_float(book, m, [s]) for s in scenarios]  # each scenario by itself: lanes do not mix
    one = fused_float(book, m, scenarios, want_slack=True)
    for column, single in enumerate(alone):
        np.testing.assert_array_equal(one.hf[:, column], single.hf[:, 0])
        np.testing.assert_array_equal(one.band[:, column], single.band[:, 0])
    assert one.banded.size > 0
    scratch = FusedScratch()
    rows = np.array(random.Random(count).sample(range(book.height), book.height // 2), dtype=np.int64)
    for threads in (2, 1, 2):
        for subset in (None, rows):
            mine = fused_float(book, m, scenarios, subset, want_slack=True, threads=threads, scratch=scratch)
            at = slice(None) if subset is None else subset
            for name in ("hf", "band", "weighted", "collateral", "debt", "slack"):
                np.testing.assert_array_equal(getattr(mine, name), getattr(one, name)[at], err_msg=name)
            np.testing.assert_array_equal(mine.banded, np.flatnonzero(one.band[at].any(axis=1)))
    assert scratch.nbytes > 0
    decided = fused_health(book, m, scenarios, threads=2, scratch=scratch)
    np.testing.assert_array_equal(decided.hf, fused_health(book, m, scenarios).hf)


def test_warm_loads_the_pass_for_the_books_types_before_any_block(monkeypatch):
    """A long-lived process warms the pass at start (`Watcher.warm_up`): the kernel is then compiled (or loaded
    from numba's cache) for the book's argument types, and the first block that takes the pass pays nothing."""
    market, users, prices = _population(3, "3.6")
    book = build_book(positions_frame(users, market.reserve_ids), market)
    monkeypatch.setattr(fused_module, "_kernels", {})  # as in a fresh process: nothing compiled or loaded yet
    fused_module.warm(book, market, threads=1)
    kernel = fused_module._kernels[False]
    assert kernel.signatures, "the pass was not compiled or loaded for any argument types"
    before = len(kernel.signatures)
    fused_float(book, market, prices, np.arange(book.height), want_slack=True)
    assert len(kernel.signatures) == before  # the real call found the warmed specialization
    fused_module.warm(build_book(positions_frame([], market.reserve_ids), market), market, threads=1)  # no rows: fine
