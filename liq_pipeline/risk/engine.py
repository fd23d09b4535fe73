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

from .carry import Carry, band_minimum, growth_rates
from .health import (
    GATHER_FIRST,
    PositionBook,
    ScenarioPrices,
    baseline_prices,
    build_book,
    evaluate_health,
    rounding_noise,
    rounding_slack,
    scenario_floor,
    scenario_products,
    take_rows,
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
    taken_over: bool = False  # the next evaluation took its arrays over (reuse_previous): they are not this block's
    trends: tuple[Mapping[int, float], Mapping[int, float]] = field(default_factory=lambda: ({}, {}))  # drift, vol
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # per scenario: S, D
    screen: Screen | None = None  # for the next block's evaluation
    carry: Carry | None = None  # for the next block's evaluation, if no price moves (see risk/carry.py)
    carried_from: int | None = None  # the block whose values this evaluation carried (no price moved since)
    # the rows evaluated at this block (None: every row): all, the screen's hot ones, or on a quiet block the few
    # near a decision
    evaluated_rows: np.ndarray | None = None
    completed: bool = False  # `users` brought every other row's values to this block

    @property
    def carried(self) -> bool:
        return self.carried_from is not None

    @property
    def evaluated(self) -> int:
        return self.book.height if self.evaluated_rows is None else len(self.evaluated_rows)

    @property
    def stale(self) -> np.ndarray | None:
        """Rows not evaluated at this block (screened out as cold, or carried), until `users` completes them."""
        if self.evaluated_rows is None or self.completed:
            return None
        skipped = np.ones(len(self.hf_current), bool)
        skipped[self.evaluated_rows] = False
        return np.flatnonzero(skipped)

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
        if self.taken_over:
            raise RuntimeError(
                f"the evaluation of block {self.block} is stale: the next block's evaluation took over its arrays"
            )
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
        stale = self.stale
        if stale is not None and stale.size:  # users skipped or carried: their values at this block now
            current = self.scenario_prices[CURRENT]
            health = evaluate_health(self.book, self.market, [current], stale)
            self.hf_current[stale] = health.hf[:, 0]
            for spec in self.params.scenarios:
                self.projected[spec.name][stale] = np.nan
                if _same(self.scenario_prices[spec.name], current):
                    self.sums[spec.name][0][stale] = health.weighted[:, 0]
                    self.sums[spec.name][1][stale] = health.debt[:, 0]
                else:
                    self.hf[spec.name][stale] = np.nan
        self.completed = True
        for spec in self.params.scenarios:
            unscreened = np.flatnonzero(np.isnan(self.hf[spec.name]))
            if unscreened.size:  # users `evaluate` skipped in this scenario: far from 1, never candidates
                health = evaluate_health(self.book, self.market, [self.scenario_prices[spec.name]], unscreened)
                self.hf[spec.name][unscreened] = health.hf[:, 0]
                self.sums[spec.name][0][unscreened] = health.weighted[:, 0]
                self.sums[spec.name][1][unscreened] = health.debt[:, 0]
            missing = np.flatnonzero(np.isnan(self.projected[spec.name]))
            if missing.size and spec.name in self.sums:
                _project(
                    self.book,
                    self.market,
                    self.scenario_prices[spec.name],
                    spec,
                    self.params,
                    drift,
                    volatility,
                    self.sums[spec.name],
                    missing,
                    self.hf,
                    self.eta,
                    self.projected,
                )

    @cached_property
    def candidates(self) -> pl.DataFrame:
        """One sized row per (user, scenario) whose ETA is within the horizon, by ETA then user."""
        return self.candidate_frame({name: np.flatnonzero(mask) for name, mask in self.candidate_mask.items()})

    def candidate_frame(self, rows: Mapping[str, np.ndarray]) -> pl.DataFrame:
        """Candidate rows (CANDIDATE_SCHEMA) for the given book rows per scenario, sized, by ETA then user. One frame
        for every scenario."""
        columns = self.candidate_columns(rows)
        if columns is None:
            return pl.DataFrame(schema=CANDIDATE_SCHEMA)
        return pl.DataFrame(columns, schema=CANDIDATE_SCHEMA).sort("eta_sec", "user")

    def candidate_columns(self, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray | list[str]] | None:
        """candidate_frame's columns (CANDIDATE_SCHEMA order; user and scenario as lists of str, the rest numpy
        arrays), unordered, or None when no row is asked for: the watcher packs them without a frame."""
        self._check_fresh()
        picked = {name: found for name, found in rows.items() if len(found)}
        if not picked:
            return None
        every = np.concatenate(list(picked.values()))
        hf = np.concatenate([self.hf[name][found] for name, found in picked.items()])
        sized = [
            size_liquidations(self.book, self.market, self.scenario_prices[name], found, self.hf[name][found])
            for name, found in picked.items()
        ]
        hf_current = self.hf_current[every]
        return {
            "user": self.book.users_at(every),
            "scenario": [name for name, found in picked.items() for _ in range(len(found))],
            "block": np.full(len(every), self.block, np.int64),
            "hf_current": hf_current,
            "hf_scenario": hf,
            "hf_projected": np.concatenate([self.projected[name][found] for name, found in picked.items()]),
            "eta_sec": np.concatenate([self.eta[name][found] for name, found in picked.items()]),
            "liquidatable_now": hf_current < 1.0,
            **{key: np.concatenate([part[key] for part in sized]) for key in sized[0]},
        }


def evaluate(
    positions: pl.DataFrame | PositionBook,
    market: MarketState,
    params: EngineParams,
    trends: Mapping[int, AssetTrend] | None = None,
    screen: Screen | None = None,
    previous: Evaluation | None = None,
    reuse_previous: bool = False,
) -> Evaluation:
    """Evaluate every user in every scenario. Pass a PositionBook (build_book) to reuse it across blocks, the
    previous evaluation's `screen` to skip the users it proved far from liquidation (see risk/screen.py), and the
    previous evaluation itself to carry the values of users far from every decision when no price moved (see
    risk/carry.py). Decisions never differ from evaluating everyone. `reuse_previous`: the carried values are taken
    over in place (the watcher's hot path); `previous` is stale afterwards and must not be read again."""
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
    key = _carry_key(market, shocked, drift, volatility, params)
    quiet = (
        previous is not None
        and previous.carry is not None
        and (screen is None or screened)
        and previous.carry.applies(book, market, key)
    )
    if quiet:  # no price moved: only users near a decision, changed or new (risk/carry.py)
        sigmas = max((spec.sigmas for spec in params.scenarios), default=0.0)
        need = previous.carry.needed(book, previous.carry.bound(market, sigmas, params.horizon_sec, drift, volatility))
        live = np.flatnonzero(need if hot_mask is None else need & hot_mask)
    else:
        live = np.flatnonzero(hot_mask) if screened else None  # None: every user
    rows = live if live is not None else np.arange(n)
    # The current HF (liquidatable now) of every live user. A zero-shock scenario (baseline) has the current
    # prices: its HF is the current HF, computed once.
    slack = rounding_slack(book, market)
    distinct = [p for p in shocked if not _same(p, current)]
    every = None  # most rows evaluated: the products of every scenario in one pass over the book
    if live is None or live.size * GATHER_FIRST >= n:
        every = scenario_products(book, market, [current, *distinct])
    now = evaluate_health(book, market, [current], live, slack, every, slice(0, 1))
    if quiet:  # everyone else keeps the previous block's values
        hf_current = _carried(previous.hf_current, n, np.nan, reuse=reuse_previous)
    elif live is None:
        hf_current = np.empty(n)
    else:  # cold users keep the screen's value: their decision (HF > 1) is proven, the value a little stale
        hf_current = _carried(screen.hf_current, n, np.nan)
    hf_current[rows] = now.hf[:, 0]
    # A shocked scenario only for users whose HF in it could be under the reach bound (scenario_floor): most
    # users are far from 1, and skipping them is most of the per-block work. `users` fills in the rest on demand.
    # A full evaluation also needs the zero-shock floor: it makes the next screen.
    floored = shocked if live is None else distinct
    noise = rounding_noise(now, slack, live)  # the exact values may lie this far (relative) from the floats
    floors = {p.name: scenario_floor(book, market, now, slack, p, live, noise) for p in floored}
    exact_count = now.exact_count
    if distinct:
        hot = rows[np.logical_or.reduce([floors[p.name] < bounds[p.name] for p in distinct])]
        shocked_pass = evaluate_health(book, market, distinct, hot, slack, every, slice(1, None))
        exact_count += shocked_pass.exact_count
    # headroom of each live user over every decision (ln HF for liquidatable now, the band minimum f per
    # scenario), for the next block's carry
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.abs(np.log(now.hf[:, 0]))
    hf, projected, eta, sums = {}, {}, {}, {}
    for spec, prices in zip(params.scenarios, shocked, strict=True):
        before = previous if quiet else None
        weighted = _carried(before and before.sums[spec.name][0], n, np.nan, rows, reuse=reuse_previous)
        debt = _carried(before and before.sums[spec.name][1], n, np.nan, rows, reuse=reuse_previous)
        if _same(prices, current):
            hf[spec.name] = hf_current
            weighted[rows], debt[rows] = now.weighted[:, 0], now.debt[:, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                f = np.log(now.hf[:, 0] / bounds[spec.name])
        else:
            column = shocked_pass.column(spec.name)
            hf[spec.name] = _carried(before and before.hf[spec.name], n, np.nan, rows, reuse=reuse_previous)
            hf[spec.name][hot] = shocked_pass.hf[:, column]
            weighted[hot], debt[hot] = shocked_pass.weighted[:, column], shocked_pass.debt[:, column]
            with np.errstate(divide="ignore", invalid="ignore"):  # not evaluated: above the floor
                f = np.log(
                    np.where(np.isnan(hf[spec.name][rows]), floors[spec.name], hf[spec.name][rows]) / bounds[spec.name]
                )
        sums[spec.name] = (weighted, debt)
        # Projections only where the ETA can fall within the horizon (exact: see reach_bound); cold users never.
        with np.errstate(invalid="ignore"):
            near_at = np.flatnonzero(hf[spec.name][rows] < bounds[spec.name])
        near = rows[near_at]
        eta[spec.name] = _carried(before and before.eta[spec.name], n, np.inf, rows, reuse=reuse_previous)
        projected[spec.name] = _carried(before and before.projected[spec.name], n, np.nan, rows, reuse=reuse_previous)
        f[near_at] = _project(
            book, market, prices, spec, params, drift, volatility, sums[spec.name], near, hf, eta, projected
        )
        room = np.minimum(room, np.abs(f))
    if live is None:
        screen = make_screen(book, market, by_name, bounds, floors, hf_current)
    with np.errstate(invalid="ignore"):
        room = np.where(np.isfinite(now.hf[:, 0]), room - noise, room)
    room[take_rows(book.exact_only, live)] = 0.0
    headroom = _carried(previous.carry.headroom if quiet else None, n, 0.0, reuse=reuse_previous)
    headroom[rows] = np.nan_to_num(room, nan=0.0)
    carry = Carry(
        generation=book.generation,
        version=book.version,
        base=previous.carry.base if quiet else market,
        growth_rates=(*previous.carry.growth_rates, growth_rates(market)) if quiet else (growth_rates(market),),
        key=key,
        headroom=headroom,
        blocks=previous.carry.blocks + 1 if quiet else 0,
    )
    if quiet and reuse_previous:
        previous.taken_over = True  # its arrays are this evaluation's now: users/candidates refuse to build
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
        carry=carry,
        carried_from=previous.block if quiet else None,
        evaluated_rows=live,
    )


def _carried(
    values: np.ndarray | None, n: int, fill: float, reset: np.ndarray | None = None, reuse: bool = False
) -> np.ndarray:
    """The previous block's row-aligned `values` grown to `n` rows with `fill` (all `fill` when None), with the
    `reset` rows set to `fill` (they are evaluated again): a copy, or with `reuse` the array itself when no row
    was added (16 arrays of 100k rows copied every block cost ~1.5 ms)."""
    if reuse and values is not None and values.size == n:
        out = values
    else:
        out = np.full(n, fill)
        if values is not None:
            kept = min(n, values.size)
            out[:kept] = values[:kept]
    if values is not None and reset is not None:
        out[reset] = fill
    return out


def _carry_key(market, shocked, drift, volatility, params) -> tuple:
    """What must be unchanged for a block to carry the previous one's values: every price (oracle, e-mode,
    scenario), the trends, the parameters."""
    return (
        dict(market.prices),
        dict(market.emode_categories),
        [(p.name, dict(p.collateral), dict(p.debt)) for p in shocked],
        dict(drift),
        dict(volatility),
        params,
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
) -> np.ndarray:
    """ETA and projected HF of the book's `rows` in one scenario, written into `eta` and `projected`; returns the
    rows' band minimum (carry.band_minimum: negative for a candidate)."""
    weighted, debt = sums
    g, sigma = growth_and_sigma(market, prices, book, drift, volatility, weighted[rows], debt[rows], rows)
    shocked_hf = hf[spec.name][rows]
    eta[spec.name][rows] = eta_seconds(shocked_hf, g, sigma, spec.sigmas, params.threshold)
    projected[spec.name][rows] = projected_hf(shocked_hf, g, sigma, spec.sigmas, params.horizon_sec)
    return band_minimum(shocked_hf, g, sigma, spec.sigmas, params.threshold, params.horizon_sec)


def prioritize(users: pl.DataFrame, cap: int, hf_column: str = "hf_current") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split users into this tick's batch (riskiest first) and the rest, which wait for the next tick.

    The users past the cap are returned, so the caller keeps them queued and reports how many waited. cap = 0: no
    cap.
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
