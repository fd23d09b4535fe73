"""The contract's own answer: Pool.getUserAccountData for many users at one block, in batches.

What every engine result is checked against (`liq devnet verify`, the HF-agreement asset check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .abi import function
from .discovery import ReaderError
from .rpc import RpcClient, RpcError


@dataclass(frozen=True)
class ChainAccountData:
    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int


def user_account_data(rpc: RpcClient, pool: str, users: Sequence[str], block: int | str) -> dict[str, ChainAccountData]:
    fn = function("Pool", "getUserAccountData")
    answers = rpc.batch([fn.request(pool, user, block=block) for user in users], raise_on_error=False)
    out = {}
    for user, answer in zip(users, answers, strict=True):
        if isinstance(answer, RpcError):
            raise ReaderError(f"Pool.getUserAccountData({user}) failed at block {block}: {answer}")
        out[user] = ChainAccountData(*(int(v) for v in fn.decode(answer)))
    return out
