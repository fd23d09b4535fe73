"""known_users_before keeps what it read for the next range (lake/datasets/borrower_snapshots.py): the owners it
returns are those of a scan of every earlier file, whatever order the ranges are asked in, and a hole is still
refused once earlier ranges were read."""

from __future__ import annotations

import random

import polars as pl
import pytest

from liq_pipeline.chain.events import borrowers_from_events
from liq_pipeline.lake.datasets import borrower_snapshots
from liq_pipeline.lake.datasets import pool_events as pe
from liq_pipeline.lake.datasets.borrower_snapshots import known_users_before
from liq_pipeline.lake.errors import LakeError
from liq_pipeline.lake.partitions import BlockRange
from liq_pipeline.lake.store import Lake

SIZE = 10
ZERO = "0x" + "00" * 20


def _events(start: int, rng: random.Random) -> pl.DataFrame:
    rows = rng.randrange(0, 6)
    users = [rng.choice([ZERO, None, *(f"0x{rng.randrange(40):040x}" for _ in range(3))]) for _ in range(rows)]
    return pl.DataFrame(
        {
            "block_number": [start + rng.randrange(SIZE) for _ in range(rows)],
            "log_index": list(range(rows)),
            "tx_hash": ["0x"] * rows,
            "address": ["0xpool"] * rows,
            "event": ["Borrow"] * rows,
            "user": users,
            "reserve": ["0xr"] * rows,
            "args": ["{}"] * rows,
            "block_timestamp": [0] * rows,
        },
        schema=pe.SCHEMA,
    )


def _truth(lake: Lake, block: int, first: int) -> list[str]:
    """A scan of every file, not the code under test."""
    return borrowers_from_events(lake.scan(pe.NAME, first, block - 1).select("user").collect())


@pytest.fixture(autouse=True)
def _empty_cache():
    borrower_snapshots._KNOWN.clear()
    yield
    borrower_snapshots._KNOWN.clear()


@pytest.mark.parametrize("first", [0, 7])
def test_the_owners_are_those_of_every_earlier_file_in_any_order_of_ranges(tmp_path, first):
    rng = random.Random(first)
    lake = Lake(tmp_path, SIZE, {pe.NAME: pe.SPEC})
    for k in range(30):
        lake.write(pe.NAME, BlockRange(k * SIZE, k * SIZE + SIZE - 1), _events(k * SIZE, rng))
    blocks = [k * SIZE for k in range(1, 31)] + [first + 1, 155, 40, 300, 300, 120, 295]
    for block in blocks:
        assert known_users_before(lake, block, first) == _truth(lake, block, first), block
    assert borrower_snapshots._KNOWN[(str(lake.root), SIZE, first)][0] == 300  # read up to the latest asked


def test_a_hole_is_refused_after_the_ranges_around_it_were_read(tmp_path):
    rng = random.Random(3)
    lake = Lake(tmp_path, SIZE, {pe.NAME: pe.SPEC})
    for k in range(5):
        lake.write(pe.NAME, BlockRange(k * SIZE, k * SIZE + SIZE - 1), _events(k * SIZE, rng))
    assert known_users_before(lake, 50) == _truth(lake, 50, 0)
    lake.delete(pe.NAME, BlockRange(20, 29))
    with pytest.raises(LakeError, match=r"cannot know the borrowers before block 50: pool_events: 1 range\(s\)"):
        known_users_before(lake, 50)
    with pytest.raises(LakeError, match=r"not materialized: 000000000020-000000000029"):
        known_users_before(lake, 40)
