"""Small hand-made markets for the engine's tests."""

from __future__ import annotations

from liq_pipeline.risk.market import EModeCategory, Leg, MarketState, ReserveState, UserPosition
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.risk.wadray import RAY

T0 = 1_700_000_000


def reserve(
    rid: int,
    symbol: str,
    decimals: int,
    price: int,
    lt: int,
    *,
    ltv: int | None = None,
    bonus: int = 10500,
    fee: int = 1000,
    income: int = RAY,
    debt_index: int = RAY,
    liquidity_rate: int = 0,
    borrow_rate: int = 0,
    last_update: int = T0,
    emode: int = 0,
    stable: bool = False,
) -> ReserveState:
    return ReserveState(
        reserve_id=rid,
        asset=f"0x{rid + 0xA0:040x}",
        symbol=symbol,
        decimals=decimals,
        ltv=lt - 300 if ltv is None and lt else (ltv or 0),
        liquidation_threshold=lt,
        liquidation_bonus=bonus,
        liquidation_protocol_fee=fee,
        liquidity_index=income,
        variable_borrow_index=debt_index,
        liquidity_rate=liquidity_rate,
        variable_borrow_rate=borrow_rate,
        last_update_timestamp=last_update,
        price=price,
        emode_category=emode,
        is_stable=stable,
    )


def market(reserves, version: str = "3.0", timestamp: int = T0, emode=None, block: int = 100) -> MarketState:
    rules = rules_for(version)
    categories = {}
    for category in emode or []:
        bitmap = sum(1 << r.reserve_id for r in reserves if r.emode_category == category.category_id)
        categories[category.category_id] = EModeCategory(
            category.category_id,
            category.ltv,
            category.liquidation_threshold,
            category.liquidation_bonus,
            category.price,
            bitmap,
        )
    return MarketState(block, timestamp, rules, tuple(reserves), categories)


def user(address: str, legs: dict[int, Leg], emode: int = 0) -> UserPosition:
    return UserPosition(address, emode, legs)


def coll(amount: int, enabled: bool = True) -> Leg:
    return Leg(scaled_atoken=amount, collateral_enabled=enabled)


def debt(amount: int) -> Leg:
    return Leg(scaled_variable_debt=amount)


def both(collateral: int, owed: int, enabled: bool = True) -> Leg:
    return Leg(scaled_atoken=collateral, scaled_variable_debt=owed, collateral_enabled=enabled)


def traffic(book, spare, market: MarketState, rng, step: int, moved: int = 3) -> None:
    """A block's traffic on a position book: `moved` users' positions change (re-read after their events, taking
    rows of `spare`, a positions frame) and one user arrives."""
    import polars as pl

    users = rng.sample(book.positions["user"].to_list(), moved)
    fresh = spare.sample(moved + 1, seed=step).with_columns(pl.Series("user", [*users, f"0xnew{step:036d}"]))
    book.update(fresh, market)


def baseline_start(users: int, seed: int):
    """A sampled market, baseline-only parameters, its position book and a first full evaluation: where the
    screen and carry tests start from. Returns (market, params, book, first)."""
    from liq_pipeline.risk.book import build_book
    from liq_pipeline.risk.engine import evaluate
    from liq_pipeline.risk.params import EngineParams
    from liq_pipeline.risk.scenarios import default_specs
    from liq_pipeline.risk.synthetic import sample

    market_sample = sample(users, seed=seed)
    market, params = market_sample.market, EngineParams(default_specs(["baseline"]))
    book = build_book(market_sample.positions, market)
    return market, params, book, evaluate(book, market, params)
