"""The V3.6 devnet market, declared: reserves, risk parameters, rate data, e-mode categories with their bitmaps.

V3.6 differs from the V3.0 market (../spec.py) where the protocol does: one shared rate strategy
(DefaultReserveInterestRateStrategyV2) with per-reserve rate data in bps; e-mode categories list their
collateral and borrowable assets in bitmaps instead of each reserve naming one category; an asset may be
collateral ONLY inside e-mode (reserve LT 0, listed in a category's collateral bitmap: `wstETH` here, the case
V3.6's GenericLogic counts and V3.5 skipped). Virtual accounting is on, as V3.6 always has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import EModeSpec as BaseEModeSpec
from ..spec import ReserveParameters

PRICE_DECIMALS = 8
BASE_CURRENCY_UNIT = 10**PRICE_DECIMALS
MARKET_ID = "liq-pipeline devnet v3.6"
PROTOCOL_VERSION = "3.6"


@dataclass(frozen=True)
class RateData:
    """IDefaultInterestRateStrategyV2.InterestRateData, in bps: abi.encode((uint16,uint32,uint32,uint32))."""

    optimal_usage_ratio: int
    base_variable_borrow_rate: int
    variable_rate_slope1: int
    variable_rate_slope2: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (
            self.optimal_usage_ratio,
            self.base_variable_borrow_rate,
            self.variable_rate_slope1,
            self.variable_rate_slope2,
        )


VOLATILE = RateData(8000, 0, 400, 8000)
BTC_LIKE = RateData(4500, 0, 400, 30000)
STABLE = RateData(9000, 0, 600, 6000)
LST = RateData(4500, 0, 700, 30000)
LONG_TAIL = RateData(4500, 0, 700, 30000)


@dataclass(frozen=True)
class ReserveSpec(ReserveParameters):
    rate: RateData
    borrowable: bool = True


@dataclass(frozen=True)
class EModeSpec(BaseEModeSpec):
    """A category with its bitmaps (V3.6 lists assets per category, not a category per reserve)."""

    collateral: tuple[str, ...]  # symbols in the collateral bitmap
    borrowable: tuple[str, ...]  # symbols in the borrowable bitmap


RESERVES: tuple[ReserveSpec, ...] = (
    ReserveSpec("WETH", "Wrapped Ether", 18, 3_000 * BASE_CURRENCY_UNIT, 8000, 8300, 10500, 1500, 1000, VOLATILE),
    ReserveSpec("WBTC", "Wrapped BTC", 8, 95_000 * BASE_CURRENCY_UNIT, 7300, 7800, 10500, 2000, 1000, BTC_LIKE),
    ReserveSpec("USDC", "USD Coin", 6, 1 * BASE_CURRENCY_UNIT, 7500, 7800, 10500, 1000, 1000, STABLE),
    ReserveSpec("DAI", "Dai Stablecoin", 18, 1 * BASE_CURRENCY_UNIT, 7700, 8000, 10500, 1000, 1000, STABLE),
    # e-mode-only collateral: LTV 0 / LT 0 / no bonus outside e-mode, not borrowable
    ReserveSpec("wstETH", "Wrapped stETH", 18, 3_600 * BASE_CURRENCY_UNIT, 0, 0, 0, 500, 1000, LST, borrowable=False),
    ReserveSpec("AERO", "Aerodrome", 18, 120_000_000, 5000, 6500, 11000, 2000, 1000, LONG_TAIL),
)

EMODES: tuple[EModeSpec, ...] = (
    # same assets on both sides
    EModeSpec(1, 9300, 9500, 10100, "Stablecoins", collateral=("USDC", "DAI"), borrowable=("USDC", "DAI")),
    # an asset with reserve LT 0 as collateral; only WETH borrowable
    EModeSpec(2, 9000, 9300, 10100, "ETH correlated", collateral=("WETH", "wstETH"), borrowable=("WETH",)),
    # collateral and borrowable sets disjoint: the LST against stablecoins
    EModeSpec(3, 7500, 8000, 10600, "wstETH / stablecoins", collateral=("wstETH",), borrowable=("USDC", "DAI")),
)


def spec_by_symbol() -> dict[str, ReserveSpec]:
    return {spec.symbol: spec for spec in RESERVES}


def emode_by_id() -> dict[int, EModeSpec]:
    return {e.category_id: e for e in EMODES}
