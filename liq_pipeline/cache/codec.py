"""Value encodings: msgpack for small values, Arrow IPC for frames.

msgpack: integers beyond 64 bits (ray-scaled indices are ~1e27) do not fit its int types; they travel as an
extension type (code 1, signed big-endian two's complement) and come back as Python ints, exactly.

Arrow IPC: polars writes its Int128 with a 128-bit Arrow Int that Arrow itself (pyarrow, DuckDB, ...) cannot read
("Integers with more than 64 bits not implemented"), and `DataFrame.to_arrow()` refuses Int128 outright. So 128-bit
integer columns are stored in standard Arrow types and restored on read:
- decimal128(38, 0) when every value has at most 38 digits (any realistic token amount: 1e38 wei = 1e20 ETH);
- else a struct {hi: int64|uint64, lo: uint64} (the full Int128/UInt128 range, exactly).
polars' cast to Decimal(38, 0) fails on overflow instead of wrapping, which is what picks the fallback.
The schema metadata key `liq.columns` records the original dtype and encoding per column.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

_BIGINT_EXT = 1
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_TWO64 = 2**64
META_KEY = b"liq.columns"
CODEC_VERSION = "arrow-ipc-stream/1"
COMPRESSIONS = ("lz4", "zstd", "uncompressed")


# --- msgpack ---------------------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, int) and not (_INT64_MIN <= value <= _UINT64_MAX):
        length = (value.bit_length() + 8) // 8  # + sign bit
        return msgpack.ExtType(_BIGINT_EXT, value.to_bytes(length, "big", signed=True))
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"cannot msgpack a {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _BIGINT_EXT:
        return int.from_bytes(data, "big", signed=True)
    return msgpack.ExtType(code, data)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, default=_default, use_bin_type=True)


def details_packer() -> msgpack.Packer:
    """A packer producing exactly what pack() does, for packing many values in a row."""
    return msgpack.Packer(default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    # strict_map_key=False: reserve ids and other int keys are allowed as map keys.
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def score_strings(values: pl.Series | np.ndarray) -> list[str]:
    """ZSET scores as strings Redis parses back to the same double (Python's shortest round-trip repr); NaN and
    null become inf. A few hundred values per call on the watcher's path: repr beats a polars cast's overhead."""
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64).fill_null(math.nan).to_numpy()
    floats = np.where(np.isnan(values), math.inf, values).tolist()
    return list(map(repr, floats))


# --- Arrow IPC ---------------------------------------------------------------------------------------------------
def _wide_int_exprs(frame: pl.DataFrame) -> tuple[list[pl.Expr], dict[str, dict[str, str]]]:
    exprs: list[pl.Expr] = []
    layout: dict[str, dict[str, str]] = {}
    for name, dtype in frame.schema.items():
        if dtype not in (pl.Int128, pl.UInt128):
            continue
        column = frame.get_column(name)
        try:
            column.cast(pl.Decimal(38, 0))  # strict: raises when a value needs more than 38 digits
            exprs.append(pl.col(name).cast(pl.Decimal(38, 0)))
            encoding = "decimal128"
        except pl.exceptions.InvalidOperationError:
            two64 = pl.lit(_TWO64, dtype=dtype)
            hi_type = pl.Int64 if dtype == pl.Int128 else pl.UInt64
            exprs.append(
                pl.struct(
                    (pl.col(name) // two64).cast(hi_type).alias("hi"),
                    (pl.col(name) % two64).cast(pl.UInt64).alias("lo"),
                ).alias(name)
            )
            encoding = "hi_lo"
        layout[name] = {"dtype": str(dtype), "encoding": encoding}
    return exprs, layout


def frame_to_ipc(frame: pl.DataFrame, compression: str = "lz4") -> bytes:
    """A polars frame as one Arrow IPC stream, readable by any Arrow reader; 128-bit ints as described above."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    exprs, layout = _wide_int_exprs(frame)
    table = (frame.with_columns(exprs) if exprs else frame).to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(layout).encode()})
    sink = pa.BufferOutputStream()
    # pyarrow's writer: faster than polars' here (100k x 32 columns: 5 vs 38 ms uncompressed, 20 vs 32 ms lz4).
    options = ipc.IpcWriteOptions(compression=None if compression == "uncompressed" else compression)
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_frame(data: bytes) -> pl.DataFrame:
    table = ipc.open_stream(pa.py_buffer(data)).read_all()
    layout = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    exprs = []
    for name, spec in layout.items():
        dtype = pl.Int128 if spec["dtype"] == "Int128" else pl.UInt128
        if spec["encoding"] == "decimal128":
            exprs.append(pl.col(name).cast(dtype))
        else:
            two64 = pl.lit(_TWO64, dtype=dtype)
            field = pl.col(name).struct.field
            exprs.append((field("hi").cast(dtype) * two64 + field("lo").cast(dtype)).alias(name))
    return frame.with_columns(exprs) if exprs else frame
