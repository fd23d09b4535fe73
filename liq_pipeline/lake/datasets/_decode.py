"""Shared decoding helpers: one eth_call answer into values, or a DatasetError naming the dataset, block, address."""

from __future__ import annotations

import json
from typing import Any

from eth_abi.exceptions import DecodingError

from ...chain.abi import Function
from ...chain.rpc import RpcError
from ..errors import DatasetError


def decode_call(fn: Function, answer: Any, *, dataset: str, block: int, address: str, what: str) -> tuple:
    if isinstance(answer, RpcError):
        raise DatasetError(dataset, f"{what} failed: {answer}", block=block, address=address)
    if not isinstance(answer, str):
        raise DatasetError(dataset, f"{what} returned {answer!r} instead of hex data", block=block, address=address)
    try:
        return fn.decode(answer)
    except (DecodingError, ValueError, OverflowError) as error:
        raise DatasetError(
            dataset, f"{what} returned undecodable data {answer[:74]!r}: {error}", block=block, address=address
        ) from None


def event_args(raw: str) -> dict[str, Any]:
    """chain.events stores each event's fields as JSON with integers above 2^53 as strings."""
    return json.loads(raw)


def as_int(value: Any) -> int:
    return int(value)
