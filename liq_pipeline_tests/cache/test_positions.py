"""The positions frame as one Arrow IPC value: exact Int128 round trip through Redis, block guard."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from polars.testing import assert_frame_equal

from liq_pipeline.cache import get_positions, positions_block, put_positions
from liq_pipeline.risk.synthetic import sample


@pytest.fixture(scope="module")
def positions() -> pl.DataFrame:
    frame = sample(2_000).positions
    # A whale leg of 1e30 base units and a negative sentinel: nothing may pass through a float.
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(10**30 + 7, pl.Int128)).otherwise("coll_0").alias("coll_0"),
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit(-(10**30), pl.Int128)).otherwise("debt_3").alias("debt_3"),
    )


@pytest.mark.parametrize("compression", ["lz4", "uncompressed", "zstd"])
def test_round_trip_through_redis_is_exact(make_cache, positions, compression):
    cache = make_cache(ipc_compression=compression)
    assert put_positions(cache, 1_000, positions) is True
    snapshot = get_positions(cache)
    assert snapshot is not None and snapshot.block == 1_000
    assert_frame_equal(snapshot.frame, positions)
    assert snapshot.frame["coll_0"][0] == 10**30 + 7 and snapshot.frame["debt_3"][1] == -(10**30)
    assert positions_block(cache) == 1_000
    # The stored value is plain Arrow IPC: readable without this package.
    raw = cache.client.hget(cache.keys.positions, "ipc")
    table = ipc.open_stream(pa.py_buffer(raw)).read_all()
    assert table.num_rows == positions.height and table.schema.field("coll_0").type == pa.decimal128(38, 0)


def test_one_key_and_an_older_block_is_skipped(cache, positions):
    put_positions(cache, 10, positions)
    assert put_positions(cache, 9, positions.head(3)) is False
    assert get_positions(cache).frame.height == positions.height
    assert put_positions(cache, 11, positions.head(3)) is True
    assert get_positions(cache).frame.height == 3
    assert cache.client.keys(cache.keys.key("positions*")) == [cache.keys.positions.encode()]


def test_nothing_stored_reads_none(cache):
    assert get_positions(cache) is None and positions_block(cache) is None
