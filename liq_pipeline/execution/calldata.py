"""The calldata of one `liquidationCall`, ready to sign: the Pool's standard ABI call, or the L2Pool's compact one.

- Standard (every Aave V3 Pool): `liquidationCall(address collateralAsset, address debtAsset, address user,
  uint256 debtToCover, bool receiveAToken)`, ABI-encoded with eth-abi (as chain/abi.py does).
- Compact (L2Pool, Base): `liquidationCall(bytes32 args1, bytes32 args2)`, packed as aave-v3-origin's
  `helpers/L2Encoder.sol` `encodeLiquidationCall` packs it and `CalldataLogic.decodeLiquidationCallParams` unpacks:
  args1 = collateral reserve id (16 bits) | debt reserve id << 16 | user << 32;
  args2 = debtToCover as uint128 | receiveAToken << 128, where type(uint256).max is sent as type(uint128).max and
  any other amount goes through SafeCast.toUint128 (above uint128 max the encoder reverts; here: ValueError).
  The decoder reads uint128 max back as uint256 max, so an explicit amount of exactly 2^128 - 1 means "all".
"""

from __future__ import annotations

import re
from functools import cache

from eth_abi import encode
from eth_utils import keccak

from ..risk.profit import LiquidationPlan
from ..risk.wadray import UINT256_MAX

UINT128_MAX = 2**128 - 1
UINT16_MAX = 2**16 - 1
STANDARD_SIGNATURE = "liquidationCall(address,address,address,uint256,bool)"
COMPACT_SIGNATURE = "liquidationCall(bytes32,bytes32)"
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


@cache
def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _address(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise ValueError(f"{what} must be a 0x-prefixed 20-byte hex address, got {value!r}")
    return value.lower()


def _uint256(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT256_MAX:
        raise ValueError(f"debt_to_cover must be a uint256, got {value!r}")
    return value


def standard_calldata(
    collateral_asset: str, debt_asset: str, user: str, debt_to_cover: int, receive_a_token: bool = False
) -> bytes:
    """Pool.liquidationCall(address,address,address,uint256,bool) calldata."""
    args = [
        _address(collateral_asset, "collateral_asset"),
        _address(debt_asset, "debt_asset"),
        _address(user, "user"),
        _uint256(debt_to_cover),
        bool(receive_a_token),
    ]
    return selector(STANDARD_SIGNATURE) + encode(["address", "address", "address", "uint256", "bool"], args)


def encode_liquidation_args(
    collateral_id: int, debt_id: int, user: str, debt_to_cover: int, receive_a_token: bool = False
) -> tuple[bytes, bytes]:
    """(args1, args2) exactly as L2Encoder.encodeLiquidationCall answers them for these reserve ids."""
    for what, value in (("collateral_id", collateral_id), ("debt_id", debt_id)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT16_MAX:
            raise ValueError(f"{what} must be a uint16 reserve id, got {value!r}")
    amount = _uint256(debt_to_cover)
    if amount == UINT256_MAX:
        short = UINT128_MAX
    elif amount > UINT128_MAX:
        raise ValueError(f"debt_to_cover {amount} does not fit the compact call's uint128 (SafeCast would revert)")
    else:
        short = amount
    args1 = collateral_id | debt_id << 16 | int(_address(user, "user"), 16) << 32
    args2 = short | int(bool(receive_a_token)) << 128
    return args1.to_bytes(32, "big"), args2.to_bytes(32, "big")


def compact_calldata(
    collateral_id: int, debt_id: int, user: str, debt_to_cover: int, receive_a_token: bool = False
) -> bytes:
    """L2Pool.liquidationCall(bytes32,bytes32) calldata: 4 + 64 bytes (the standard call is 4 + 160)."""
    args1, args2 = encode_liquidation_args(collateral_id, debt_id, user, debt_to_cover, receive_a_token)
    return selector(COMPACT_SIGNATURE) + args1 + args2


def plan_calldata(plan: LiquidationPlan, *, compact: bool, receive_a_token: bool = False) -> bytes:
    """The liquidationCall of a plan (risk.profit), compact where the Pool is an L2Pool."""
    if compact:
        return compact_calldata(plan.collateral_id, plan.debt_id, plan.user, plan.debt_to_cover, receive_a_token)
    return standard_calldata(plan.collateral_asset, plan.debt_asset, plan.user, plan.debt_to_cover, receive_a_token)
