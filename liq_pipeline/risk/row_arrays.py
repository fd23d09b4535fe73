"""Row-aligned arrays (one value per position-book row) that grow in place as users are appended to the book.

The book only appends rows (risk/book.py), and on Base most blocks bring a newcomer or two, so an array kept from
block to block would be copied a row longer at almost every block. Allocated with spare rows past their end
(SPARE_ROWS_SHARE), such arrays are extended within their own buffer instead: the generated 1M-user watcher
(`liq bench-watch --synthetic`, ~15 new users a block) spent ~15 ms a block copying ~20 evaluation arrays of 1M
rows, and ~3 ms more in the candidate writer's six (profiled, 2026-12-07).
"""

from __future__ import annotations

import numpy as np

SPARE_ROWS_SHARE = 16  # spare rows: 1/16 of the rows (~6 % more memory for these arrays)


def with_spare_rows(n: int, fill, dtype=np.float64) -> np.ndarray:
    """`n` rows of `fill`, the start of a buffer with spare rows past them (see grown_in_place)."""
    return np.full(n + n // SPARE_ROWS_SHARE, fill, dtype)[:n]


def grown_in_place(values: np.ndarray, n: int, fill) -> np.ndarray | None:
    """`values` extended to `n` rows within its own buffer (made by with_spare_rows), the new rows set to `fill`;
    None when it is not the start of such a buffer or the buffer is too short."""
    base = values.base
    if (
        not isinstance(base, np.ndarray)
        or base.ndim != 1
        or base.dtype != values.dtype
        or base.size < n
        or values.ndim != 1
        or values.size > n
        or values.ctypes.data != base.ctypes.data
        or values.strides != base.strides
    ):
        return None
    out = base[:n]
    out[values.size :] = fill
    return out


def grown(values: np.ndarray, n: int, fill) -> np.ndarray:
    """`values` (row-aligned) as `n` rows, rows past its own set to `fill`: itself when it has `n` rows, grown in
    place when its buffer has the room, else a copy with spare rows (of its first `n` rows, if it has more)."""
    if values.size == n:
        return values
    out = grown_in_place(values, n, fill)
    if out is None:
        out = with_spare_rows(n, fill, values.dtype)
        kept = min(n, values.size)
        out[:kept] = values[:kept]
    return out


__all__ = ["SPARE_ROWS_SHARE", "grown", "grown_in_place", "with_spare_rows"]
