"""The project's liquidator contract (liq_pipeline/contracts/Liquidator.sol) on the devnet: compile, deploy for an
operator, and the transactions that drive it.

Modes (the contract's notes say more):
- flash loan: `liquidateWithFlashLoan(order, flashAmount)`: Pool.flashLoanSimple of the debt asset, then in
  executeOperation the liquidationCall (standard, or the L2Pool's compact one when `args1` is set), all the seized
  collateral sold on the order's Uniswap V2 pair, the loan + premium repaid; the profit stays in the contract.
- inventory: `liquidateFromInventory(order)`: the contract's own debt-asset tokens repay; the collateral (or its
  aTokens with receiveAToken) stays in the contract, or is sold when the order names a pair.
Both revert with ProfitTooLow unless the profit (debt-asset units) is >= `order.min_profit`; only the operator may
call them or `withdraw(token, amount)`. The devnet's operator is accounts.LIQUIDATOR (impersonated: no key).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from ..chain.liquidator_abi import (
    ZERO_ADDRESS,
    ZERO_WORD,
    Order,
    flash_calldata,
    inventory_calldata,
)
from ..chain.liquidator_abi import liquidated_events as liquidated_events  # the devnet's tests read events here
from .abi import call_data, constructor_data, create_address, decode_result
from .accounts import GAS_MONEY, LIQUIDATOR
from .actions import MAX_UINT, l2_liquidation_args
from .anvil import BLOCK_TIME
from .errors import DevnetError
from .market import Market
from .paths import devnet_dir, write_json
from .rpc import Rpc
from .solc import Compiled, compile_source
from .txs import CALL_GAS, CREATE_GAS, Chain, Tx

SOURCE = Path(__file__).resolve().parents[1] / "contracts" / "Liquidator.sol"
ERRORS = {  # selector -> name, for revert data
    "0x" + keccak(text=signature).hex()[:8]: signature.split("(")[0]
    for signature in (
        "NotOperator()",
        "NotPool()",
        "NotInitiator()",
        "ProfitTooLow(int256,int256)",
        "TokenCallFailed(address)",
        "FlashLoanNeedsUnderlying()",
    )
}


def compile_liquidator(data_dir: Path | str) -> Compiled:
    """Compiled with the npm solc, cached in <DATA_DIR>/devnet/build like the devnet's own contracts."""
    return compile_source(SOURCE, data_dir)


def order_for(
    market: Market,
    collateral: str,
    debt: str,
    user: str,
    *,
    debt_to_cover: int = MAX_UINT,
    receive_a_token: bool = False,
    pair: str | None = None,
    amount_out: int = 0,
    min_profit: int = 0,
    compact: bool | None = None,
) -> Order:
    """An Order by reserve symbols; `compact` (default: on V3.6, whose Pool is an L2Pool) fills the L2Pool's
    compact arguments so the contract calls liquidationCall(bytes32,bytes32)."""
    reserves = market.by_symbol
    if compact is None:
        compact = market.protocol_version != "3.0"
    args1 = args2 = ZERO_WORD
    if compact:
        args1, args2 = l2_liquidation_args(
            reserves[collateral].reserve_id, reserves[debt].reserve_id, user, debt_to_cover, receive_a_token
        )
    return Order(
        collateral=reserves[collateral].asset,
        debt=reserves[debt].asset,
        user=to_checksum_address(user),
        debt_to_cover=debt_to_cover,
        receive_a_token=receive_a_token,
        args1=args1,
        args2=args2,
        pair=pair or ZERO_ADDRESS,
        amount_out=amount_out,
        min_profit=min_profit,
    )


@dataclass(frozen=True)
class DeployedLiquidator:
    address: str
    operator: str
    pool: str
    block: int

    def flash_tx(self, order: Order, flash_amount: int, sender: str | None = None, gas: int = CALL_GAS) -> Tx:
        data = "0x" + flash_calldata(order, flash_amount).hex()
        return Tx(sender or self.operator, self.address, data, gas=gas, label=f"liquidator flash {order.user}")

    def inventory_tx(self, order: Order, sender: str | None = None, gas: int = CALL_GAS) -> Tx:
        data = "0x" + inventory_calldata(order).hex()
        return Tx(sender or self.operator, self.address, data, gas=gas, label=f"liquidator inventory {order.user}")

    def withdraw_tx(self, token: str, amount: int = MAX_UINT, sender: str | None = None) -> Tx:
        data = call_data("withdraw(address,uint256)", token, amount)
        return Tx(sender or self.operator, self.address, data, label="liquidator withdraw")


def deploy_liquidator(
    rpc: Rpc, market: Market, data_dir: Path | str, operator: str = LIQUIDATOR, *, enable_flash: bool = True
) -> DeployedLiquidator:
    """Deploy the contract for `operator` against the market's Pool, from the operator, in its own block; first
    (enable_flash) turn flash loans on for every reserve where they are off (the V3.6 market deploys without)."""
    compiled = compile_liquidator(data_dir)
    if enable_flash:
        enable_flash_loans(rpc, market)
    chain = Chain(rpc)
    chain.set_balances([operator], GAS_MONEY)
    chain.nonces.prefetch([operator])
    address = create_address(operator, chain.nonces.known[operator.lower()])
    code = constructor_data(compiled.bytecode, ["address", "address"], [market.pool, operator])
    with chain.manual_mining():
        done = chain.execute(
            [Tx(operator, None, code, gas=CREATE_GAS, label="deploy Liquidator")],
            timestamp=chain.latest_timestamp() + BLOCK_TIME,
        )
    if rpc.call("eth_getCode", address, "latest") in ("0x", ""):
        raise RuntimeError(f"the Liquidator was not created at {address}")
    return DeployedLiquidator(address, to_checksum_address(operator), to_checksum_address(market.pool), done.block)


def _inventory_units(reserve, usd: float) -> int:
    return int(usd * 10**8) * 10**reserve.decimals // reserve.initial_price


def fund_inventory(rpc: Rpc, market: Market, holder: str, usd: float) -> None:
    """Mint `usd` worth of every reserve's token (the devnet's test tokens) to `holder`, in one block: the
    Liquidator's inventory (inventory mode repays from it where a flash loan's swap would meet too shallow a pool)."""
    chain = Chain(rpc)
    txs = [
        Tx(
            market.admin,
            r.asset,
            call_data("mint(address,uint256)", holder, _inventory_units(r, usd)),
            label=f"inventory {r.symbol}",
        )
        for r in market.reserves
    ]
    with chain.manual_mining():
        chain.execute(txs, timestamp=chain.latest_timestamp() + 2)


def restock_txs(rpc: Rpc, market: Market, holder: str, usd: float) -> list[Tx]:
    """The mints that bring each reserve's token held by `holder` back to `usd` worth (one batch of balance reads):
    an operator's treasury refilling the Liquidator's inventory with what its kept collateral was sold for
    off-chain. Added to a simulated block, they land after that block's liquidations (lower fees)."""
    data = call_data("balanceOf(address)", holder)
    held = rpc.batch([("eth_call", [{"to": r.asset, "data": data}, "latest"]) for r in market.reserves])
    txs = []
    for reserve, answer in zip(market.reserves, held, strict=True):
        missing = _inventory_units(reserve, usd) - int(answer, 16)
        if missing > 0:
            data = call_data("mint(address,uint256)", holder, missing)
            txs.append(Tx(market.admin, reserve.asset, data, label=f"restock {reserve.symbol}"))
    return txs


# --- the devnet's executor venue (liquidator.json: what `liq execute` uses on the devnet) ---------------------


@dataclass(frozen=True)
class ExecutorVenue:
    """The Liquidator `make dev` deployed on the devnet and the DEX factory it sells on."""

    liquidator: str
    operator: str
    dex_factory: str
    block: int
    inventory: bool


def venue_json_path(data_dir: Path | str) -> Path:
    return devnet_dir(data_dir) / "liquidator.json"


def save_venue(data_dir: Path | str, venue: ExecutorVenue) -> Path:
    return write_json(venue_json_path(data_dir), asdict(venue))


def load_venue(data_dir: Path | str) -> ExecutorVenue:
    path = venue_json_path(data_dir)
    if not path.is_file():
        raise DevnetError(f"no Liquidator deployed on the devnet ({path} is missing): `make dev` deploys one")
    try:
        return ExecutorVenue(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise DevnetError(f"{path} is not a devnet Liquidator description ({error})") from None


# --- the Pool's flash-loan premium ---------------------------------------------------------------------------


def flash_premium_bps(rpc: Rpc, market: Market, block: int | str = "latest") -> int:
    tag = hex(block) if isinstance(block, int) else block
    answer = rpc.call("eth_call", {"to": market.pool, "data": call_data("FLASHLOAN_PREMIUM_TOTAL()")}, tag)
    return int(decode_result(["uint128"], answer)[0])


FLASHLOAN_ENABLED_BIT = 63  # ReserveConfiguration


def flash_loans_enabled(rpc: Rpc, market: Market, block: int | str = "latest") -> dict[str, bool]:
    """Per reserve symbol, the configuration's flash-loan bit."""
    tag = hex(block) if isinstance(block, int) else block
    calls = [
        ("eth_call", [{"to": market.pool, "data": call_data("getConfiguration(address)", r.asset)}, tag])
        for r in market.reserves
    ]
    answers = rpc.batch(calls)
    return {
        r.symbol: bool(int(answer, 16) >> FLASHLOAN_ENABLED_BIT & 1)
        for r, answer in zip(market.reserves, answers, strict=True)
    }


def enable_flash_loans(rpc: Rpc, market: Market) -> list[str]:
    """PoolConfigurator.setReserveFlashLoaning(asset, true) from the pool admin, in one block, for the reserves
    where flash loans are off. Returns their symbols (none: no block mined)."""
    off = [symbol for symbol, on in flash_loans_enabled(rpc, market).items() if not on]
    if off:
        chain = Chain(rpc)
        chain.set_balances([market.admin], GAS_MONEY)
        txs = [
            Tx(
                market.admin,
                market.pool_configurator,
                call_data("setReserveFlashLoaning(address,bool)", market.by_symbol[s].asset, True),
                label=f"flash loans on {s}",
            )
            for s in off
        ]
        with chain.manual_mining():
            chain.execute(txs, timestamp=chain.latest_timestamp() + BLOCK_TIME)
    return off


def set_flash_premium(rpc: Rpc, market: Market, premium_bps: int) -> None:
    """The pool admin sets the flash-loan premium (the devnet deploys with 0; Base charges 5 bps)."""
    signature = (
        "updateFlashloanPremiumTotal(uint128)"
        if market.protocol_version == "3.0"
        else ("updateFlashloanPremium(uint128)")
    )
    chain = Chain(rpc)
    chain.set_balances([market.admin], GAS_MONEY)
    tx = Tx(market.admin, market.pool_configurator, call_data(signature, premium_bps), label="flash premium")
    with chain.manual_mining():
        chain.execute([tx], timestamp=chain.latest_timestamp() + BLOCK_TIME)
