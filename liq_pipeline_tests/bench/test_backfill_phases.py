"""`liq bench-backfill`'s account of where a backfill's wall time went (bench/backfill.py `run_phases`)."""

from __future__ import annotations

from liq_pipeline.bench.backfill import run_phases


def test_two_workers_that_overlap_fully_have_two_runs_in_flight():
    # command at 100, the runs two at a time from 104 to 112, exit at 113
    runs = [(104.0, 108.0), (104.5, 108.5), (108.0, 112.0), (108.5, 112.0)]
    phases = run_phases(100.0, 113.0, runs)
    assert phases == {"startup_s": 4.0, "runs_s": 8.0, "exit_s": 1.0, "range_s": 3.88, "in_flight": 1.94}


def test_ranges_one_after_the_other_have_one_in_flight():
    phases = run_phases(0.0, 7.5, [(3.0, 5.0), (5.0, 7.0)])
    assert (phases["startup_s"], phases["runs_s"], phases["exit_s"], phases["in_flight"]) == (3.0, 4.0, 0.5, 1.0)
    assert run_phases(0.0, 1.0, []) == {}
