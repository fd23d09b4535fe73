"""The devnet market, declared: reserves, risk parameters, rate strategies, e-mode, price dynamics.

Parameters are in the range of Aave V3 on Base/Ethereum (bps for risk, ray for rates). Decimals cover the three
cases that break bots: 18 (WETH, DAI, AERO), 8 (WBTC) and 6 (USDC). Volatilities are annualized and only used by
the simulator's price walk.
"""

from __future__ import annotations

from dataclasses import dataclass

RAY = 10**27
PRICE_DECIMALS = 8  # AaveOracle base currency: USD with 8 decimals, as on Base
BASE_CURRENCY_UNIT = 10**PRICE_DECIMALS


def ray(fraction: float) -> int:
    return round(fraction * 10**9) * 10**18


@dataclass(frozen=True)
class RateStrategy:
    """DefaultReserveInterestRateStrategy constructor arguments (V3.0), all in ray."""

    name: str
    optimal_usage: int
    base_variable: int
    variable_slope1: int
    variable_slope2: int
    stable_slope1: int
    stable_slope2: int
    base_stable_offset: int
    stable_excess_offset: int
    optimal_stable_to_total: int

    def args(self) -> list[int]:
        return [
            self.optimal_usage,
            self.base_variable,
            self.variable_slope1,
            self.variable_slope2,
            self.stable_slope1,
            self.stable_slope2,
            self.base_stable_offset,
            self.stable_excess_offset,
            self.optimal_stable_to_total,
        ]


VOLATILE = RateStrategy(
    "volatile", ray(0.80), 0, ray(0.04), ray(0.80), ray(0.04), ray(0.80), ray(0.02), ray(0.05), ray(0.2)
)
BTC_LIKE = RateStrategy("btc", ray(0.45), 0, ray(0.04), ray(3.00), ray(0.07), ray(3.00), ray(0.02), ray(0.05), ray(0.2))
STABLE = RateStrategy(
    "stable", ray(0.90), 0, ray(0.06), ray(0.60), ray(0.005), ray(0.60), ray(0.01), ray(0.08), ray(0.2)
)
LONG_TAIL = RateStrategy(
    "long_tail", ray(0.45), 0, ray(0.07), ray(3.00), ray(0.07), ray(3.00), ray(0.02), ray(0.05), ray(0.2)
)


@dataclass(frozen=True)
class ReserveParameters:
    """A reserve's token and risk parameters, as every protocol version's spec declares them."""

    symbol: str
    name: str
    decimals: int
    price: int  # initial price, USD with 8 decimals
    ltv: int  # bps
    liquidation_threshold: int  # bps; 0 (V3.6): collateral only inside e-mode
    liquidation_bonus: int  # bps, 10500 = 5 % bonus; 0 when the threshold is 0
    reserve_factor: int  # bps
    liquidation_protocol_fee: int  # bps of the bonus


@dataclass(frozen=True)
class ReserveSpec(ReserveParameters):
    strategy: RateStrategy
    emode_category: int = 0
    annual_volatility: float = 0.0  # simulator only
    annual_drift: float = 0.0  # simulator only


@dataclass(frozen=True)
class EModeSpec:
    category_id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str


RESERVES: tuple[ReserveSpec, ...] = (
    ReserveSpec(
        "WETH",
        "Wrapped Ether",
        18,
        3_000 * BASE_CURRENCY_UNIT,
        8000,
        8300,
        10500,
        1500,
        1000,
        VOLATILE,
        annual_volatility=0.65,
        annual_drift=0.05,
    ),
    ReserveSpec(
        "WBTC",
        "Wrapped BTC",
        8,
        95_000 * BASE_CURRENCY_UNIT,
        7300,
        7800,
        10500,
        2000,
        1000,
        BTC_LIKE,
        annual_volatility=0.50,
        annual_drift=0.05,
    ),
    ReserveSpec(
        "USDC",
        "USD Coin",
        6,
        1 * BASE_CURRENCY_UNIT,
        7500,
        7800,
        10500,
        1000,
        1000,
        STABLE,
        emode_category=1,
        annual_volatility=0.01,
    ),
    ReserveSpec(
        "DAI",
        "Dai Stablecoin",
        18,
        1 * BASE_CURRENCY_UNIT,
        7700,
        8000,
        10500,
        1000,
        1000,
        STABLE,
        emode_category=1,
        annual_volatility=0.015,
    ),
    ReserveSpec(
        "AERO",
        "Aerodrome",
        18,
        120_000_000,
        5000,
        6500,
        11000,
        2000,
        1000,
        LONG_TAIL,
        annual_volatility=1.20,
        annual_drift=0.0,
    ),
)

EMODES: tuple[EModeSpec, ...] = (EModeSpec(1, 9300, 9500, 10100, "Stablecoins"),)

MARKET_ID = "liq-pipeline devnet"


def spec_by_symbol() -> dict[str, ReserveSpec]:
    return {spec.symbol: spec for spec in RESERVES}
