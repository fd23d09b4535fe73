"""pack_maps gives, row for row, the bytes msgpack's own packer gives for the row as a dict."""

from __future__ import annotations

import numpy as np
import pytest

from liq_pipeline.cache.codec import details_packer, unpack
from liq_pipeline.cache.columnar_msgpack import pack_maps

EDGES = [
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**63 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
]


def _rows_packed(columns):
    packer = details_packer()
    names = list(columns)
    n = len(next(iter(columns.values())))
    as_python = {k: (v.tolist() if isinstance(v, np.ndarray) else list(v)) for k, v in columns.items()}
    return [packer.pack({k: as_python[k][i] for k in names}) for i in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_same_bytes_as_packing_each_row(seed):
    rng = np.random.default_rng(seed)
    n = 400
    ints = rng.choice(np.array(EDGES, np.int64), n)
    floats = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, n)
    floats[rng.random(n) < 0.1] = np.nan
    floats[rng.random(n) < 0.05] = np.inf
    floats[rng.random(n) < 0.05] = -np.inf
    words = ["", "a", "x" * 31, "y" * 32, "z" * 255, "w" * 256, "0xAbC" + "d" * 37, "é€", "ünï" * 20]
    columns = {
        "user": [words[i] for i in rng.integers(0, len(words), n)],
        "block": rng.integers(0, 2**40, n),
        "hf": floats,
        "small": rng.integers(-40, 200, n).astype(np.int32),
        "flag": rng.random(n) < 0.5,
        "edge": ints,
        "unsigned": rng.choice(np.array([0, 127, 128, 2**32, 2**64 - 1], np.uint64), n),
        "single": rng.normal(size=n).astype(np.float32),
        "k" * 40: np.zeros(n),  # a key past fixstr
    }
    packed = pack_maps(columns)
    assert packed == _rows_packed(columns)
    assert unpack(packed[0])["block"] == int(columns["block"][0])


def test_many_columns_and_no_rows():
    columns = {f"c{i}": np.arange(3) * i for i in range(20)}  # a map16 header
    assert pack_maps(columns) == _rows_packed(columns)
    assert pack_maps({"a": np.zeros(0), "b": []}) == []


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        pack_maps({"a": np.zeros(2), "b": np.zeros(3)})


def test_many_columns_of_many_widths_group_without_overflow():
    rng = np.random.default_rng(7)
    n = 300
    columns = {f"s{i}": ["v" * int(k) for k in rng.integers(0, 300, n)] for i in range(12)}  # ~200 lengths each
    columns["i"] = rng.choice(np.array(EDGES, np.int64), n)
    assert pack_maps(columns) == _rows_packed(columns)
