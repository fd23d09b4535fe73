"""One block's evaluation: the engine's values held row-aligned with the book, completed and sized on demand.

`evaluate` (risk/engine.py) fills the values of the users it had to evaluate; `users` brings every other row to
the block, and `candidates` / `candidate_frame` size the candidates asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from .book import PositionBook
from .carry import Carry
from .health import evaluate_health
from .market import MarketState
from .params import EngineParams
from .projection import project_rows
from .screen import Screen
from .sizing import size_liquidations
from .valuation import ScenarioPrices, same_prices

CURRENT = "current"  # the block's own prices, among Evaluation.scenario_prices


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
                if same_prices(self.scenario_prices[spec.name], current):
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
                project_rows(
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
