"""What the lake knows about a dataset: its schema, its unique key, the column that places a row in a block range.

Schemas are the in-memory ones the rest of the code uses (Int128 for token amounts, indices and prices, exact like
the chain). On disk Int128 becomes Decimal(38, 0): polars writes Int128 as a 128-bit integer type that pyarrow,
DuckDB and Spark cannot read, and a lake is for every reader. 38 digits hold every amount seen on Aave (scaled
balances reach 1e30, ray indices 1e27); a larger value fails the write loudly instead of being truncated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

STORED_INT128 = pl.Decimal(38, 0)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    schema: Mapping[str, pl.DataType]
    key: tuple[str, ...]  # unique per row; files are sorted by it (then by the other columns)
    block_column: str = "block_number"

    def __post_init__(self) -> None:
        missing = [c for c in (*self.key, self.block_column) if c not in self.schema]
        if missing:
            raise ValueError(f"dataset {self.name}: key/block columns {missing} are not in its schema")

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=dict(self.schema))

    def stored_schema(self) -> dict[str, pl.DataType]:
        return {name: STORED_INT128 if dtype == pl.Int128 else dtype for name, dtype in self.schema.items()}

    def to_storage(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.cast({n: STORED_INT128 for n, t in self.schema.items() if t == pl.Int128}, strict=True)

    def from_storage(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.cast({n: pl.Int128 for n, t in self.schema.items() if t == pl.Int128}, strict=True)
