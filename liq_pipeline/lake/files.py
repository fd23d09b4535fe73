"""Parquet files (and reports, images) written atomically: a temp file in the same folder, then a rename.

A crash or a full disk mid-write leaves the previous file intact, never a half-written one. The temp file is
fsynced before the rename and the folder after it, so a power cut cannot leave a renamed but empty file either.
A process killed mid-write leaves only its hidden temp file (`.<name>.<random>.tmp`), which readers never list.

On object storage (`objects.ObjectPath`, the lake at an s3:// URL) the same writer serializes the frame to a local
temp file, whose bytes go up in one PUT of the whole object: atomic by the store's own rule, no temp object.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from .objects import ObjectPath

TEMP_SUFFIX = ".tmp"
FrameWriter = Callable[[pl.DataFrame, Path], None]
LakePath = Path | ObjectPath  # a local file, or an object of the lake on object storage


def _write(frame: pl.DataFrame, path: Path) -> None:
    # zstd + statistics: the polars defaults, spelled out because the bytes of a file must not change with them
    frame.write_parquet(path, compression="zstd", statistics=True)


def _fsync_dir(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems refuse to open a directory: the rename is still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_parquet_atomic(frame: pl.DataFrame, path: LakePath, *, writer: FrameWriter | None = None) -> LakePath:
    """Write `frame` to `path` so that readers see the old file or the new one, never a part. `writer` (tests,
    other formats) writes the frame to the temp path it is given."""
    if isinstance(path, ObjectPath):
        with tempfile.TemporaryDirectory(prefix="liq-lake-put-") as folder:
            temp = Path(folder) / path.name
            (writer or _write)(frame, temp)
            path.write_bytes(temp.read_bytes())
        return path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(handle)
    try:
        (writer or _write)(frame, Path(temp))
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes_atomic(path: LakePath, data: bytes) -> LakePath:
    """`data` to `path` as `write_parquet_atomic` writes a frame: the old file or the new one, never a part (the
    backtest's reports and plots)."""
    return write_parquet_atomic(pl.DataFrame(), path, writer=lambda _frame, temp: temp.write_bytes(data))
