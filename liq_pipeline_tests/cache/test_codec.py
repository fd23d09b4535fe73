"""Encodings: Int128 through Arrow IPC (standard Arrow types, exact), msgpack with integers past 64 bits."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from liq_pipeline.cache.codec import COMPRESSIONS, frame_to_ipc, ipc_to_frame, pack, score_strings, unpack

I128 = st.integers(-(2**127), 2**127 - 1)


def test_polars_own_ipc_int128_is_not_standard_arrow():
    """Why codec.py exists: polars' IPC Int128 cannot be read by Arrow itself, and to_arrow() refuses it."""
    frame = pl.DataFrame({"x": pl.Series([10**30], dtype=pl.Int128)})
    with pytest.raises(Exception, match="_pli128"):
        frame.to_arrow()
    raw = frame.write_ipc_stream(None).getvalue()
    with pytest.raises(pa.ArrowNotImplementedError):
        ipc.open_stream(pa.py_buffer(raw)).read_all()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_1e30_values_round_trip_exactly_as_decimal128(compression):
    values = [10**30, -(10**30), 10**30 + 1, 123456789012345678901234567890123, 10**38 - 1, 0, None]
    frame = pl.DataFrame({"user": [f"u{i}" for i in range(len(values))], "coll_0": pl.Series(values, dtype=pl.Int128)})
    data = frame_to_ipc(frame, compression)
    back = ipc_to_frame(data)
    assert back.schema["coll_0"] == pl.Int128
    assert back["coll_0"].to_list() == values  # exact, not via float
    table = ipc.open_stream(pa.py_buffer(data)).read_all()  # any Arrow reader can read it
    assert table.schema.field("coll_0").type == pa.decimal128(38, 0)
    assert int(table.column("coll_0")[0].as_py()) == 10**30


def test_values_past_38_digits_use_the_hi_lo_struct():
    values = [2**127 - 1, -(2**127), 10**38, -1, 0, None]
    frame = pl.DataFrame({"x": pl.Series(values, dtype=pl.Int128), "u": pl.Series([2**128 - 1] * 6, dtype=pl.UInt128)})
    data = frame_to_ipc(frame)
    assert ipc.open_stream(pa.py_buffer(data)).read_all().schema.field("x").type == pa.struct(
        [("hi", pa.int64()), ("lo", pa.uint64())]
    )
    back = ipc_to_frame(data)
    assert_frame_equal(back, frame)
    assert back["x"].to_list() == values


@settings(max_examples=60, deadline=None)
@given(st.lists(I128, min_size=1, max_size=30), st.lists(st.integers(-(10**38) + 1, 10**38 - 1), min_size=1))
def test_any_int128_round_trips(wide, narrow):
    frame = pl.DataFrame({"wide": pl.Series(wide, dtype=pl.Int128)})
    assert ipc_to_frame(frame_to_ipc(frame))["wide"].to_list() == wide
    frame = pl.DataFrame({"narrow": pl.Series(narrow, dtype=pl.Int128)})
    assert ipc_to_frame(frame_to_ipc(frame))["narrow"].to_list() == narrow


def test_other_columns_and_an_empty_frame_survive():
    frame = pl.DataFrame(
        {"user": ["0xa", "0xb"], "emode": pl.Series([0, 2], dtype=pl.Int32), "on_0": [True, False], "f": [1.5, 2.0]}
    )
    assert_frame_equal(ipc_to_frame(frame_to_ipc(frame)), frame)
    empty = pl.DataFrame(schema={"user": pl.String, "coll_0": pl.Int128})
    assert_frame_equal(ipc_to_frame(frame_to_ipc(empty)), empty)


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="compression"):
        frame_to_ipc(pl.DataFrame({"a": [1]}), "gzip")


@given(st.recursive(st.none() | st.booleans() | I128 | st.floats(allow_nan=False) | st.text(), st.lists))
def test_msgpack_keeps_integers_past_64_bits(value):
    assert unpack(pack(value)) == value


def test_msgpack_ray_values_and_int_keys():
    reserves = {0: {"liquidity_index": 10**27 + 5, "rate": -(2**100)}, "tuple": (1, 2)}
    assert unpack(pack(reserves)) == {0: {"liquidity_index": 10**27 + 5, "rate": -(2**100)}, "tuple": [1, 2]}


def test_score_strings_parse_back_to_the_same_double():
    rng = np.random.default_rng(1)
    values = rng.normal(size=2_000) * 10.0 ** rng.integers(-20, 20, 2_000)
    values[:3] = [math.nan, math.inf, -math.inf]
    for scores in (values, pl.Series(values)):
        parsed = [float(text) for text in score_strings(scores)]
        assert parsed[:3] == [math.inf, math.inf, -math.inf]  # NaN: no ETA, scored last
        assert parsed[3:] == values[3:].tolist()
    assert score_strings(pl.Series([1.5, None])) == ["1.5", "inf"]
