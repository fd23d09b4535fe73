"""Writing helpers only V3.6 needs: a reserve's liquidation grace period, and L2Pool's compact liquidationCall.

Prices move with the shared `actions.set_price(rpc, deployment.market, symbol, price)` (DevnetAggregator), and
`actions.account_data` reads getUserAccountData as on V3.0. Each helper mines its own block and checks it.
"""

from __future__ import annotations

from ..abi import call_data
from ..accounts import GAS_MONEY, LIQUIDATOR
from ..actions import MAX_UINT, LiquidationEvent, liquidation_events
from ..anvil import BLOCK_TIME
from ..errors import DevnetError
from ..rpc import Rpc
from ..txs import CALL_GAS, Chain, Executed, Tx
from .deploy import Deployment, eth_call


def set_liquidation_grace_period(rpc: Rpc, deployment: Deployment, symbol: str, seconds: int) -> int:
    """PoolConfigurator.setReservePause(asset, false, seconds): no liquidation with this reserve as collateral
    or debt until block.timestamp + seconds (at most MAX_GRACE_PERIOD, 4 h). Returns that timestamp."""
    market = deployment.market
    asset = market.by_symbol[symbol].asset
    tx = Tx(
        market.admin,
        market.pool_configurator,
        call_data("setReservePause(address,bool,uint40)", asset, False, seconds),
        label=f"grace period {symbol}",
    )
    chain = Chain(rpc)
    with chain.manual_mining():
        chain.execute([tx], timestamp=chain.latest_timestamp() + BLOCK_TIME)
    return liquidation_grace_period(rpc, deployment, symbol)


def liquidation_grace_period(rpc: Rpc, deployment: Deployment, symbol: str, block: int | str = "latest") -> int:
    """Pool.getLiquidationGracePeriod: the timestamp until which the reserve cannot be liquidated."""
    market = deployment.market
    asset = market.by_symbol[symbol].asset
    return eth_call(rpc, market.pool, "getLiquidationGracePeriod(address)", ["uint40"], asset, block=block)[0]


def encode_liquidation(
    rpc: Rpc,
    deployment: Deployment,
    collateral: str,
    debt: str,
    user: str,
    debt_to_cover: int = MAX_UINT,
    receive_a_token: bool = False,
) -> tuple[bytes, bytes]:
    """L2Encoder.encodeLiquidationCall: (args1, args2) for L2Pool.liquidationCall(bytes32, bytes32)."""
    reserves = deployment.market.by_symbol
    return eth_call(
        rpc,
        deployment.l2_encoder,
        "encodeLiquidationCall(address,address,address,uint256,bool)",
        ["bytes32", "bytes32"],
        reserves[collateral].asset,
        reserves[debt].asset,
        user,
        debt_to_cover,
        receive_a_token,
    )


def liquidate_l2(
    rpc: Rpc,
    deployment: Deployment,
    user: str,
    collateral: str,
    debt: str,
    *,
    debt_to_cover: int = MAX_UINT,
    liquidator: str = LIQUIDATOR,
    allow_revert: bool = False,
) -> tuple[Executed, list[LiquidationEvent]]:
    """Fund the liquidator with the debt asset, approve, and liquidate through L2Pool's compact entry point, in
    one block. Raises TxFailed when the Pool refuses, unless allow_revert (then `executed.ok[-1]` says)."""
    market = deployment.market
    reserves = market.by_symbol
    args1, args2 = encode_liquidation(rpc, deployment, collateral, debt, user, debt_to_cover)
    (owed,) = eth_call(rpc, reserves[debt].variable_debt_token, "balanceOf(address)", ["uint256"], user)
    funds = owed * 2 + 1 if debt_to_cover == MAX_UINT else debt_to_cover
    asset = reserves[debt].asset
    txs = [
        Tx(liquidator, asset, call_data("mint(address,uint256)", liquidator, funds), label=f"mint {debt}"),
        Tx(liquidator, asset, call_data("approve(address,uint256)", market.pool, MAX_UINT), label=f"approve {debt}"),
        Tx(
            liquidator,
            market.pool,
            call_data("liquidationCall(bytes32,bytes32)", args1, args2),
            gas=CALL_GAS,
            label=f"L2 liquidationCall {user}",
        ),
    ]
    chain = Chain(rpc)
    chain.set_balances([liquidator], GAS_MONEY)
    with chain.manual_mining():
        done = chain.execute(txs, timestamp=chain.latest_timestamp() + BLOCK_TIME, allow_revert=allow_revert)
    events = liquidation_events(done.logs, market.pool)
    if done.ok[-1] and len(events) != 1:
        raise DevnetError(f"liquidation of {user} emitted {len(events)} LiquidationCall events")
    return done, events
