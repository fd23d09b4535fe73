"""Block-range partitions: fixed-size ranges aligned on multiples of the size, keyed `{start:012d}-{end:012d}`.

Twelve digits sort lexicographically in block order up to block 10^12 (Base makes 15.8M blocks a year), which is
what Dagster's DynamicPartitionsDefinition needs: it orders and displays keys as strings. A key is refused unless
it is exactly one range of the grid: a wrong size or a start off the grid would make two partitions overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import PartitionKeyError

DEFAULT_RANGE_SIZE = 1_000
KEY_FORMAT = "{start:012d}-{end:012d}"
_KEY = re.compile(r"^(\d{12})-(\d{12})$")


@dataclass(frozen=True, order=True)
class BlockRange:
    """Blocks start..end, both included."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise PartitionKeyError(f"not a block range: {self.start}..{self.end} (need 0 <= start <= end)")

    @property
    def key(self) -> str:
        return KEY_FORMAT.format(start=self.start, end=self.end)

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def blocks(self) -> range:
        return range(self.start, self.end + 1)

    def __contains__(self, block: object) -> bool:
        return isinstance(block, int) and self.start <= block <= self.end

    def __str__(self) -> str:
        return self.key


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"range size must be a positive integer, got {size!r}")


def range_of(block: int, size: int = DEFAULT_RANGE_SIZE) -> BlockRange:
    """The grid range holding `block`."""
    _check_size(size)
    if block < 0:
        raise ValueError(f"block numbers are >= 0, got {block}")
    start = block - block % size
    return BlockRange(start, start + size - 1)


def parse_key(key: str, size: int = DEFAULT_RANGE_SIZE) -> BlockRange:
    """The range a key names; PartitionKeyError (naming the key and the expected form) for anything else."""
    _check_size(size)
    expected = f"expected '{{start:012d}}-{{end:012d}}' with start a multiple of {size} and end = start + {size - 1}"
    match = _KEY.match(key) if isinstance(key, str) else None
    if match is None:
        example = range_of(12_000 if size <= 12_000 else size, size).key
        raise PartitionKeyError(f"{key!r} is not a block-range key: {expected}, e.g. {example!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise PartitionKeyError(f"{key!r} ends before it starts: {expected}")
    if start % size or end - start + 1 != size:
        raise PartitionKeyError(
            f"{key!r} covers {end - start + 1} blocks from {start}: {expected} (the nearest is {range_of(start, size)})"
        )
    return BlockRange(start, end)


def ranges_covering(first: int, last: int, size: int = DEFAULT_RANGE_SIZE) -> list[BlockRange]:
    """Every grid range that holds at least one block of [first, last], in order."""
    if last < first:
        return []
    return list(_iter_ranges(range_of(first, size).start, last, size))


def finished_ranges(
    head: int, confirmations: int, size: int = DEFAULT_RANGE_SIZE, first_block: int = 0
) -> list[BlockRange]:
    """Ranges from the one holding `first_block` whose LAST block is at least `confirmations` deep under `head`
    (head - end >= confirmations): their content will not change unless the chain reorganizes deeper than that."""
    _check_size(size)
    if confirmations < 0:
        raise ValueError(f"confirmations must be >= 0, got {confirmations}")
    final = head - confirmations  # the newest block considered final
    last_end = (final + 1) - (final + 1) % size - 1  # end of the newest range whose every block is <= final
    if last_end < first_block:
        return []
    return ranges_covering(first_block, last_end, size)


def _iter_ranges(start: int, last: int, size: int) -> Iterator[BlockRange]:
    for begin in range(start, last + 1, size):
        yield BlockRange(begin, begin + size - 1)
