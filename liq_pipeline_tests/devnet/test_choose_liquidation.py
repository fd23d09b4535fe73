"""The competitor's choice (actions.choose_liquidation) on a hand-built V3.6 position: max uint would leave dust,
so it asks for the largest amount the Pool accepts; a price update in the same block is taken into account."""

from __future__ import annotations

import dataclasses

from liq_pipeline.devnet.actions import MAX_UINT, choose_liquidation
from liq_pipeline.risk.liquidation import MIN_LEFTOVER_BASE, MUST_NOT_LEAVE_DUST, liquidation_outcome
from liq_pipeline.risk.market import Leg, MarketState, ReserveState, UserPosition
from liq_pipeline.risk.versions import rules_for

RAY = 10**27
NOW = 1_800_000_000
WETH, USDC, DAI = 0, 1, 2
LIQUIDATOR = "0x" + "11" * 20


def _reserve(reserve_id: int, symbol: str, decimals: int, price: int, lt: int) -> ReserveState:
    return ReserveState(
        reserve_id, f"0x{reserve_id + 1:040x}", symbol, decimals, lt - 300, lt, 10500, 1000,
        RAY, RAY, 0, 0, NOW, price,
    )  # fmt: skip


def _market(version: str = "3.6", weth_price: int = 4_100 * 10**8) -> MarketState:
    reserves = (
        _reserve(WETH, "WETH", 18, weth_price, 8300),
        _reserve(USDC, "USDC", 6, 10**8, 7800),
        _reserve(DAI, "DAI", 18, 10**8, 8000),
    )
    return MarketState(1, NOW, rules_for(version), reserves)


# $4,100 of WETH (LT 83 %) against $2,500 USDC + $1,000 DAI: HF 0.972, so at most half the total debt ($1,750)
# of USDC, which would leave $750: MustNotLeaveDust on 3.6.
POSITION = UserPosition(
    "0x" + "22" * 20,
    0,
    {
        WETH: Leg(scaled_atoken=10**18, collateral_enabled=True),
        USDC: Leg(scaled_variable_debt=2_500 * 10**6),
        DAI: Leg(scaled_variable_debt=1_000 * 10**18),
    },
)


def test_max_uint_leaves_dust_so_the_largest_accepted_amount_is_chosen():
    market = _market()
    refused = liquidation_outcome(POSITION, market, WETH, USDC, MAX_UINT, liquidator=LIQUIDATOR)
    assert refused.reason == MUST_NOT_LEAVE_DUST
    chosen = choose_liquidation(POSITION, [market], LIQUIDATOR)
    assert (chosen.collateral_id, chosen.debt_id) == (WETH, USDC)  # more than DAI's whole $1,000
    assert chosen.debt_to_cover < refused.max_liquidatable_debt
    outcome = liquidation_outcome(POSITION, market, WETH, USDC, chosen.debt_to_cover, liquidator=LIQUIDATOR)
    assert outcome.ok and outcome.debt_repaid == chosen.debt_repaid
    left = 2_500 * 10**6 - chosen.debt_to_cover
    assert MIN_LEFTOVER_BASE <= left * 100 <= MIN_LEFTOVER_BASE * 1.03  # ~$1,000 left: near the largest allowed


def test_v30_takes_max_uint():
    chosen = choose_liquidation(POSITION, [_market("3.0")], LIQUIDATOR)
    assert chosen.debt_to_cover == MAX_UINT and (chosen.collateral_id, chosen.debt_id) == (WETH, USDC)


def test_every_price_order_must_accept_it():
    before, after = _market(), _market(weth_price=5_000 * 10**8)  # the block's price update makes HF >= 1
    assert choose_liquidation(POSITION, [after, before], LIQUIDATOR) is None
    assert choose_liquidation(POSITION, [before], LIQUIDATOR) is not None


def test_nothing_to_seize():
    market = _market()
    legs = dict(POSITION.legs) | {WETH: Leg()}
    assert choose_liquidation(dataclasses.replace(POSITION, legs=legs), [market], LIQUIDATOR) is None
