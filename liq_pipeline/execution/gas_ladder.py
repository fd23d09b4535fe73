"""The gas ladder, pure: EIP-1559 fees from the expected profit, replacements, cancellation. Integer wei only.

- Send: priority fee = GAS_LADDER_PROFIT_SHARE_BPS of the expected profit per unit of gas, capped so that even
  the most the transaction can be charged (gas x max fee, plus the L1 data fee) leaves EXECUTION_MIN_PROFIT_USD.
  Max fee = 2 x base fee + priority fee (the base fee rises at most 12.5 % a block: 2x covers ~6 full blocks),
  lowered to that same cap.
- Replace: not included after GAS_LADDER_BUMP_AFTER_BLOCKS, both fees rise by GAS_LADDER_BUMP_BPS (nodes refuse a
  replacement under +10 %), at most GAS_LADDER_MAX_BUMPS times and never past the cap.
- Cancel: the opportunity is gone (liquidated by someone else, HF back above 1) while ours is pending: a 0-value
  transfer to ourselves at the same nonce with bumped fees takes its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

BPS = 10_000
MIN_REPLACEMENT_BUMP_BPS = 1_000  # geth / op-geth txpool.pricebump = 10 %
BASE_FEE_HEADROOM = 2
CANCEL_GAS = 21_000  # a plain transfer
USD_DECIMALS = 8  # Aave's base currency unit: oracle prices in USD with 8 decimals

Action = Literal["send", "skip", "wait", "replace", "cancel"]


def usd_e8(amount_usd: float | str | Decimal) -> int:
    """US dollars as an integer with 8 decimals (via the decimal text: 0.1 stays exactly 10_000_000)."""
    return int(Decimal(str(amount_usd)).scaleb(USD_DECIMALS).to_integral_value(rounding="ROUND_CEILING"))


def usd_to_wei(amount_usd_e8: int, native_price_usd_e8: int) -> int:
    """An amount in USD (8 decimals) in wei of the native token, rounded up (a cost floor never shrinks)."""
    if native_price_usd_e8 <= 0:
        raise ValueError(f"native_price_usd_e8 must be > 0, got {native_price_usd_e8}")
    return -(-amount_usd_e8 * 10**18 // native_price_usd_e8)


def _ceil_bump(value: int, bump_bps: int) -> int:
    return -(-value * (BPS + bump_bps) // BPS)


@dataclass(frozen=True)
class LadderConfig:
    profit_share_bps: int = 2_000
    bump_bps: int = 1_250
    bump_after_blocks: int = 2
    max_bumps: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.profit_share_bps <= BPS:
            raise ValueError(f"profit_share_bps must be 0..{BPS}, got {self.profit_share_bps}")
        if self.bump_bps < MIN_REPLACEMENT_BUMP_BPS:
            raise ValueError(f"bump_bps must be >= {MIN_REPLACEMENT_BUMP_BPS} (nodes' minimum), got {self.bump_bps}")
        if self.bump_after_blocks < 1 or self.max_bumps < 0:
            raise ValueError("bump_after_blocks must be >= 1 and max_bumps >= 0")

    @classmethod
    def from_settings(cls, settings) -> LadderConfig:
        return cls(
            settings.gas_ladder_profit_share_bps,
            settings.gas_ladder_bump_bps,
            settings.gas_ladder_bump_after_blocks,
            settings.gas_ladder_max_bumps,
        )


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class Costs:
    """What one attempt earns and costs, in wei of the native token."""

    profit_wei: int  # expected profit before gas (flash-loan premium and swap already taken off)
    min_profit_wei: int  # EXECUTION_MIN_PROFIT_USD in wei
    gas_units: int  # the transaction's gas (its estimate or limit: what it can be charged for)
    l1_fee_wei: int  # OP-stack L1 data fee (GasPriceOracle.getL1Fee); 0 elsewhere

    def __post_init__(self) -> None:
        if self.gas_units <= 0 or min(self.min_profit_wei, self.l1_fee_wei) < 0:
            raise ValueError("gas_units must be > 0, min_profit_wei and l1_fee_wei >= 0")

    @property
    def fee_cap_per_gas(self) -> int:
        """The highest fee per gas that still leaves min_profit_wei; negative when nothing does."""
        return (self.profit_wei - self.l1_fee_wei - self.min_profit_wei) // self.gas_units


@dataclass(frozen=True)
class Pending:
    """Our transaction in the node's pool: its fees, the block it (or its last replacement) was sent at."""

    fees: Fees
    sent_block: int
    bumps: int = 0


@dataclass(frozen=True)
class Decision:
    action: Action
    fees: Fees | None
    reason: str


def initial_fees(config: LadderConfig, costs: Costs, base_fee_wei: int) -> Decision:
    cap = costs.fee_cap_per_gas
    if cap < base_fee_wei:
        return Decision("skip", None, "profit net of gas at the current base fee is below the minimum")
    wanted = costs.profit_wei * config.profit_share_bps // BPS // costs.gas_units
    tip = min(wanted, cap - base_fee_wei)
    max_fee = min(BASE_FEE_HEADROOM * base_fee_wei + tip, cap)
    return Decision("send", Fees(max_fee, tip), "profit share" if tip == wanted else "capped by the minimum profit")


def _bumped(fees: Fees, bump_bps: int) -> Fees:
    return Fees(_ceil_bump(fees.max_fee_per_gas, bump_bps), _ceil_bump(fees.max_priority_fee_per_gas, bump_bps))


def next_step(
    config: LadderConfig,
    pending: Pending,
    costs: Costs,
    *,
    block: int,
    base_fee_wei: int,
    opportunity_open: bool,
) -> Decision:
    """What to do at `block` about a transaction still pending: wait, replace it with higher fees, or cancel it."""
    floor = _bumped(pending.fees, config.bump_bps)  # the least a node accepts as a replacement
    if not opportunity_open:
        # A cancel only has to be accepted and included: its cost (21,000 gas) is not bounded by a profit.
        max_fee = max(floor.max_fee_per_gas, BASE_FEE_HEADROOM * base_fee_wei + floor.max_priority_fee_per_gas)
        return Decision("cancel", Fees(max_fee, floor.max_priority_fee_per_gas), "the opportunity is gone")
    if block - pending.sent_block < config.bump_after_blocks:
        return Decision("wait", None, "within the blocks allowed for inclusion")
    if pending.bumps >= config.max_bumps:
        return Decision("wait", None, "replaced the most times allowed")
    cap = costs.fee_cap_per_gas
    tip = floor.max_priority_fee_per_gas
    max_fee = min(max(floor.max_fee_per_gas, BASE_FEE_HEADROOM * base_fee_wei + tip), cap)
    if max_fee < floor.max_fee_per_gas or max_fee < tip or max_fee < base_fee_wei:
        return Decision("wait", None, "a replacement would leave less than the minimum profit")
    return Decision("replace", Fees(max_fee, tip), f"not included after {block - pending.sent_block} blocks")
