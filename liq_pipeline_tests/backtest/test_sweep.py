"""The sweep's pure parts on hand-built points: the frontier, the recommendation, the grid and its options."""

from __future__ import annotations

import pytest

from liq_pipeline.backtest.frontier import frontier, recommend
from liq_pipeline.backtest.report import render_markdown
from liq_pipeline.backtest.run import BacktestError
from liq_pipeline.backtest.sweep import (
    BASELINE_ONLY,
    CURRENT,
    DEFAULT_GRID,
    grid_points,
    parse_grid,
    point_settings,
    sweep_summary,
)
from liq_pipeline.config import Settings
from liq_pipeline.evaluation.params import engine_params


def point(at: int, recall, ahead, precision, lead=10.0, candidates=5.0, label=None) -> dict:
    return {
        "point": at,
        "label": label,
        "settings": {"PREDICTIVE_HF_BUFFER_BPS": at},
        "recall_at_cross": recall,
        "flagged_ahead_share": ahead,
        "precision_within_horizon": precision,
        "lead_time_p50_s": lead,
        "candidates_per_block_p50": candidates,
        "base_rate_within_horizon": 0.05,
    }


POINTS = [
    point(0, 1.0, 0.9, 0.20, label=CURRENT),
    point(1, 1.0, 0.8, 0.15),  # dominated by 0: less ahead, less precise
    point(2, 1.0, 0.95, 0.10),  # the most ahead
    point(3, 1.0, 0.5, 0.60),  # the most precise, but far less ahead than today
    point(4, 0.9, 1.0, 0.90),  # dominates everything, but misses a crossing at its block
    point(5, 1.0, 0.9, None),  # nothing judged: not comparable
    point(6, 1.0, 0.92, 0.30),  # better than today on both
]


def test_the_frontier_keeps_only_undominated_points_with_recall_one():
    on = [p["point"] for p in frontier(POINTS)]
    assert on == [2, 6, 3]  # most flagged ahead first
    assert 1 not in on and 0 not in on  # dominated (0 by 6)
    assert 4 not in on  # recall < 1, however good otherwise
    assert 5 not in on


def test_the_recommendation_has_recall_one_and_the_best_precision_at_least_as_far_ahead():
    assert recommend(POINTS, min_ahead=0.9)["point"] == 6
    assert recommend(POINTS, min_ahead=0.0)["point"] == 3  # no floor: the most precise
    assert recommend(POINTS, min_ahead=0.99) is None  # only point 4 is that far ahead, and it misses a crossing
    assert recommend([p for p in POINTS if p["recall_at_cross"] < 1.0]) is None
    tied = [point(0, 1.0, 0.9, 0.5, lead=10.0), point(1, 1.0, 0.9, 0.5, lead=30.0)]
    assert recommend(tied)["point"] == 1  # same precision and share: the longer lead time


def test_a_recall_below_one_is_never_recommended():
    for floor in (0.0, 0.5, 0.9, 0.95, 1.0):
        best = recommend(POINTS, floor)
        assert best is None or best["recall_at_cross"] == 1.0


def test_the_summary_names_the_recommendation_against_the_current_point():
    summary = sweep_summary(POINTS)
    best = summary["recommended"]
    assert best["point"] == 6 and best["min_flagged_ahead_share"] == 0.9
    assert best["env"] == "PREDICTIVE_HF_BUFFER_BPS=6"
    assert best["vs_current"]["precision_within_horizon"] == 0.1
    assert [p["point"] for p in summary["frontier"]] == [2, 6, 3]
    assert summary["recommended_same_horizon"]["point"] == 6  # every hand-built point has the same settings keys


def test_a_target_share_raises_the_floor_where_the_frontier_allows_it():
    # today 0.9 ahead; point 6 (0.92) is the most precise at today's floor, point 2 the only one at 0.95
    summary = sweep_summary(POINTS, target_ahead=0.95)
    best = summary["recommended"]
    assert best["point"] == 2 and best["min_flagged_ahead_share"] == 0.95 and best["target_reached"] is True
    # no point with recall 1.0 reaches 0.99 (point 4 misses a crossing): today's floor, the target not reached
    summary = sweep_summary(POINTS, target_ahead=0.99)
    best = summary["recommended"]
    assert best["point"] == 6 and best["min_flagged_ahead_share"] == 0.9 and best["target_reached"] is False
    # a target below today's share changes nothing
    assert sweep_summary(POINTS, target_ahead=0.5)["recommended"]["point"] == 6
    text = render_markdown({**REPORT, **sweep_summary(POINTS, target_ahead=0.99)})
    assert "no point flags BACKTEST_TARGET_FLAGGED_AHEAD=0.99 ahead with recall 1.0" in text


def test_precision_across_horizons_is_compared_at_the_current_horizon_too():
    def at(p: dict, horizon: int) -> dict:
        return {**p, "settings": {"PREDICTIVE_HORIZON_SEC": horizon}}

    longer = at(point(1, 1.0, 0.95, 0.40), 300)  # a longer window judged: more precise on paper
    points = [at(point(0, 1.0, 0.9, 0.20, label=CURRENT), 180), longer, at(point(2, 1.0, 0.9, 0.25), 180)]
    summary = sweep_summary(points)
    assert summary["recommended"]["point"] == 1
    assert summary["recommended_same_horizon"]["point"] == 2
    assert summary["recommended"]["env"] == "PREDICTIVE_HORIZON_SEC=300"


def test_the_default_grid_holds_todays_defaults_once(clean_env):
    settings = Settings(_env_file=None)
    points = grid_points(DEFAULT_GRID, settings)
    current = [p for p in points if p["label"] == CURRENT]
    assert len(current) == 1 and len(points) == 3 * 3 * 3 * 2 + 1  # + the baseline-only engine
    assert current[0]["settings"] == {
        "PREDICTIVE_ENABLED": True,
        "PREDICTIVE_HF_BUFFER_BPS": 40,
        "PREDICTIVE_HORIZON_SEC": 180,
        "PREDICTIVE_ADVERSE_SHOCK_BPS": 200,
        "PREDICTIVE_EXTREME_SHOCK_BPS": 400,
        "PREDICTIVE_VOLATILITY_SCALING": True,
    }
    assert points[-1]["label"] == BASELINE_ONLY and points[-1]["settings"]["PREDICTIVE_ENABLED"] is False
    assert [p["point"] for p in points] == list(range(len(points)))
    # the point's settings go through the same mapping as the watcher's
    params = engine_params(point_settings(settings, points[0]))
    assert params.hf_buffer_bps == 0 and params.horizon_sec == 60
    assert [(s.name, s.shock_bps) for s in params.scenarios] == [("baseline", 0), ("adverse", 100), ("extreme", 200)]


def test_a_grid_option_replaces_its_dimension_and_a_current_point_outside_is_added(clean_env):
    grid = parse_grid(["predictive_horizon_sec=60,120", "PREDICTIVE_ADVERSE_SHOCK_BPS=300"])
    names = [names for names, _ in grid]
    assert ("PREDICTIVE_HORIZON_SEC",) in names and ("PREDICTIVE_ADVERSE_SHOCK_BPS",) in names
    assert ("PREDICTIVE_ADVERSE_SHOCK_BPS", "PREDICTIVE_EXTREME_SHOCK_BPS") not in names  # replaced
    settings = Settings(_env_file=None, predictive_enabled=True)
    points = grid_points(grid, settings)
    assert len(points) == 3 * 2 * 1 * 2 + 1  # the current settings (horizon 180, adverse 100) are not in the grid
    assert points[-1]["label"] == CURRENT and points[-1]["settings"]["PREDICTIVE_HORIZON_SEC"] == 180
    assert not any(p["label"] == BASELINE_ONLY for p in points)  # PREDICTIVE_ENABLED=true in effect


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("PREDICTIVE_HORIZON=60", "--grid 'PREDICTIVE_HORIZON=60' is not valid: expected NAME[/NAME]=V[/V],..."),
        ("PREDICTIVE_HORIZON_SEC=", "--grid 'PREDICTIVE_HORIZON_SEC=' is not valid: expected NAME[/NAME]=V[/V],..."),
        ("PREDICTIVE_HORIZON_SEC=0", "--grid: PREDICTIVE_HORIZON_SEC='0' is not valid: expected a whole number"),
        ("PREDICTIVE_VOLATILITY_SCALING=maybe", "--grid: PREDICTIVE_VOLATILITY_SCALING='maybe' is not valid"),
        (
            "PREDICTIVE_ADVERSE_SHOCK_BPS/PREDICTIVE_EXTREME_SHOCK_BPS=100",
            "--grid 'PREDICTIVE_ADVERSE_SHOCK_BPS/PREDICTIVE_EXTREME_SHOCK_BPS=100' is not valid: '100' has not one "
            "value per setting",
        ),
    ],
)
def test_a_bad_grid_is_one_line(spec, message, clean_env):
    with pytest.raises(BacktestError) as error:
        parse_grid([spec])
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_setting_in_two_grid_options_is_refused():
    with pytest.raises(BacktestError, match="named in two --grid options"):
        parse_grid(["PREDICTIVE_HORIZON_SEC=60", "PREDICTIVE_HORIZON_SEC/PREDICTIVE_HF_BUFFER_BPS=60/0"])


REPORT = {
    "from_block": 5,
    "to_block": 40,
    "graded_from_block": 5,
    "blocks": 36,
    "first_block_with_state": 0,
    "replay_from_block": 0,
    "borrowers": 5,
    "truth_reads": 180,
    "engine": {
        "protocol_version": "3.6",
        "predictive_enabled": True,
        "scenarios": ["baseline"],
        "engine_horizon_sec": 180.0,
        "graded_horizon_sec": 180,
        "hf_buffer_bps": 40,
    },
}


def test_the_markdown_report_shows_the_frontier_and_the_recommendation():
    summary = sweep_summary(POINTS)
    report = {**REPORT, **summary}
    text = render_markdown(report)
    assert "## Sweep" in text and "### Frontier" in text
    assert "`PREDICTIVE_HF_BUFFER_BPS=6`" in text
    assert "| point | HF_BUFFER_BPS |" in text and "| 0 (current) | 0 |" in text
    assert "precision_within_horizon +0.1" in text
