"""`liq bench`'s figures on a small run: the JSON other tools read, and numbers that make sense."""

from __future__ import annotations

from liq_pipeline.bench.engine import run_bench

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
        "pipeline_s",
        "book_s",
        "kernel_s",
        "loop_s",
        "engine_vs_kernel",
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
    for key in ("engine_s", "pipeline_s", "book_s", "kernel_s", "loop_s", "engine_vs_kernel", "speedup_vs_loop"):
        assert result[key] > 0, key
    assert result["pipeline_s"] >= result["engine_s"]  # the pipeline computes the HFs and more
    assert 0 <= result["rel_err_p50"] <= result["rel_err_p99"] <= result["rel_err_max"]
    assert result["user_scenarios_per_s"] > 0
