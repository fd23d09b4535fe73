"""A few example users on the V3.6 market, each a case the engine must get right (not a bulk seeder).

In e-mode holding only the e-mode-only collateral (reserve LT 0), in e-mode mixing listed and unlisted
collateral, in a category whose collateral and borrowable sets are disjoint, in the stablecoin category,
outside e-mode (one also holding the LT-0 asset, which is then no collateral), and one with a 1-wei debt.
Two blocks: the liquidity provider supplies first (different senders in one block run in no fixed order), then
every user mints, approves, enters e-mode, supplies and borrows in nonce order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from eth_utils import keccak, to_checksum_address

from ..abi import call_data
from ..accounts import GAS_MONEY
from ..actions import MAX_UINT
from ..anvil import BLOCK_TIME
from ..rpc import Rpc
from ..txs import Chain, Tx
from .deploy import Deployment


@dataclass(frozen=True)
class UserPlan:
    role: str
    emode: int = 0
    supplies: dict[str, str] = field(default_factory=dict)  # symbol -> amount in whole tokens (decimal string)
    borrows: dict[str, str | int] = field(default_factory=dict)  # an int is raw units (1 = one wei)


LIQUIDITY = UserPlan(
    "liquidity-provider",
    supplies={"WETH": "1000", "WBTC": "20", "USDC": "5000000", "DAI": "5000000", "AERO": "1000000"},
)
EXAMPLE_USERS: tuple[UserPlan, ...] = (
    UserPlan("emode-lt0-only", emode=2, supplies={"wstETH": "10"}, borrows={"WETH": "10.5"}),
    UserPlan("emode-mixed", emode=2, supplies={"WETH": "3", "wstETH": "4", "WBTC": "0.1"}, borrows={"WETH": "6"}),
    UserPlan("emode-lt0-stables", emode=3, supplies={"wstETH": "5"}, borrows={"USDC": "12000"}),
    UserPlan("emode-stable", emode=1, supplies={"USDC": "10000", "DAI": "5000"}, borrows={"DAI": "13000"}),
    UserPlan(
        "plain",
        supplies={"WETH": "2", "WBTC": "0.05", "AERO": "1000"},
        borrows={"USDC": "5000", "DAI": "1000"},
    ),
    UserPlan("plain-holding-lt0", supplies={"wstETH": "1", "WETH": "1"}, borrows={"USDC": "1500"}),
    UserPlan("one-wei-debt", supplies={"USDC": "100"}, borrows={"WETH": 1}),
)


def user_address(role: str) -> str:
    return to_checksum_address(keccak(text=f"liq-devnet-v36:{role}")[12:])


def _raw(amount: str | int, decimals: int) -> int:
    return amount if isinstance(amount, int) else int(Decimal(amount) * 10**decimals)


def _txs(deployment: Deployment, plan: UserPlan) -> list[Tx]:
    market = deployment.market
    reserves = market.by_symbol
    user = user_address(plan.role)
    txs = []
    if plan.emode:
        txs.append(Tx(user, market.pool, call_data("setUserEMode(uint8)", plan.emode), label=f"{plan.role} e-mode"))
    for symbol, amount in plan.supplies.items():
        asset, raw = reserves[symbol].asset, _raw(amount, reserves[symbol].decimals)
        txs += [
            Tx(user, asset, call_data("mint(address,uint256)", user, raw), label=f"{plan.role} mint {symbol}"),
            Tx(user, asset, call_data("approve(address,uint256)", market.pool, MAX_UINT), label="approve"),
            Tx(
                user,
                market.pool,
                call_data("supply(address,uint256,address,uint16)", asset, raw, user, 0),
                label=f"{plan.role} supply {symbol}",
            ),
        ]
    for symbol, amount in plan.borrows.items():
        asset, raw = reserves[symbol].asset, _raw(amount, reserves[symbol].decimals)
        txs.append(
            Tx(
                user,
                market.pool,
                call_data("borrow(address,uint256,uint256,uint16,address)", asset, raw, 2, 0, user),
                label=f"{plan.role} borrow {symbol}",
            )
        )
    return txs


def seed_examples(rpc: Rpc, deployment: Deployment, users: tuple[UserPlan, ...] = EXAMPLE_USERS) -> dict[str, str]:
    """Liquidity, then the example users; returns role -> address (liquidity provider included)."""
    chain = Chain(rpc)
    everyone = (LIQUIDITY, *users)
    chain.set_balances([user_address(p.role) for p in everyone], GAS_MONEY)
    with chain.manual_mining():
        chain.execute(_txs(deployment, LIQUIDITY), timestamp=chain.latest_timestamp() + BLOCK_TIME)
        chain.execute(
            [tx for plan in users for tx in _txs(deployment, plan)], timestamp=chain.latest_timestamp() + BLOCK_TIME
        )
    return {plan.role: user_address(plan.role) for plan in everyone}
