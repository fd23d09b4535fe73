"""Price scenarios: one set of integer prices per scenario, the same for every user.

A scenario is an adverse move applied at once: every collateral leg is valued at its price moved DOWN by the
shock, every debt leg of a non-stable asset at its price moved UP (a user who borrowed ETH against USDC is hurt by
ETH rising). An asset has exactly two scenario prices, one for collateral legs and one for debt legs, shared by
all users. Debt is never shrunk because the same asset is also collateral.

With volatility scaling, each asset's shock is the configured one times its volatility relative to the median
volatility of the non-stable assets (clamped to [0.25, 4]): calm assets move less, wild ones more.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .market import MarketState
from .valuation import ScenarioPrices

PPM = 1_000_000
SCALE_BOUNDS = (0.25, 4.0)


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    shock_bps: int  # immediate adverse price move
    sigmas: float  # width of the volatility band of the projected path (0 = drift only)


def default_specs(
    names: Sequence[str],
    adverse_shock_bps: int = 100,
    extreme_shock_bps: int = 200,
    adverse_sigmas: float = 1.0,
    extreme_sigmas: float = 2.0,
) -> list[ScenarioSpec]:
    table = {
        "baseline": ScenarioSpec("baseline", 0, 0.0),
        "adverse": ScenarioSpec("adverse", adverse_shock_bps, adverse_sigmas),
        "extreme": ScenarioSpec("extreme", extreme_shock_bps, extreme_sigmas),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}: expected baseline, adverse, extreme")
    return [table[n] for n in names]


def shock_ppm(
    spec: ScenarioSpec,
    market: MarketState,
    volatility: Mapping[int, float | None] | None = None,
) -> dict[int, int]:
    """Per reserve shock in parts per million (integers keep both engine paths on identical prices)."""
    base = spec.shock_bps * 100
    if not volatility or base == 0:
        return {r: base for r in market.reserve_ids}
    known = [v for r, v in volatility.items() if v and r in market.by_id and not market.by_id[r].is_stable]
    reference = statistics.median(known) if known else None
    out = {}
    for r in market.reserve_ids:
        sigma = volatility.get(r)
        if reference is None or not sigma:
            out[r] = base
            continue
        scale = min(max(sigma / reference, SCALE_BOUNDS[0]), SCALE_BOUNDS[1])
        out[r] = min(round(base * scale), PPM - 1)
    return out


def scenario_prices(
    spec: ScenarioSpec,
    market: MarketState,
    volatility: Mapping[int, float | None] | None = None,
) -> ScenarioPrices:
    shocks = shock_ppm(spec, market, volatility)
    collateral: dict[int, int] = {}
    debt: dict[int, int] = {}
    for r in market.reserve_ids:
        price = market.by_id[r].price
        move = shocks[r]
        collateral[r] = price * (PPM - move) // PPM
        debt[r] = price if market.by_id[r].is_stable else -(-price * (PPM + move) // PPM)
    return ScenarioPrices(spec.name, collateral, debt)
