"""The predictive engine: every user, every scenario, in one vectorized pass, then candidates.

evaluate() takes the position book (or the wide positions frame), the market at one block and the price trends,
and returns an Evaluation (risk/evaluation.py): per user and scenario the HF right after the shock (`hf_{s}`,
decided exactly near 1), the projected HF at the horizon and the ETA to HF < 1 + buffer; candidates are the
(user, scenario) pairs whose ETA is within the horizon. It runs in stages:
1. live rows: the users to evaluate at this block (everyone, the screen's hot users, or on a quiet block only
   those near a decision: risk/screen.py, risk/carry.py); every other row keeps its values;
2. current HF of the live rows (liquidatable now);
3. scenario pass: the shocked HF of the live rows that could be under a scenario's reach bound;
4. projection: ETA and projected HF of the rows that can reach the threshold within the horizon;
5. carry: each live row's headroom over every decision, and a new screen after a full pass, for the next block.
The float pass behind stages 2 and 3 is one fused compiled pass over the live rows' legs for the current and
every distinct shocked scenario (risk/fused.py: sums, float HF and error band at once; numba, compiled at the first
evaluation); its banded pairs are re-decided exactly (risk/exact_batch.py). EngineParams.fused_threads = 0 (the
setting LIQ_FUSED_KERNEL=0) runs the numpy passes of risk/health.py instead: the same decisions (tests compare
both); 2 or more runs the fused pass over that many threads.
Pure: no I/O, no clock, no Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from .book import PositionBook, build_book, take_rows
from .carry import Carry, carry_key, growth_rates
from .evaluation import CURRENT, Evaluation
from .exact_batch import redecide_banded
from .floors import rounding_noise, scenario_floor
from .fused import FusedPass, fused_available, fused_float
from .health import GATHER_FIRST, HealthPass, evaluate_health, rounding_slack, scenario_products
from .market import MarketState
from .params import AssetTrend, EngineParams
from .projection import project_rows, reach_bound
from .row_arrays import grown, with_spare_rows
from .scenarios import scenario_prices
from .screen import Screen, make_screen
from .valuation import ScenarioPrices, same_prices


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
    block = _block(book, market, params, trends or {}, reuse_previous)
    live = _live_rows(block, screen, previous)
    products = _shared_products(block, live)
    current = _current_hf(block, live, products, screen)
    scenarios = _scenario_pass(block, live, current, products)
    products = None  # the fused pass's arrays (~144 MB at 1M users x 3 scenarios) are not needed past here
    projection = _projection(block, live, current, scenarios)
    carry = _next_carry(block, live, current, scenarios, projection)
    if live.subset is None:  # a full pass proves which users are cold: the next blocks skip them
        screen = make_screen(book, market, block.by_name, block.bounds, scenarios.floors, current.hf_current)
    if live.carried is not None and reuse_previous:
        live.carried.taken_over = True  # its arrays are this evaluation's now: users/candidates refuse to build
    return Evaluation(
        block=market.block,
        book=book,
        market=market,
        params=params,
        hf_current=current.hf_current,
        hf=scenarios.hf,
        projected=projection.projected,
        eta=projection.eta,
        scenario_prices={p.name: p for p in [block.current, *block.shocked]},
        exact_redecided=current.now.exact_count + (scenarios.shocked.exact_count if scenarios.shocked else 0),
        book_version=book.version,
        trends=(block.drift, block.volatility),
        sums=scenarios.sums,
        screen=screen,
        carry=carry,
        carried_from=live.carried.block if live.carried is not None else None,
        evaluated_rows=live.subset,
    )


@dataclass(frozen=True)
class _Block:
    """What every stage reads: the book, the market and parameters, the block's prices and trends."""

    book: PositionBook
    market: MarketState
    params: EngineParams
    drift: dict[int, float]
    volatility: dict[int, float]
    current: ScenarioPrices
    shocked: list[ScenarioPrices]  # per scenario, in params.scenarios order
    distinct: list[ScenarioPrices]  # the shocked prices that differ from the current ones
    bounds: dict[str, float]  # per scenario: the HF right after the shock under which the ETA can be in the horizon
    reuse: bool  # take the carried arrays over in place (evaluate's reuse_previous)

    @property
    def by_name(self) -> dict[str, ScenarioPrices]:
        return {p.name: p for p in self.shocked}


def _block(
    book: PositionBook, market: MarketState, params: EngineParams, trends: Mapping[int, AssetTrend], reuse: bool
) -> _Block:
    """The trends, the current and shocked prices, and each scenario's reach bound (exact: a user above it cannot
    reach the threshold within the horizon, see projection.reach_bound)."""
    drift = {r: t.drift_per_sec for r, t in trends.items()}
    volatility = {r: t.volatility_per_sqrt_sec for r, t in trends.items() if t.volatility_per_sqrt_sec}
    scaling = volatility if params.volatility_scaling else None
    current = ScenarioPrices(CURRENT, dict(market.prices), dict(market.prices))
    shocked = [scenario_prices(spec, market, scaling) for spec in params.scenarios]
    distinct = [p for p in shocked if not same_prices(p, current)]
    bounds = {
        spec.name: params.threshold
        * math.exp(reach_bound(market, book.reserve_ids, drift, volatility, spec.sigmas, params.horizon_sec))
        * (1.0 + 1e-9)
        for spec in params.scenarios
    }
    return _Block(book, market, params, drift, volatility, current, shocked, distinct, bounds, reuse)


@dataclass(frozen=True)
class _LiveRows:
    """The rows evaluated at this block."""

    rows: np.ndarray  # the book rows evaluated
    subset: np.ndarray | None  # the same rows, or None when they are every row (the passes then gather nothing)
    key: tuple  # carry_key: what the next block's carry compares
    carried: Evaluation | None  # on a quiet block, the previous evaluation: every other row keeps its values


def _live_rows(block: _Block, screen: Screen | None, previous: Evaluation | None) -> _LiveRows:
    """Stage 1: every row, unless the screen still holds (then its hot rows) or no price moved since `previous`
    (then the rows near a decision, changed or new: risk/carry.py), or both."""
    book, market, params = block.book, block.market, block.params
    screened = screen is not None and screen.holds(book, market, block.by_name, block.bounds)
    hot_mask = screen.hot(book) if screened else None
    key = carry_key(market, block.shocked, block.drift, block.volatility, params)
    quiet = (
        previous is not None
        and previous.carry is not None
        and (screen is None or screened)
        and previous.carry.applies(book, market, key)
    )
    if quiet:
        sigmas = max((spec.sigmas for spec in params.scenarios), default=0.0)
        bound = previous.carry.bound(market, sigmas, params.horizon_sec, block.drift, block.volatility)
        need = previous.carry.needed(book, bound)
        subset = np.flatnonzero(need if hot_mask is None else need & hot_mask)
    else:
        subset = np.flatnonzero(hot_mask) if screened else None
    rows = subset if subset is not None else np.arange(book.height)
    return _LiveRows(rows, subset, key, previous if quiet else None)


_Products = tuple[np.ndarray, np.ndarray, np.ndarray] | FusedPass | None


def _shared_products(block: _Block, live: _LiveRows) -> _Products:
    """The fused pass (risk/fused.py, the default): the live rows' sums, float HFs and error band in the current
    and every distinct shocked scenario, read from their legs once (the exact re-decisions follow in stages 2
    and 3), on params.fused_threads threads. With fused_threads = 0, the numpy products: the sums of the same
    scenarios in one pass over the book, when most rows are live; None when few are (each pass then gathers its
    rows' inputs first, cheaper than a product over all)."""
    threads = block.params.fused_threads
    if fused_available(threads):
        prices = [block.current, *block.distinct]
        return fused_float(block.book, block.market, prices, live.subset, want_slack=True, threads=threads)
    if live.subset is None or live.subset.size * GATHER_FIRST >= block.book.height:
        return scenario_products(block.book, block.market, [block.current, *block.distinct])
    return None


@dataclass(frozen=True)
class _Current:
    """The current pass over the live rows, and every row's current HF."""

    now: HealthPass  # over the live rows
    hf_current: np.ndarray  # per book row
    slack: tuple[np.ndarray, np.ndarray]  # rounding_slack (collateral, debt): of every row, or the live rows' (fused)
    noise: np.ndarray  # over the live rows: rounding_noise of the current HF


def _current_hf(block: _Block, live: _LiveRows, products: _Products, screen: Screen | None) -> _Current:
    """Stage 2: the current HF (liquidatable now) of every live row. A zero-shock scenario (baseline) has the
    current prices: its HF is this one, computed once."""
    book, n = block.book, block.book.height
    if isinstance(products, FusedPass):  # column 0 of the fused pass, its banded rows re-decided exactly
        fused = products
        count = redecide_banded(
            fused.hf, fused.band, book, block.market, [block.current], live.subset, (0,), fused.banded
        )
        column = [np.ascontiguousarray(a[:, :1]) for a in (fused.hf, fused.band, fused.weighted, fused.collateral)]
        # copies, not views: a view would keep the whole fused pass alive until the evaluation ends (peak memory)
        now = HealthPass((block.current.name,), *column, np.ascontiguousarray(fused.debt[:, :1]), count)
        slack = (fused.slack[:, 0], fused.slack[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):  # floors.rounding_noise, from the live rows' slack
            noise = slack[0] / now.collateral[:, 0] + slack[1] / now.debt[:, 0]
    else:
        slack = rounding_slack(book, block.market)
        now = evaluate_health(book, block.market, [block.current], live.subset, slack, products, slice(0, 1))
        noise = rounding_noise(now, slack, live.subset)  # the exact values may lie this far (relative) from the floats
    if live.carried is not None:  # everyone else keeps the previous block's values
        hf_current = _carried(live.carried.hf_current, n, np.nan, reuse=block.reuse)
    elif live.subset is None:
        hf_current = np.empty(n)
    else:  # cold users keep the screen's value: their decision (HF > 1) is proven, the value a little stale
        hf_current = _carried(screen.hf_current, n, np.nan)
    hf_current[live.rows] = now.hf[:, 0]
    return _Current(now, hf_current, slack, noise)


@dataclass(frozen=True)
class _Scenarios:
    """Per scenario, every row's HF and sums (carried rows keep theirs), and the floors behind the pass."""

    hf: dict[str, np.ndarray]  # HF right after the shock (NaN: not evaluated, above the floor)
    sums: dict[str, tuple[np.ndarray, np.ndarray]]  # LT-weighted collateral S and debt D
    floors: dict[str, np.ndarray]  # over the live rows: scenario_floor per distinct scenario (full pass: every one)
    noise: np.ndarray  # over the live rows: rounding_noise of the current HF
    shocked: HealthPass | None  # the pass over the rows that could be under a distinct scenario's bound


def _scenario_pass(block: _Block, live: _LiveRows, current: _Current, products: _Products) -> _Scenarios:
    """Stage 3: a shocked scenario's HF only for the live rows whose HF in it could be under the reach bound
    (scenario_floor): most users are far from 1, and skipping them is most of the per-block work; `users` fills
    in the rest on demand. A full pass also floors the zero-shock scenarios: the next screen needs them."""
    book, market, now, slack, rows = block.book, block.market, current.now, current.slack, live.rows
    floored = block.shocked if live.subset is None else block.distinct
    noise = current.noise  # the exact values may lie this far (relative) from the floats
    floors = {p.name: scenario_floor(book, market, now, slack, p, live.subset, noise) for p in floored}
    shocked = hot = None
    if block.distinct:
        under = np.logical_or.reduce([floors[p.name] < block.bounds[p.name] for p in block.distinct])
        hot = rows[under]
        if isinstance(products, FusedPass):
            shocked = _fused_shocked(block, products, np.flatnonzero(under), hot)
        else:
            shocked = evaluate_health(book, market, block.distinct, hot, slack, products, slice(1, None))
    n, before, reuse = book.height, live.carried, block.reuse
    hf, sums = {}, {}
    for spec, prices in zip(block.params.scenarios, block.shocked, strict=True):
        weighted = _carried(before and before.sums[spec.name][0], n, np.nan, rows, reuse=reuse)
        debt = _carried(before and before.sums[spec.name][1], n, np.nan, rows, reuse=reuse)
        if same_prices(prices, block.current):
            hf[spec.name] = current.hf_current
            weighted[rows], debt[rows] = now.weighted[:, 0], now.debt[:, 0]
        else:
            column = shocked.column(spec.name)
            hf[spec.name] = _carried(before and before.hf[spec.name], n, np.nan, rows, reuse=reuse)
            hf[spec.name][hot] = shocked.hf[:, column]
            weighted[hot], debt[hot] = shocked.weighted[:, column], shocked.debt[:, column]
        sums[spec.name] = (weighted, debt)
    return _Scenarios(hf, sums, floors, noise, shocked)


def _fused_shocked(block: _Block, fused: FusedPass, positions: np.ndarray, hot: np.ndarray) -> HealthPass:
    """The distinct scenarios' columns of the fused pass at the live `positions` (book rows `hot`), their banded
    pairs re-decided exactly."""
    # whole rows gathered with np.take, then the distinct columns (2-D fancy indexing was ~3x slower); the fused
    # pass keeps no shocked collateral sum (FusedPass.collateral), nothing reads it
    hf, band, weighted, debt = (
        np.take(a, positions, axis=0)[:, 1:] for a in (fused.hf, fused.band, fused.weighted, fused.debt)
    )
    collateral = np.empty((positions.size, 0))
    at = np.searchsorted(positions, fused.banded)  # the banded live positions among `positions`
    inside = at < positions.size
    inside[inside] = positions[at[inside]] == fused.banded[inside]
    count = redecide_banded(hf, band, block.book, block.market, block.distinct, hot, None, at[inside])
    return HealthPass(tuple(p.name for p in block.distinct), hf, band, weighted, collateral, debt, count)


@dataclass(frozen=True)
class _Projection:
    """Per scenario, every row's ETA and projected HF (carried rows keep theirs); how close each live row is to
    becoming a candidate."""

    eta: dict[str, np.ndarray]
    projected: dict[str, np.ndarray]
    closest: np.ndarray | None  # per live row: the least |band minimum| over the scenarios (None: no scenario)


def _projection(block: _Block, live: _LiveRows, current: _Current, scenarios: _Scenarios) -> _Projection:
    """Stage 4: ETA and projected HF per scenario, only where the ETA can fall within the horizon (exact: see
    reach_bound); cold users never. Each live row's band minimum (its distance from becoming a candidate, for the
    carry) comes from the projection where there is one, else from its HF or floor."""
    rows, n, before, reuse = live.rows, block.book.height, live.carried, block.reuse
    eta, projected, closest = {}, {}, None
    for spec, prices in zip(block.params.scenarios, block.shocked, strict=True):
        bound = block.bounds[spec.name]
        shocked_hf = scenarios.hf[spec.name][rows]
        with np.errstate(divide="ignore", invalid="ignore"):  # not evaluated (NaN): above the floor
            if same_prices(prices, block.current):
                f = np.log(current.now.hf[:, 0] / bound)
            else:
                f = np.log(np.where(np.isnan(shocked_hf), scenarios.floors[spec.name], shocked_hf) / bound)
        with np.errstate(invalid="ignore"):
            near_at = np.flatnonzero(shocked_hf < bound)
        eta[spec.name] = _carried(before and before.eta[spec.name], n, np.inf, rows, reuse=reuse)
        projected[spec.name] = _carried(before and before.projected[spec.name], n, np.nan, rows, reuse=reuse)
        f[near_at] = project_rows(
            block.book,
            block.market,
            prices,
            spec,
            block.params,
            block.drift,
            block.volatility,
            scenarios.sums[spec.name],
            rows[near_at],
            scenarios.hf,
            eta,
            projected,
        )
        closest = np.abs(f) if closest is None else np.minimum(closest, np.abs(f), out=closest)
    return _Projection(eta, projected, closest)


def _next_carry(
    block: _Block, live: _LiveRows, current: _Current, scenarios: _Scenarios, projection: _Projection
) -> Carry:
    """Stage 5: the headroom of each live row over every decision (|ln HF| for liquidatable now, |band minimum|
    per scenario) less its rounding noise, for the next block's carry (risk/carry.py)."""
    book, market, hf_now = block.book, block.market, current.now.hf[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.abs(np.log(hf_now))
    if projection.closest is not None:
        room = np.minimum(room, projection.closest)
    with np.errstate(invalid="ignore"):
        room = np.where(np.isfinite(hf_now), room - scenarios.noise, room)
    room[take_rows(book.exact_only, live.subset)] = 0.0
    before = live.carried.carry if live.carried is not None else None
    headroom = _carried(before.headroom if before else None, book.height, 0.0, reuse=block.reuse)
    headroom[live.rows] = np.nan_to_num(room, nan=0.0)
    return Carry(
        generation=book.generation,
        version=book.version,
        base=before.base if before else market,
        growth_rates=(*before.growth_rates, growth_rates(market)) if before else (growth_rates(market),),
        key=live.key,
        headroom=headroom,
        blocks=before.blocks + 1 if before else 0,
    )


def _carried(
    values: np.ndarray | None, n: int, fill: float, reset: np.ndarray | None = None, reuse: bool = False
) -> np.ndarray:
    """The previous block's row-aligned `values` grown to `n` rows with `fill` (all `fill` when None), with the
    `reset` rows set to `fill` (they are evaluated again): a copy, or with `reuse` the array itself, grown in place
    (row_arrays.py) when rows were added (16 arrays of 100k rows copied every block cost ~1.5 ms)."""
    if reuse and values is not None:
        out = grown(values, n, fill)
    elif reuse:
        out = with_spare_rows(n, fill)  # the next blocks' new users fit in its spare rows
    else:
        out = np.full(n, fill)
        if values is not None:
            kept = min(n, values.size)
            out[:kept] = values[:kept]
    if values is not None and reset is not None:
        out[reset] = fill
    return out


__all__ = ["evaluate"]
