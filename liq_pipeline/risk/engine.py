"""The predictive engine: every user, every scenario, in one vectorized pass, then candidates.

evaluate() takes the wide positions frame, the market at one block and the price trends, and returns
- `users`: per user and scenario the HF right after the shock (`hf_{s}`, decided exactly near 1), the drift and
  volatility of its log HF, the projected HF at the horizon and the ETA to HF < 1 + buffer;
- `candidates`: one row per (user, scenario) whose ETA is within the horizon, with sizing.
Pure: no I/O, no clock, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from .health import PositionBook, ScenarioPrices, baseline_prices, build_book, evaluate_health
from .market import MarketState
from .projection import eta_expr, growth_and_sigma_exprs, projected_hf_expr
from .scenarios import ScenarioSpec, scenario_prices
from .sizing import size_liquidations

CURRENT = "current"

SIZING_COLUMNS = (
    "debt_reserve",
    "collateral_reserve",
    "close_factor",
    "debt_to_cover_base",
    "collateral_seized_base",
    "protocol_fee_base",
    "expected_profit_base",
)

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
    block: int
    users: pl.DataFrame
    candidates: pl.DataFrame
    scenario_prices: dict[str, ScenarioPrices] = field(default_factory=dict)
    exact_redecided: int = 0  # (user, scenario) pairs decided on the exact path

    def candidates_per_scenario(self) -> dict[str, int]:
        counts = self.candidates.group_by("scenario").len()
        return {row["scenario"]: row["len"] for row in counts.iter_rows(named=True)}


def evaluate(
    positions: pl.DataFrame | PositionBook,
    market: MarketState,
    params: EngineParams,
    trends: Mapping[int, AssetTrend] | None = None,
) -> Evaluation:
    """Evaluate every user in every scenario. Pass a PositionBook (build_book) to reuse it across blocks."""
    book = positions if isinstance(positions, PositionBook) else build_book(positions, market)
    trends = trends or {}
    drift = {r: t.drift_per_sec for r, t in trends.items()}
    volatility = {r: t.volatility_per_sqrt_sec for r, t in trends.items() if t.volatility_per_sqrt_sec}
    scaling = volatility if params.volatility_scaling else None
    current = ScenarioPrices(CURRENT, dict(market.prices), dict(market.prices))
    shocked = [_named(scenario_prices(spec, market, scaling), spec.name) for spec in params.scenarios]
    # A zero-shock scenario (baseline) has the current prices: its HF is the current HF, computed once.
    distinct = [current] + [p for p in shocked if not _same(p, current)]
    computed = {p.name for p in distinct}
    growth = [
        expr
        for prices in shocked
        for expr in growth_and_sigma_exprs(
            market, prices, book, drift, volatility, prices.name, prices.name if prices.name in computed else CURRENT
        )
    ]
    decided, exact_count = evaluate_health(book, market, distinct, growth)

    projections = [pl.col("user"), pl.col(f"hf_{CURRENT}").alias("hf_current")]
    for spec in params.scenarios:
        source = f"hf_{spec.name}" if f"hf_{spec.name}" in decided.columns else f"hf_{CURRENT}"
        hf, g, sigma = pl.col(source), pl.col(f"g_{spec.name}"), pl.col(f"sigma_{spec.name}")
        projections += [
            hf.alias(f"hf_{spec.name}"),
            projected_hf_expr(hf, g, sigma, spec.sigmas, params.horizon_sec).alias(f"hf_projected_{spec.name}"),
            eta_expr(hf, g, sigma, spec.sigmas, params.threshold).alias(f"eta_{spec.name}"),
        ]
    users = decided.lazy().select(projections).collect()
    priced = {p.name: p for p in [current, *shocked]}
    return Evaluation(
        block=market.block,
        users=users,
        candidates=_candidates(users, book, market, params, priced),
        scenario_prices=priced,
        exact_redecided=exact_count,
    )


def _candidates(
    users: pl.DataFrame,
    book: PositionBook,
    market: MarketState,
    params: EngineParams,
    priced: Mapping[str, ScenarioPrices],
) -> pl.DataFrame:
    """Rows of users whose ETA falls within the horizon, sized. `users` is row-aligned with the book."""
    parts = []
    for spec in params.scenarios:
        within = users.select(pl.arg_where(pl.col(f"eta_{spec.name}") <= params.horizon_sec)).to_series()
        if within.len() == 0:
            continue
        selected = users[within].select(
            "user",
            pl.lit(spec.name).alias("scenario"),
            pl.lit(market.block, pl.Int64).alias("block"),
            "hf_current",
            pl.col(f"hf_{spec.name}").alias("hf_scenario"),
            pl.col(f"hf_projected_{spec.name}").alias("hf_projected"),
            pl.col(f"eta_{spec.name}").alias("eta_sec"),
            (pl.col("hf_current") < 1.0).alias("liquidatable_now"),
        )
        rows = book.floats[within].with_columns(selected["hf_scenario"])
        sized = size_liquidations(rows.lazy(), market, priced[spec.name], book, "hf_scenario")
        parts.append(pl.concat([selected, sized.select(SIZING_COLUMNS).collect()], how="horizontal"))
    if not parts:
        return pl.DataFrame(schema=CANDIDATE_SCHEMA)
    return pl.concat(parts).cast(CANDIDATE_SCHEMA).select(list(CANDIDATE_SCHEMA)).sort("eta_sec", "user")


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
