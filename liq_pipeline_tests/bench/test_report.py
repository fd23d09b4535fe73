"""The helpers every benchmark shares: its report, the timings, the JSON and text renderings."""

from __future__ import annotations

import json
import time

import pytest

from liq_pipeline.bench.report import (
    BenchRun,
    Stopwatch,
    interleaved_medians,
    median,
    median_seconds,
    percentile,
    render,
    render_text,
    scratch_dir,
)

from .contract import assert_report


def test_report_keeps_the_results_flat_and_adds_the_common_fields():
    run = BenchRun("demo", {"size": 3})
    report = run.report({"size": 3, "engine_s": 0.5, "nested": {"a": 1}})
    assert list(report)[:4] == ["bench", "size", "engine_s", "nested"]  # results unchanged, at the top level
    assert report["engine_s"] == 0.5 and report["nested"] == {"a": 1}
    assert_report(report, "demo", {"size": 3})


def test_results_may_not_shadow_a_common_field():
    with pytest.raises(ValueError, match="peak_rss_mb"):
        BenchRun("demo", {}).report({"peak_rss_mb": 1.0})


def test_stopwatch_runs_inside_its_block_and_freezes_after():
    with Stopwatch() as took:
        time.sleep(0.01)
        inside = took.seconds
    assert inside >= 0.01
    frozen = took.seconds
    time.sleep(0.01)
    assert took.seconds == frozen >= inside
    assert took.ms(1) == round(1e3 * frozen, 1)


def test_interleaved_medians_call_each_function_once_a_round_in_turn():
    calls = []
    timed = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 3
    assert set(timed) == {"a", "b"} and all(seconds >= 0.0 for seconds in timed.values())


def test_median_seconds_calls_the_function_each_repeat():
    calls = []
    assert median_seconds(lambda: calls.append(1), 3) >= 0.0
    assert len(calls) == 3


def test_median_and_percentile():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0], 1) == 1.5
    assert median([]) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([], 0.99) == 0.0


def test_scratch_dir_is_removed_after_the_block():
    with scratch_dir("liq-test-") as folder:
        (folder / "file").write_text("x")
    assert not folder.exists()


def test_render_json_and_text():
    report = {"bench": "demo", "p50_ms": 1.5, "phases": {"read": 1.0}, "path": scratch_dir}
    assert json.loads(render({"a": [1, 2]}, indent=2)) == {"a": [1, 2]}
    assert json.loads(render(report))["path"] == str(scratch_dir)  # what JSON has no type for, as its str
    lines = render_text({"bench": "demo", "p50_ms": 1.5, "phases": {"read": 1.0}}).splitlines()
    assert lines == [" bench  demo", "p50_ms  1.5", 'phases  {"read": 1.0}']
