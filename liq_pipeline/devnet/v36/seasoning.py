"""Age a fresh V3.6 market: borrowed reserves, then years of interest, so its indices are far from 1 as Base's are.

A freshly listed reserve has liquidityIndex = variableBorrowIndex = 1 ray, where rayMul / rayDiv hardly round and
a scaled balance equals the balance: the exact path would be checked on the one case where it is easiest. Here
one account supplies $5M of every borrowable reserve and borrows 90 % of the reserve's optimal usage ratio (rates
on slope 1: 3.6-6.3 % a year), the chain jumps SEASON_SECONDS, and a small supply per reserve stores the grown
indices. Measured on the devnet: liquidity indices 1.03-1.12, borrow indices 1.11-1.21 ray (docs/devnet.md).
The account stays as a diversified whale (HF ~1.12 after the jump), a borrower like any other.
"""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address

from ..abi import call_data
from ..accounts import GAS_MONEY
from ..anvil import BLOCK_TIME
from ..market import Market
from ..rpc import Rpc
from ..txs import Chain, Tx
from .spec import BASE_CURRENCY_UNIT, ReserveSpec

MAX_UINT = 2**256 - 1
SEASON_SECONDS = 3 * 365 * 24 * 3600  # Aave V3 on Base: listed Aug 2023, ~3 years before the devnet's today
SUPPLY_USD = 5_000_000
USAGE_OF_OPTIMAL = 0.9  # stays on slope 1: slope 2 (30-300 % a year) would make the indices run away
TOUCH_UNITS = 10**6  # the supply that stores the indices: 1 unit would mint 0 scaled and revert (InvalidMintAmount)
SEASONER = to_checksum_address(keccak(text="liq-devnet-v36:seasoning")[12:])


def _amount(spec: ReserveSpec, usd: float) -> int:
    return int(usd * BASE_CURRENCY_UNIT) * 10**spec.decimals // spec.price


def season(rpc: Rpc, market: Market, reserves: tuple[ReserveSpec, ...], seconds: int = SEASON_SECONDS) -> int:
    """Supply and borrow every borrowable reserve, jump `seconds`, store the indices. Returns the last block."""
    chain = Chain(rpc)
    chain.set_balances([SEASONER], GAS_MONEY)
    pool = market.pool
    borrowable = [spec for spec in reserves if spec.borrowable]
    supply, borrow = [], []
    for spec in borrowable:
        asset = market.by_symbol[spec.symbol].asset
        amount = _amount(spec, SUPPLY_USD)
        supply += [
            Tx(SEASONER, asset, call_data("mint(address,uint256)", SEASONER, amount + TOUCH_UNITS)),
            Tx(SEASONER, asset, call_data("approve(address,uint256)", pool, MAX_UINT)),
            Tx(
                SEASONER,
                pool,
                call_data("supply(address,uint256,address,uint16)", asset, amount, SEASONER, 0),
                label=f"seasoning: supply {spec.symbol}",
            ),
        ]
        share = USAGE_OF_OPTIMAL * spec.rate.optimal_usage_ratio / 10_000
        borrow.append(
            Tx(
                SEASONER,
                pool,
                call_data("borrow(address,uint256,uint256,uint16,address)", asset, int(amount * share), 2, 0, SEASONER),
                label=f"seasoning: borrow {spec.symbol}",
            )
        )
    touch = [
        Tx(
            SEASONER,
            pool,
            call_data(
                "supply(address,uint256,address,uint16)", market.by_symbol[spec.symbol].asset, TOUCH_UNITS, SEASONER, 0
            ),
            label=f"seasoning: store the {spec.symbol} indices",
        )
        for spec in borrowable
    ]
    with chain.manual_mining():
        # one sender: its transactions run in nonce order, supplies before borrows
        chain.execute(supply + borrow, timestamp=chain.latest_timestamp() + BLOCK_TIME)
        chain.mine(chain.latest_timestamp() + seconds)
        return chain.execute(touch, timestamp=chain.latest_timestamp() + BLOCK_TIME).block
