"""The predictive engine: every user, every scenario, in one vectorized pass, then candidates.

evaluate() takes the wide positions frame, the market at one block and the price trends, and returns
- `users`: per user and scenario the HF right after the shock (`hf_{s}`, decided exactly near 1), the drift and
  volatility of its log HF, the projected HF at the horizon and the ETA to HF < 1 + buffer;
- `candidates`: one row per (user, scenario) whose ETA is within the horizon, with sizing.
Pure: no I/O, no clock, no Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from .health import (
    PositionBook,
    ScenarioPrices,
    baseline_prices,
    build_book,
    evaluate_health,
    rounding_slack,
    scenario_floor,
)
from .market import MarketState
from .projection import eta_seconds, growth_and_sigma, projected_hf, reach_bound
from .scenarios import ScenarioSpec, scenario_prices
from .screen import Screen, make_screen
from .sizing import size_liquidations

CURRENT = "current"


CANDIDATE_SCHEMA = {
    "user": pl.String,
    "scenario": pl.String,
    "block": pl.Int64,
    "hf_current": pl.Float64,
    "hf_scenario": pl.Float64,
    "hf_projected": pl.Float64,
    "eta_sec": pl.Float64,
    "liquidatable_now": pl.Boolean,
    "debt_reserve": pl.Int32,
    "collateral_reserve": pl.Int32,
    "close_factor": pl.Float64,
    "debt_to_cover_base": pl.Float64,
    "collateral_seized_base": pl.Float64,
    "protocol_fee_base": pl.Float64,
    "expected_profit_base": pl.Float64,
}


@dataclass(frozen=True)
class AssetTrend:
    drift_per_sec: float = 0.0
    volatility_per_sqrt_sec: float | None = None


@dataclass(frozen=True)
class EngineParams:
    scenarios: Sequence[ScenarioSpec]
    horizon_sec: float = 180.0
    hf_buffer_bps: int = 40
    volatility_scaling: bool = False

    @property
    def threshold(self) -> float:
        return 1.0 + self.hf_buffer_bps / 10_000


@dataclass
class Evaluation:
    """One block's evaluation, held as arrays row-aligned with the book. `users` and `candidates` are built on
    first use (a Dagster run reads them whole; the watcher writes only the candidates that changed, sized through
    `candidate_frame`). They must be read before the book is updated for a later block."""

    block: int
    book: PositionBook
    market: MarketState
    params: EngineParams
    hf_current: np.ndarray
    hf: dict[str, np.ndarray]  # per scenario: HF right after the shock
    projected: dict[str, np.ndarray]
    eta: dict[str, np.ndarray]
    scenario_prices: dict[str, ScenarioPrices] = field(default_factory=dict)
    exact_redecided: int = 0  # (user, scenario) pairs decided on the exact path
    book_version: int = 0
    trends: tuple[Mapping[int, float], Mapping[int, float]] = field(default_factory=lambda: ({}, {}))  # drift, vol
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # per scenario: S, D
    screen: Screen | None = None  # for the next block's evaluation
    stale: np.ndarray | None = None  # rows the screen skipped (their hf_current is the screen's)
    evaluated: int = 0  # users evaluated (all, or the screen's hot ones)

    @property
    def scenarios(self) -> tuple[str, ...]:
        return tuple(self.eta)

    @cached_property
    def candidate_mask(self) -> dict[str, np.ndarray]:
        """Per scenario, users whose ETA falls within the horizon."""
        return {name: eta <= self.params.horizon_sec for name, eta in self.eta.items()}

    def candidates_per_scenario(self) -> dict[str, int]:
        counts = {name: int(mask.sum()) for name, mask in self.candidate_mask.items()}
        return {name: count for name, count in counts.items() if count}

    def _check_fresh(self) -> None:
        if self.book.version != self.book_version:
            raise RuntimeError(f"the evaluation of block {self.block} is stale: the positions changed since")

    @cached_property
    def users(self) -> pl.DataFrame:
        """Per user: hf_current, and per scenario hf_{s}, hf_projected_{s}, eta_{s} (every user's projection,
        computed here for the users `evaluate` skipped as unable to reach the threshold within the horizon)."""
        self._check_fresh()
        self._complete_projections()
        columns: dict[str, pl.Series | np.ndarray] = {"user": self.book.positions["user"]}
        columns["hf_current"] = self.hf_current
        for name in self.scenarios:
            columns[f"hf_{name}"] = self.hf[name]
            columns[f"hf_projected_{name}"] = self.projected[name]
            columns[f"eta_{name}"] = self.eta[name]
        return pl.DataFrame(columns)

    def _complete_projections(self) -> None:
        drift, volatility = self.trends
        if self.stale is not None and self.stale.size:  # users the screen skipped: their current values now
            current = self.scenario_prices[CURRENT]
            health = evaluate_health(self.book, self.market, [current], self.stale)
            self.hf_current[self.stale] = health.hf[:, 0]
            for spec in self.params.scenarios:
                if _same(self.scenario_prices[spec.name], current):
                    self.sums[spec.name][0][self.stale] = health.weighted[:, 0]
                    self.sums[spec.name][1][self.stale] = health.debt[:, 0]
                    self.projected[spec.name][self.stale] = np.nan
            self.stale = None
        for spec in self.params.scenarios:
            unscreened = np.flatnonzero(np.isnan(self.hf[spec.name]))
            if unscreened.size:  # users `evaluate` skipped in this scenario: far from 1, never candidates
                health = evaluate_health(self.book, self.market, [self.scenario_prices[spec.name]], unscreened)
                self.hf[spec.name][unscreened] = health.hf[:, 0]
                self.sums[spec.name][0][unscreened] = health.weighted[:, 0]
                self.sums[spec.name][1][unscreened] = health.debt[:, 0]
            missing = np.flatnonzero(np.isnan(self.projected[spec.name]))
            if missing.size and spec.name in self.sums:
                _project(self.book, self.market, self.scenario_prices[spec.name], spec, self.params, drift,
                         volatility, self.sums[spec.name], missing, self.hf, self.eta, self.projected)  # fmt: skip

    @cached_property
    def candidates(self) -> pl.DataFrame:
        """One sized row per (user, scenario) whose ETA is within the horizon, by ETA then user."""
        return self.candidate_frame({name: np.flatnonzero(mask) for name, mask in self.candidate_mask.items()})

    def candidate_frame(self, rows: Mapping[str, np.ndarray]) -> pl.DataFrame:
        """Candidate rows (CANDIDATE_SCHEMA) for the given book rows per scenario, sized."""
        self._check_fresh()
        parts = []
        for name, picked in rows.items():
            if len(picked) == 0:
                continue
            hf = self.hf[name][picked]
            sized = size_liquidations(self.book, self.market, self.scenario_prices[name], picked, hf)
            columns = {
                "user": self.book.users_at(picked),
                "scenario": pl.Series([name]).gather(np.zeros(len(picked), np.int64)),
                "block": np.full(len(picked), self.block, np.int64),
                "hf_current": self.hf_current[picked],
                "hf_scenario": hf,
                "hf_projected": self.projected[name][picked],
                "eta_sec": self.eta[name][picked],
                "liquidatable_now": self.hf_current[picked] < 1.0,
                **sized,
            }
            parts.append(pl.DataFrame(columns, schema=CANDIDATE_SCHEMA))
        if not parts:
            return pl.DataFrame(schema=CANDIDATE_SCHEMA)
        return pl.concat(parts).sort("eta_sec", "user")


def evaluate(
    positions: pl.DataFrame | PositionBook,
    market: MarketState,
    params: EngineParams,
    trends: Mapping[int, AssetTrend] | None = None,
    screen: Screen | None = None,
) -> Evaluation:
    """Evaluate every user in every scenario. Pass a PositionBook (build_book) to reuse it across blocks, and the
    previous evaluation's `screen` to skip the users it proved far from liquidation (see risk/screen.py)."""
    book = positions if isinstance(positions, PositionBook) else build_book(positions, market)
    trends = trends or {}
    drift = {r: t.drift_per_sec for r, t in trends.items()}
    volatility = {r: t.volatility_per_sqrt_sec for r, t in trends.items() if t.volatility_per_sqrt_sec}
    scaling = volatility if params.volatility_scaling else None
    current = ScenarioPrices(CURRENT, dict(market.prices), dict(market.prices))
    shocked = [_named(scenario_prices(spec, market, scaling), spec.name) for spec in params.scenarios]
    by_name = {p.name: p for p in shocked}
    bounds = {
        spec.name: params.threshold
        * math.exp(reach_bound(market, book.reserve_ids, drift, volatility, spec.sigmas, params.horizon_sec))
        * (1.0 + 1e-9)
        for spec in params.scenarios
    }
    n = book.height
    screened = screen is not None and screen.holds(book, market, by_name, bounds)
    hot_mask = screen.hot(book) if screened else None
    live = np.flatnonzero(hot_mask) if screened else None  # None: every user
    rows = live if live is not None else np.arange(n)
    # The current HF (liquidatable now) of every live user. A zero-shock scenario (baseline) has the current
    # prices: its HF is the current HF, computed once.
    slack = rounding_slack(book, market)
    now = evaluate_health(book, market, [current], live, slack)
    if live is None:
        hf_current = now.hf[:, 0]
    else:  # cold users keep the screen's value: their decision (HF > 1) is proven, the value a little stale
        hf_current = np.concatenate([screen.hf_current, np.full(n - screen.hf_current.size, np.nan)])[:n]
        hf_current[live] = now.hf[:, 0]
    # A shocked scenario only for users whose HF in it could be under the reach bound (scenario_floor): most
    # users are far from 1, and skipping them is most of the per-block work. `users` fills in the rest on demand.
    # A full evaluation also needs the zero-shock floor: it makes the next screen.
    distinct = [p for p in shocked if not _same(p, current)]
    floored = shocked if live is None else distinct
    floors = {p.name: scenario_floor(book, market, now, slack, p, live) for p in floored}
    exact_count = now.exact_count
    if distinct:
        hot = rows[np.logical_or.reduce([floors[p.name] < bounds[p.name] for p in distinct])]
        shocked_pass = evaluate_health(book, market, distinct, hot, slack)
        exact_count += shocked_pass.exact_count
    hf, projected, eta, sums = {}, {}, {}, {}
    for spec, prices in zip(params.scenarios, shocked, strict=True):
        weighted, debt = np.full(n, np.nan), np.full(n, np.nan)
        if _same(prices, current):
            hf[spec.name] = hf_current
            weighted[rows], debt[rows] = now.weighted[:, 0], now.debt[:, 0]
        else:
            column = shocked_pass.column(spec.name)
            hf[spec.name] = np.full(n, np.nan)
            hf[spec.name][hot] = shocked_pass.hf[:, column]
            weighted[hot], debt[hot] = shocked_pass.weighted[:, column], shocked_pass.debt[:, column]
        sums[spec.name] = (weighted, debt)
        # Projections only where the ETA can fall within the horizon (exact: see reach_bound); cold users never.
        with np.errstate(invalid="ignore"):
            near = rows[hf[spec.name][rows] < bounds[spec.name]]
        eta[spec.name] = np.full(n, np.inf)
        projected[spec.name] = np.full(n, np.nan)
        _project(book, market, prices, spec, params, drift, volatility, sums[spec.name], near, hf, eta, projected)
    if live is None:
        screen = make_screen(book, market, by_name, bounds, floors, hf_current)
    stale = None if hot_mask is None else np.flatnonzero(~hot_mask)
    return Evaluation(
        block=market.block,
        book=book,
        market=market,
        params=params,
        hf_current=hf_current,
        hf=hf,
        projected=projected,
        eta=eta,
        scenario_prices={p.name: p for p in [current, *shocked]},
        exact_redecided=exact_count,
        book_version=book.version,
        trends=(drift, volatility),
        sums=sums,
        screen=screen,
        stale=stale,
        evaluated=len(rows),
    )


def _project(
    book: PositionBook,
    market: MarketState,
    prices: ScenarioPrices,
    spec: ScenarioSpec,
    params: EngineParams,
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
    sums: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    hf: Mapping[str, np.ndarray],
    eta: dict[str, np.ndarray],
    projected: dict[str, np.ndarray],
) -> None:
    """ETA and projected HF of the book's `rows` in one scenario, written into `eta` and `projected`."""
    weighted, debt = sums
    g, sigma = growth_and_sigma(market, prices, book, drift, volatility, weighted[rows], debt[rows], rows)
    shocked_hf = hf[spec.name][rows]
    eta[spec.name][rows] = eta_seconds(shocked_hf, g, sigma, spec.sigmas, params.threshold)
    projected[spec.name][rows] = projected_hf(shocked_hf, g, sigma, spec.sigmas, params.horizon_sec)


def prioritize(users: pl.DataFrame, cap: int, hf_column: str = "hf_current") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split users into this tick's batch (riskiest first) and the rest, which wait for the next tick.

    `PREDICTIVE_MAX_USERS_PER_TICK` bounds work per tick; the old bot dropped the users past the cap silently,
    here they are returned so the caller keeps them queued and reports how many waited. cap = 0: no cap.
    """
    ordered = users.sort(hf_column, nulls_last=True)
    if cap <= 0 or ordered.height <= cap:
        return ordered, ordered.clear()
    return ordered.head(cap), ordered.slice(cap)


def _named(prices: ScenarioPrices, name: str) -> ScenarioPrices:
    return ScenarioPrices(name, prices.collateral, prices.debt)


def _same(a: ScenarioPrices, b: ScenarioPrices) -> bool:
    return dict(a.collateral) == dict(b.collateral) and dict(a.debt) == dict(b.debt)


def trends_from_window(stats: pl.DataFrame, reserve_of_asset: Mapping[str, int]) -> dict[int, AssetTrend]:
    """AssetTrend per reserve id from price_window_stats rows (asset -> reserve id mapping given)."""
    out = {}
    for row in stats.iter_rows(named=True):
        reserve_id = reserve_of_asset.get(row["asset"])
        if reserve_id is None:
            continue
        out[reserve_id] = AssetTrend(row["drift_per_sec"] or 0.0, row["volatility_per_sqrt_sec"])
    return out


__all__ = ["CURRENT", "AssetTrend", "EngineParams", "Evaluation", "baseline_prices", "evaluate", "prioritize"]
