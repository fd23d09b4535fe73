"""`liq bench`'s figures on a small run: the JSON other tools read, and numbers that make sense."""

from __future__ import annotations

import platform

import numpy as np
import polars as pl
import pytest

from liq_pipeline.bench.engine import BareKernel, kernel_check, run_bench
from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.fused import numba_available
from liq_pipeline.risk.health import evaluate_health, float_health
from liq_pipeline.risk.market import stable_col
from liq_pipeline.risk.scenarios import default_specs, scenario_prices
from liq_pipeline.risk.synthetic import sample

from .contract import assert_report


def test_engine_bench_small(clean_env):
    result = run_bench(users=3_000, scenarios=3, repeats=1, loop_sample=300, exact_sample=500)
    params = {
        "users": 3_000,
        "scenarios": 3,
        "repeats": 1,
        "loop_sample": 300,
        "exact_sample": 500,
        "version": "3.0",
        "seed": 7,
    }
    assert_report(result, "engine", params)
    for key in (
        "users",
        "scenarios",
        "engine_s",
        "engine_pass",
        "engine_first_s",
        "pipeline_s",
        "book_s",
        "kernel_s",
        "kernel_prepared_s",
        "kernel_check_rel_max",
        "loop_s",
        "engine_vs_kernel",
        "engine_vs_kernel_prepared",
        "engine_prepared_vs_kernel",
        "freed_buffers_kept",
        "user_scenarios_per_s",
        "kernel_user_scenarios_per_s",
        "speedup_vs_loop",
        "exact_redecided",
        "exact_checked",
        "exact_mismatches",
        "rel_err_p50",
        "rel_err_p99",
        "rel_err_max",
        "candidates",
        "peak_rss_mb",
    ):
        assert key in result, key
    assert result["users"] == 3_000 and result["scenarios"] == 3
    assert result["exact_mismatches"] == 0
    assert result["exact_checked"] >= 500
    for key in (
        "engine_s",
        "pipeline_s",
        "book_s",
        "kernel_s",
        "kernel_prepared_s",
        "loop_s",
        "engine_vs_kernel",
        "engine_vs_kernel_prepared",
        "engine_prepared_vs_kernel",
        "speedup_vs_loop",
    ):
        assert result[key] > 0, key
    assert result["pipeline_s"] >= result["engine_s"]  # the pipeline computes the HFs and more
    assert result["engine_pass"] == ("fused" if numba_available() else "numpy") and result["engine_first_s"] > 0
    # the engine timed in the watcher's process memory settings (they take with glibc's allocator)
    assert result["freed_buffers_kept"] is (platform.libc_ver()[0] == "glibc")
    assert 0 <= result["rel_err_p50"] <= result["rel_err_p99"] <= result["rel_err_max"]
    assert result["user_scenarios_per_s"] > 0 and result["kernel_user_scenarios_per_s"] > 0
    # engine_vs_kernel is the engine's share of the bare kernel's speed (no timing asserted: figures, not tests)
    ratio = result["kernel_s"] / result["engine_s"]  # of rounded figures
    assert result["engine_vs_kernel"] == pytest.approx(ratio, rel=0.02, abs=0.002)
    prepared = result["kernel_s"] / result["engine_prepared_s"]
    assert result["engine_prepared_vs_kernel"] == pytest.approx(prepared, rel=0.02, abs=0.002)
    assert 0 <= result["kernel_check_rel_max"] < 1e-12  # the kernel computes the engine's float HFs


def _with_stable_debt(positions: pl.DataFrame) -> pl.DataFrame:
    """Every fifth user also owes stable debt on reserve 1 (V3.0-3.1 count it; the generated market has none)."""
    owed = [10**6 * (k % 7 + 1) if k % 5 == 0 else 0 for k in range(positions.height)]
    return positions.with_columns(pl.Series(stable_col(1), owed, dtype=pl.Int128))


@pytest.mark.parametrize(("version", "stable"), [("3.0", False), ("3.0", True), ("3.5", False), ("3.6", False)])
def test_bare_kernel_computes_the_engines_float_hf(version, stable):
    """The bare kernel's HFs, from the book's own matrices, are the engine's float HFs on the same inputs: equal
    to the engine's LT-weighted sums over its debt sums to rounding, and to its float HF where no average
    threshold is floored (V3.5 on); where it is floored (V3.0-3.4), within one bps of the lowest threshold."""
    generated = sample(2_000, version=version, seed=3, near_one_share=0.05)
    market = generated.market
    positions = _with_stable_debt(generated.positions) if stable else generated.positions
    book = build_book(positions, market)
    assert book.has_stable is stable
    priced = [scenario_prices(spec, market) for spec in default_specs(["baseline", "adverse", "extreme"])]
    hf = BareKernel(book, market, priced).run().copy()
    assert hf.shape == (book.height, 3)
    engine_hf, _band, weighted, collateral, debt = float_health(book, market, priced)
    owes, holds = debt > 0, collateral > 0
    assert owes.any() and (~owes).any()
    with np.errstate(divide="ignore", invalid="ignore"):
        sums = weighted / 10_000.0 / debt
    np.testing.assert_allclose(hf[owes], sums[owes], rtol=1e-13, atol=0)
    assert np.isposinf(engine_hf[~owes]).all()
    both = owes & holds
    if market.rules.floors_average_threshold:
        lowest = np.nanmin(np.where(book.holds > 0, book.weighted / np.where(book.coll > 0, book.coll, 1), np.nan))
        np.testing.assert_allclose(hf[both], engine_hf[both], rtol=1.0 / lowest, atol=0)
    else:
        np.testing.assert_allclose(hf[both], engine_hf[both], rtol=1e-13, atol=0)
        # outside the engine's error band its float decision is final, and the kernel's is the same
        exact = evaluate_health(book, market, priced)
        settled = both & ~exact.exact
        assert ((hf[settled] < 1.0) == (exact.hf[settled] < 1.0)).all()
    assert kernel_check(book, market, priced, hf, np.arange(book.height)) < 1e-13
    assert kernel_check(book, market, priced, hf, np.arange(0, book.height, 7)) < 1e-13


_SETTINGS = [("0", 1, "numpy"), ("1", 1, "fused"), ("2", 2, "fused")]


@pytest.mark.parametrize(("setting", "threads", "engine_pass"), _SETTINGS)
def test_the_setting_chooses_the_engines_pass(setting, threads, engine_pass, clean_env, monkeypatch):
    """LIQ_FUSED_KERNEL (a setting, EngineParams.fused_threads: risk/ never reads the environment) chooses the
    pass `liq bench` times and the engine runs: 0 the numpy pass, 1 the fused kernel, 2 it on two threads."""
    from liq_pipeline.config import load_settings
    from liq_pipeline.evaluation.params import engine_params

    monkeypatch.setenv("LIQ_FUSED_KERNEL", setting)
    settings = load_settings()
    assert engine_params(settings).fused_threads == int(setting)
    predictive = settings.model_copy(update={"predictive_enabled": True})
    assert engine_params(predictive).fused_threads == int(setting)
    if engine_pass == "fused" and not numba_available():
        pytest.skip("numba is not installed")
    result = run_bench(users=2_000, scenarios=3, repeats=1, loop_sample=200, exact_sample=200)
    assert result["engine_pass"] == engine_pass and result["engine_threads"] == threads
    assert result["engine_prepared_s"] > 0 and result["exact_mismatches"] == 0


def test_a_bad_fused_kernel_setting_is_refused(clean_env, monkeypatch):
    from liq_pipeline.config import SettingsError, load_settings

    monkeypatch.setenv("LIQ_FUSED_KERNEL", "3")
    with pytest.raises(SettingsError, match="LIQ_FUSED_KERNEL"):
        load_settings()
