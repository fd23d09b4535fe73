"""Errors of the lake. Every message names what to look at: the dataset, the key or file, the block, the address."""

from __future__ import annotations

import re

from eth_utils import to_checksum_address

_BLOCK = re.compile(r"block (\d+)")
_ADDRESS = re.compile(r"(?<![0-9a-zA-Z])0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")  # not a prefix of a tx hash


class LakeError(RuntimeError):
    """Base class: something in the lake (or what was about to be written to it) is wrong."""


class PartitionKeyError(LakeError, ValueError):
    """A string that is not a block-range key of this lake's range size."""


class SchemaMismatch(LakeError):
    """A frame does not have its dataset's schema, or breaks its key or range (nothing is written then)."""


class DatasetError(LakeError):
    """A chain answer for one block could not be used to build a dataset. Nothing was written for that range."""

    def __init__(self, dataset: str, detail: str, *, block: int | None = None, address: str | None = None):
        self.dataset = dataset
        self.block = block
        self.address = address
        where = ", ".join(part for part in (f"block {block}" if block is not None else "", address or "") if part)
        super().__init__(f"{dataset}: {detail}" + (f" [{where}]" if where else ""))

    @classmethod
    def wrap(cls, dataset: str, error: Exception, *, block: int | None = None) -> DatasetError:
        """From a chain.ReaderError, whose message names the block and the address (it has no fields for them)."""
        text = str(error)
        found_block = _BLOCK.search(text)
        found_address = _ADDRESS.search(text)
        return cls(
            dataset,
            text,
            block=int(found_block.group(1)) if found_block else block,
            address=to_checksum_address(found_address.group(0)) if found_address else None,
        )
