"""A generated sample market: reserves like Base's, borrowers with varied portfolios, price histories.

Used by the benchmark, the dev harness and the tests. Deterministic for a seed. Portfolios: 1-4 collateral legs
and 1-2 debt legs among ten reserves (18, 8 and 6 decimals), some users in e-mode (their legs drawn from the
category), some collateral disabled, dust and whale positions, health factors spread from liquidatable to safe
with a share placed within 1e-6 of 1 to exercise the exact re-decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .market import EModeCategory, MarketState, ReserveState, coll_col, debt_col, on_col
from .versions import ProtocolRules, rules_for
from .wadray import RAY

# symbol, decimals, price (USD), ltv, threshold, bonus, protocol fee, e-mode category, stable, vol per sqrt(s)
RESERVE_SPECS = (
    ("WETH", 18, 3_000.0, 8000, 8300, 10500, 1000, 1, False, 0.0006),
    ("USDC", 6, 1.0, 7500, 7800, 10450, 1000, 2, True, 0.00002),
    ("cbETH", 18, 3_250.0, 7500, 7900, 10750, 1000, 1, False, 0.0006),
    ("USDbC", 6, 1.0, 7500, 7800, 10450, 1000, 2, True, 0.00002),
    ("wstETH", 18, 3_550.0, 7500, 7900, 10700, 1000, 1, False, 0.0006),
    ("cbBTC", 8, 95_000.0, 7300, 7800, 10750, 1000, 0, False, 0.0005),
    ("DAI", 18, 1.0, 7500, 8000, 10500, 1000, 2, True, 0.00003),
    ("AERO", 18, 1.25, 5000, 6500, 11000, 2000, 0, False, 0.0015),
    ("EURC", 6, 1.08, 7500, 7800, 10500, 1000, 0, True, 0.00005),
    ("GHO", 18, 1.0, 0, 0, 0, 0, 0, True, 0.00003),
)
EMODE = {
    1: EModeCategory(1, 9000, 9300, 10100, label="ETH correlated"),
    2: EModeCategory(2, 9300, 9500, 10100, label="Stablecoins"),
}
BASE_UNIT = 10**8


@dataclass(frozen=True)
class SampleMarket:
    market: MarketState
    positions: pl.DataFrame
    volatility: dict[int, float]


def sample_market_state(
    rules: ProtocolRules | None = None, seed: int = 7, block: int = 1_000_000, timestamp: int = 1_760_000_000
) -> MarketState:
    rules = rules or rules_for("3.0")
    rng = np.random.default_rng(seed)
    reserves = []
    for rid, (symbol, dec, price, ltv, lt, bonus, fee, cat, stable, _vol) in enumerate(RESERVE_SPECS):
        liquidity_index = RAY + int(rng.integers(0, 80_000_000)) * 10**18
        variable_index = liquidity_index + int(rng.integers(0, 40_000_000)) * 10**18
        reserves.append(
            ReserveState(
                reserve_id=rid,
                asset=f"0x{rid + 1:040x}",
                symbol=symbol,
                decimals=dec,
                ltv=ltv,
                liquidation_threshold=lt,
                liquidation_bonus=bonus,
                liquidation_protocol_fee=fee,
                liquidity_index=liquidity_index,
                variable_borrow_index=variable_index,
                liquidity_rate=int(rng.uniform(0.01, 0.05) * RAY),
                variable_borrow_rate=int(rng.uniform(0.03, 0.09) * RAY),
                last_update_timestamp=timestamp - int(rng.integers(0, 3_600)),
                price=round(price * BASE_UNIT),
                emode_category=cat,
                is_stable=stable,
            )
        )
    categories = {}
    for cat_id, category in EMODE.items():
        bitmap = sum(1 << r.reserve_id for r in reserves if r.emode_category == cat_id)
        categories[cat_id] = EModeCategory(
            cat_id,
            category.ltv,
            category.liquidation_threshold,
            category.liquidation_bonus,
            collateral_bitmap=bitmap,
            label=category.label,
        )
    return MarketState(block, timestamp, rules, tuple(reserves), categories, BASE_UNIT)


def sample_volatility() -> dict[int, float]:
    return {rid: spec[-1] for rid, spec in enumerate(RESERVE_SPECS)}


def sample_positions(market: MarketState, users: int, seed: int = 11, near_one_share: float = 0.02) -> pl.DataFrame:
    """`users` borrowers in the wide layout, built column-wise with numpy (1M users in a few seconds)."""
    rng = np.random.default_rng(seed)
    ids = list(market.reserve_ids)
    count = len(ids)
    reserves = [market.by_id[r] for r in ids]
    collateral_ok = np.array([r.liquidation_threshold > 0 for r in reserves])
    borrowable = np.ones(count, dtype=bool)

    emode = np.zeros(users, dtype=np.int32)
    in_emode = rng.random(users) < 0.12
    emode[in_emode] = rng.choice(sorted(market.emode_categories), size=int(in_emode.sum()))
    members = {c: np.array([market.in_emode(c, r) for r in ids]) for c in market.emode_categories}

    # Random priorities per reserve: the k smallest become the user's legs (vectorized choice w/o replacement).
    def pick(allowed: np.ndarray, k: np.ndarray) -> np.ndarray:
        keys = rng.random((users, count))
        keys[~allowed] = 2.0
        order = np.argsort(keys, axis=1)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(count)[None, :].repeat(users, 0), axis=1)
        return (ranks < k[:, None]) & allowed

    allowed_coll = np.tile(collateral_ok, (users, 1))
    allowed_debt = np.tile(borrowable, (users, 1))
    for c, member in members.items():
        rows = emode == c
        allowed_coll[rows] &= member
        allowed_debt[rows] &= member
    n_coll = rng.integers(1, 5, users)
    n_debt = rng.integers(1, 3, users)
    coll_mask = pick(allowed_coll, np.minimum(n_coll, allowed_coll.sum(1)))
    debt_mask = pick(allowed_debt, np.minimum(n_debt, allowed_debt.sum(1)))

    size_usd = np.exp(rng.normal(np.log(10_000), 1.5, users))
    dust = rng.random(users) < 0.02
    whale = rng.random(users) < 0.01
    size_usd[dust] = rng.uniform(0.01, 5.0, int(dust.sum()))
    size_usd[whale] = rng.uniform(1e6, 5e7, int(whale.sum()))
    weights = rng.random((users, count)) * coll_mask
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-300)
    coll_usd = weights * size_usd[:, None]
    disabled = (rng.random((users, count)) < 0.05) & coll_mask
    enabled = coll_mask & ~disabled

    prices_usd = np.array([r.price / BASE_UNIT for r in reserves])
    threshold = np.array([[market.effective_threshold(int(c), r) for r in ids] for c in (0, 1, 2)])[
        np.clip(emode, 0, 2)
    ]
    weighted = (coll_usd * enabled * threshold / 10_000).sum(1)

    target = np.exp(rng.normal(np.log(1.6), 0.35, users))
    roll = rng.random(users)
    target[roll < 0.10] = rng.uniform(0.85, 1.0, int((roll < 0.10).sum()))
    near = (roll >= 0.10) & (roll < 0.10 + near_one_share)
    target[near] = 1.0 + rng.uniform(-1e-6, 1e-6, int(near.sum()))
    debt_usd_total = weighted / target
    debt_weights = rng.random((users, count)) * debt_mask
    debt_weights /= np.maximum(debt_weights.sum(1, keepdims=True), 1e-300)
    debt_usd = debt_weights * debt_usd_total[:, None]

    units = np.array([float(r.unit) for r in reserves])
    income = np.array([market.income_index[r] / RAY for r in ids])
    debt_index = np.array([market.debt_index[r] / RAY for r in ids])
    scaled_coll = np.floor(coll_usd / prices_usd * units / income)
    scaled_debt = np.floor(debt_usd / prices_usd * units / debt_index)

    columns: dict[str, pl.Series] = {
        "user": pl.Series("user", [f"0x{i:040x}" for i in range(1, users + 1)]),
        "emode": pl.Series("emode", emode, dtype=pl.Int32),
    }
    for j, r in enumerate(ids):
        columns[coll_col(r)] = pl.Series(coll_col(r), scaled_coll[:, j]).cast(pl.Int128)
        columns[debt_col(r)] = pl.Series(debt_col(r), scaled_debt[:, j]).cast(pl.Int128)
        columns[on_col(r)] = pl.Series(on_col(r), enabled[:, j] | (coll_mask[:, j] & ~disabled[:, j]))
    return pl.DataFrame(columns)


def sample_price_history(market: MarketState, observations: int = 61, step_sec: int = 2, seed: int = 3) -> pl.DataFrame:
    """Random-walk price observations ending at the market's prices (asset = reserve symbol)."""
    rng = np.random.default_rng(seed)
    vols = sample_volatility()
    rows = []
    for r in market.reserves:
        sigma = vols.get(r.reserve_id, 0.0005) * np.sqrt(step_sec)
        steps = rng.normal(-0.1 * sigma, sigma, observations - 1)
        path = np.concatenate([[0.0], np.cumsum(steps)])
        path -= path[-1]
        prices = r.price * np.exp(path)
        start = market.timestamp - step_sec * (observations - 1)
        rows += [(r.symbol, start + k * step_sec, float(p)) for k, p in enumerate(prices)]
    return pl.DataFrame(rows, schema={"asset": pl.String, "timestamp": pl.Int64, "price": pl.Float64}, orient="row")


def sample(users: int, version: str = "3.0", seed: int = 7, near_one_share: float = 0.02) -> SampleMarket:
    market = sample_market_state(rules_for(version), seed=seed)
    positions = sample_positions(market, users, seed=seed + 4, near_one_share=near_one_share)
    return SampleMarket(market, positions, sample_volatility())
