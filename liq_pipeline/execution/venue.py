"""Where the executor acts, read from the chain: the `Venue` of a market, its Liquidator and a Uniswap V2 factory.

- pairs: the factory's `getPair` for every two reserves (one batch), then each pair's `token0()` (one batch): the
  key is (reserve id of token0, reserve id of token1), as the executor reads `getReserves`;
- the flash-loan premium: the Pool's `FLASHLOAN_PREMIUM_TOTAL()`;
- compact calls (an L2Pool, Base): EXECUTION_COMPACT_CALLS, or `auto`: the Pool is asked the L2Pool's compact
  `liquidationCall(bytes32,bytes32)` with zero arguments. An L2Pool runs it and reverts with a reason (user 0 is not
  liquidatable); a plain Pool has no such function and reverts without data;
- the native token's price: the WETH reserve (by symbol).

A missing piece (no code at the factory or the Liquidator, no pair at all, no WETH reserve) is a `VenueError`, one
line naming what to set.
"""

from __future__ import annotations

from itertools import combinations

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from ..chain.discovery import Market
from ..chain.rpc import RpcClient, RpcError
from .executor import Venue

GET_PAIR = keccak(text="getPair(address,address)")[:4]
TOKEN0 = "0x" + keccak(text="token0()")[:4].hex()
FLASHLOAN_PREMIUM_TOTAL = "0x" + keccak(text="FLASHLOAN_PREMIUM_TOTAL()")[:4].hex()
L2_LIQUIDATION_CALL = "0x" + keccak(text="liquidationCall(bytes32,bytes32)")[:4].hex()
NATIVE_SYMBOL = "WETH"


class VenueError(ValueError):
    """The venue cannot be built from the chain; the message is one line for the user."""


def _no_code(rpc: RpcClient, address: str) -> bool:
    return rpc.call("eth_getCode", address, "latest") in ("0x", "", None)


def read_pairs(rpc: RpcClient, market: Market, factory: str) -> dict[tuple[int, int], str]:
    """(reserve id of token0, reserve id of token1) -> pair, for every two reserves the factory has a pair of."""
    by_asset = {r.asset.lower(): r.reserve_id for r in market.reserves}
    twos = list(combinations(market.reserves, 2))
    data = ["0x" + (GET_PAIR + encode(["address", "address"], [a.asset, b.asset])).hex() for a, b in twos]
    answers = rpc.batch([("eth_call", [{"to": factory, "data": d}, "latest"]) for d in data], raise_on_error=False)
    found = []  # (reserve, reserve, pair)
    for (a, b), answer in zip(twos, answers, strict=True):
        if not isinstance(answer, str) or len(answer) < 66:  # a revert: not a factory
            continue
        (pair,) = decode(["address"], bytes.fromhex(answer[2:66]))
        if int(pair, 16):
            found.append((a, b, to_checksum_address(pair)))
    if not found:
        return {}
    firsts = rpc.batch(
        [("eth_call", [{"to": pair, "data": TOKEN0}, "latest"]) for _, _, pair in found], raise_on_error=False
    )
    pairs = {}
    for (a, b, pair), answer in zip(found, firsts, strict=True):
        if not isinstance(answer, str) or len(answer) < 42:
            continue
        token0 = ("0x" + answer[-40:]).lower()
        one, other = (a, b) if a.asset.lower() == token0 else (b, a)
        if one.asset.lower() != token0:
            continue  # not a pair of these two tokens (a factory that is not Uniswap V2's)
        pairs[(by_asset[one.asset.lower()], by_asset[other.asset.lower()])] = pair
    return pairs


def is_l2_pool(rpc: RpcClient, pool: str) -> bool:
    """The Pool answers the L2Pool's compact liquidationCall: it runs (and reverts with a reason, user 0 having no
    debt) or succeeds; a Pool without it reverts without data (no function, no fallback)."""
    try:
        rpc.call("eth_call", {"to": pool, "data": L2_LIQUIDATION_CALL + "00" * 64}, "latest")
    except RpcError as error:
        data = error.data
        if isinstance(data, dict):  # some nodes nest it
            data = data.get("data")
        return isinstance(data, str) and len(data) > 2
    return True


def compact_calls(rpc: RpcClient, pool: str, setting: str) -> bool:
    if setting in ("true", "false"):
        return setting == "true"
    return is_l2_pool(rpc, pool)


def venue_from_chain(
    rpc: RpcClient,
    market: Market,
    liquidator: str,
    operator: str,
    dex_factory: str,
    *,
    inventory: bool,
    compact: str = "auto",
) -> Venue:
    if _no_code(rpc, liquidator):
        raise VenueError(f"EXECUTOR_LIQUIDATOR={liquidator}: no contract there on this chain (deploy the Liquidator)")
    if _no_code(rpc, dex_factory):
        raise VenueError(f"EXECUTION_DEX_FACTORY={dex_factory}: no contract there on this chain")
    pairs = read_pairs(rpc, market, dex_factory)
    if not pairs:
        raise VenueError(
            f"EXECUTION_DEX_FACTORY={dex_factory}: no pair of two of the market's reserves: "
            "expected a Uniswap V2-compatible factory"
        )
    weth = [r for r in market.reserves if r.symbol.upper() == NATIVE_SYMBOL]
    if not weth:
        raise VenueError(f"the market has no {NATIVE_SYMBOL} reserve: the native token's price is unknown")
    premium = int(rpc.call("eth_call", {"to": market.pool, "data": FLASHLOAN_PREMIUM_TOTAL}, "latest"), 16)
    return Venue(
        liquidator=to_checksum_address(liquidator),
        operator=to_checksum_address(operator),
        pairs=pairs,
        compact=compact_calls(rpc, market.pool, compact),
        flash_premium_bps=premium,
        eth_reserve_id=weth[0].reserve_id,
        inventory=inventory,
    )
