"""Block timestamps, read in JSON-RPC batches of eth_getBlockByNumber (headers only)."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from ..chain.rpc import RpcClient, RpcError
from .errors import DatasetError

TIMESTAMP_SCHEMA = {"block_number": pl.Int64, "block_timestamp": pl.Int64}


def block_timestamps(rpc: RpcClient, blocks: Iterable[int], dataset: str) -> dict[int, int]:
    """{block: unix timestamp}. A block the node does not have (yet) or answers oddly stops the build."""
    numbers = sorted(set(blocks))
    answers = rpc.batch([("eth_getBlockByNumber", [hex(b), False]) for b in numbers], raise_on_error=False)
    out = {}
    for block, header in zip(numbers, answers, strict=True):
        if isinstance(header, RpcError):
            raise DatasetError(dataset, f"eth_getBlockByNumber failed: {header}", block=block)
        try:
            out[block] = int(header["timestamp"], 16)
        except (TypeError, KeyError, ValueError):
            shown = "no such block on the node" if header is None else f"an unreadable header {str(header)[:120]}"
            raise DatasetError(dataset, f"eth_getBlockByNumber returned {shown}", block=block) from None
    return out


def timestamps_frame(timestamps: dict[int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"block_number": list(timestamps), "block_timestamp": list(timestamps.values())}, schema=TIMESTAMP_SCHEMA
    )
