"""`liq backtest --sweep`: one history graded over a grid of engine settings (docs/backtest.md, "Sweep").

The chain facts (events, the Pool's truth, liquidations) are read once; the engine is replayed once over the
range with every grid point evaluated at each block (`replay_many`); each point is graded on its own. A point is a
set of real settings (env names) applied over the settings in effect, through `evaluation.params.engine_params`
as the watcher reads them, with PREDICTIVE_ENABLED=true (with it false the engine ignores every swept setting).

The grid: dimensions, each one or more settings moving together (the two scenarios' shocks scale as a pair),
crossed. `--grid NAME[/NAME]=V[/V],...` replaces the default dimension naming those settings. The settings in
effect are always a point (`current`), so that the figures compare with today's; with PREDICTIVE_ENABLED=false in
effect, the baseline-only engine that runs today is one more point.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..chain.rpc import RpcClient
from ..config import Settings, SettingsError, load_settings
from ..evaluation.params import engine_params
from .frontier import AHEAD, frontier, recommend
from .replay import Replay
from .run import Backtest, BacktestError, Plan, Progress, grade_replay, header, read_chain_facts, replay_engines

SWEPT = (
    "PREDICTIVE_HF_BUFFER_BPS",
    "PREDICTIVE_HORIZON_SEC",
    "PREDICTIVE_ADVERSE_SHOCK_BPS",
    "PREDICTIVE_EXTREME_SHOCK_BPS",
    "PREDICTIVE_ADVERSE_SIGMAS",
    "PREDICTIVE_EXTREME_SIGMAS",
    "PREDICTIVE_VOLATILITY_SCALING",
)
# (settings, their values per step): 3 x 3 x 3 x 2 = 54 points, today's defaults among them
DEFAULT_GRID: tuple[tuple[tuple[str, ...], tuple[tuple, ...]], ...] = (
    (("PREDICTIVE_HF_BUFFER_BPS",), ((0,), (40,), (100,))),
    (("PREDICTIVE_HORIZON_SEC",), ((60,), (180,), (300,))),
    (("PREDICTIVE_ADVERSE_SHOCK_BPS", "PREDICTIVE_EXTREME_SHOCK_BPS"), ((100, 200), (200, 400), (400, 800))),
    (("PREDICTIVE_VOLATILITY_SCALING",), ((False,), (True,))),
)
# the figures a point carries, overall and per scenario
FIGURES = (
    "crossings",
    "recall_at_cross",
    "flagged_ahead_share",
    "precision_within_horizon",
    "base_rate_within_horizon",
    "flags_judged",
    "lead_time_p50_s",
    "candidates_per_block_p50",
    "liquidations_onchain",
    "liquidations_unflagged",
    "liquidations_flagged_late",
)
CURRENT, BASELINE_ONLY = "current", "baseline only (PREDICTIVE_ENABLED=false)"
HORIZON = "PREDICTIVE_HORIZON_SEC"

Dimension = tuple[tuple[str, ...], tuple[tuple, ...]]


def parse_grid(specs: Sequence[str], base: Sequence[Dimension] = DEFAULT_GRID) -> list[Dimension]:
    """`NAME[/NAME]=V[/V],V[/V]` per spec, values validated as the settings validate them; each spec replaces the
    base dimensions naming any of its settings. BacktestError (one line) for a mistake."""
    given: list[Dimension] = []
    for spec in specs:
        names_text, _, values_text = spec.partition("=")
        names = tuple(name.strip().upper() for name in names_text.split("/"))
        unknown = [name for name in names if name not in SWEPT]
        if not values_text.strip() or unknown or not names_text.strip():
            raise BacktestError(
                f"--grid {spec!r} is not valid: expected NAME[/NAME]=V[/V],... with NAME one of {', '.join(SWEPT)}"
            )
        steps = []
        for step in values_text.split(","):
            values = step.split("/")
            if len(values) != len(names):
                raise BacktestError(f"--grid {spec!r} is not valid: {step!r} has not one value per setting")
            steps.append(tuple(_validated(name, value) for name, value in zip(names, values, strict=True)))
        given.append((names, tuple(dict.fromkeys(steps))))
    named = [name for names, _ in given for name in names]
    if len(named) != len(set(named)):
        raise BacktestError("--grid is not valid: a setting is named in two --grid options")
    kept = [dim for dim in base if not set(dim[0]) & set(named)]
    return kept + given


def _validated(name: str, raw: str):
    try:
        return getattr(load_settings(**{name.lower(): raw.strip()}), name.lower())
    except SettingsError as error:
        raise BacktestError(f"--grid: {error}") from None


def grid_points(grid: Sequence[Dimension], settings: Settings) -> list[dict]:
    """Every combination (settings by env name, PREDICTIVE_ENABLED=true), the current settings marked (added when
    the grid misses them), and the baseline-only engine when that is what the settings in effect run."""
    names = [name for names, _ in grid for name in names]
    steps = itertools.product(*(values for _, values in grid))
    points = [{"PREDICTIVE_ENABLED": True, **dict(zip(names, itertools.chain(*combo), strict=True))} for combo in steps]
    current = {"PREDICTIVE_ENABLED": True, **{name: getattr(settings, name.lower()) for name in names}}
    labelled = [{"label": CURRENT if p == current else None, "settings": p} for p in points]
    if current not in points:
        labelled.append({"label": CURRENT, "settings": current})
    if not settings.predictive_enabled:
        labelled.append({"label": BASELINE_ONLY, "settings": {**current, "PREDICTIVE_ENABLED": False}})
    return [{"point": at, **point} for at, point in enumerate(labelled)]


def point_settings(settings: Settings, point: dict) -> Settings:
    """The settings in effect with the point's values (already validated by parse_grid or taken from settings)."""
    return settings.model_copy(update={name.lower(): value for name, value in point["settings"].items()})


@dataclass
class Sweep:
    backtest: Backtest  # the current point's, with `sweep`, `frontier`, `recommended` in its report
    points: list[dict]  # each point: settings, label, figures, per scenario
    replays: list[Replay]  # one per point, in order (their predictions for the output)


def run_sweep(
    rpc: RpcClient, settings: Settings, plan: Plan, grid: Sequence[Dimension], progress: Progress | None = None
) -> Sweep:
    tick = progress or (lambda _stage, _done, _total: None)
    points = grid_points(grid, settings)
    chosen = [point_settings(settings, point) for point in points]
    params = [engine_params(each) for each in chosen]
    current = next(at for at, point in enumerate(points) if point["label"] == CURRENT)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    facts = read_chain_facts(rpc, settings, plan, tick)
    seconds["truth"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # the current point's candidates whole (its report and datasets are a backtest's), the others' as flags
    replays = replay_engines(rpc, settings, plan, facts.seen, params, tick, full={current})
    seconds["replay"] = time.perf_counter() - clock
    clock = time.perf_counter()
    reports = []
    for at, (each, engine, replayed) in enumerate(zip(chosen, params, replays, strict=True)):
        tick("grading", at, len(points))
        reports.append(grade_replay(plan, each, engine, facts, replayed))
    tick("grading", len(points), len(points))
    seconds["grading"] = time.perf_counter() - clock
    figured = [_figures(point, report) for point, report in zip(points, reports, strict=True)]
    report = {
        **header(plan, chosen[current], params[current], facts, replays[current]),
        **reports[current],
        **sweep_summary(figured, settings.backtest_target_flagged_ahead),
        "seconds": {stage: round(value, 2) for stage, value in seconds.items()},
    }
    backtest = Backtest(plan, report, facts, replays[current], seconds)
    return Sweep(backtest, figured, replays)


def sweep_summary(points: list[dict], target_ahead: float = 0.0) -> dict:
    """The report's `sweep`, `frontier` and `recommended` keys (frontier.py's rules), and
    `recommended_same_horizon`: the same rule among the points judged within the current horizon (a longer horizon
    judges a longer window: its precision and base rate rise with it, so precision across horizons is not like for
    like; `precision_lift`, precision / base rate, says how much).

    The floor of flagged-ahead share is the current point's, raised to `target_ahead`
    (BACKTEST_TARGET_FLAGGED_AHEAD) when some point with recall 1.0 reaches it: the most precise point that flags
    the target share ahead, else (the frontier does not allow it) the most precise no worse than today."""
    current = next((p for p in points if p["label"] == CURRENT), None)
    today = (current or {}).get(AHEAD) or 0.0
    horizon = (current or {}).get("settings", {}).get(HORIZON)
    same = [p for p in points if p["settings"].get(HORIZON) == horizon]
    return {
        "sweep": points,
        "frontier": frontier(points),
        "recommended": _recommended(points, current, today, target_ahead),
        "recommended_same_horizon": _recommended(same, current, today, target_ahead),
    }


def _recommended(points: list[dict], current: dict | None, today: float, target: float) -> dict | None:
    floor = target if target > today and recommend(points, target) is not None else today
    best = recommend(points, floor)
    if best is None:
        return None
    return {
        **best,
        "min_flagged_ahead_share": floor,
        "target_flagged_ahead_share": target,
        "target_reached": best[AHEAD] >= target,
        "env": " ".join(f"{name}={_env(value)}" for name, value in best["settings"].items()),
        "vs_current": _delta(best, current) if current else None,
    }


def _figures(point: dict, report: dict) -> dict:
    return {
        **point,
        **_lifted(report),
        "scenarios": {name: _lifted(values) for name, values in report.get("scenarios", {}).items()},
    }


def _lifted(report: dict) -> dict:
    figures = {key: report.get(key) for key in FIGURES}
    precision, base = figures["precision_within_horizon"], figures["base_rate_within_horizon"]
    figures["precision_lift"] = round(precision / base, 4) if precision is not None and base else None
    return figures


def _delta(best: dict, current: dict) -> dict:
    keys = (AHEAD, "precision_within_horizon", "precision_lift", "lead_time_p50_s", "candidates_per_block_p50")
    return {
        key: round(best[key] - current[key], 4) if best.get(key) is not None and current.get(key) is not None else None
        for key in keys
    }


def _env(value) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
