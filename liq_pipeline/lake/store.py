"""The lake: one Parquet file per dataset per block range, named like cryo's, written atomically and idempotently.

    {root}/{dataset}/{dataset}__{start:012d}_to_{end:012d}.parquet

`root` is a local folder, or an `s3://bucket/prefix` URL: the same files as objects of an S3 API (objects.py says
how writes stay atomic and how the appenders' lock works there). `path()` is then an `objects.ObjectPath`, whose
`str()` is the object's URL and which answers the few `Path` methods callers use (`is_file`, `unlink`, `stat`).

A file exists only once its range was materialized completely (an empty range is an empty file, not a missing
one), so `missing()` is what a backfill still has to do. Rows are sorted by the dataset's key, then by every other
column, before writing: re-materializing a range from the same chain writes the same bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import polars as pl

from .errors import LakeError, SchemaMismatch
from .files import FrameWriter, LakePath, write_parquet_atomic
from .objects import LOCK_LEASE_S, ObjectLock, ObjectPath, S3Settings, is_url, object_root
from .partitions import BlockRange, parse_key, range_of, ranges_covering
from .spec import DatasetSpec

_FILE = re.compile(r"^(?P<dataset>[a-z0-9_]+?)__(?P<start>\d{12})_to_(?P<end>\d{12})\.parquet$")
_UNSORTABLE = (pl.List, pl.Array, pl.Struct, pl.Object)


def file_name(dataset: str, block_range: BlockRange) -> str:
    return f"{dataset}__{block_range.start:012d}_to_{block_range.end:012d}.parquet"


class Lake:
    def __init__(
        self,
        root: Path | str | ObjectPath,
        range_size: int,
        specs: Mapping[str, DatasetSpec],
        *,
        s3: S3Settings | None = None,
        lock_lease: float = LOCK_LEASE_S,
        lock_wait: float | None = None,
    ):
        """`root`: a folder, or `s3://bucket/prefix` (endpoint and credentials: `s3`, else the AWS variables).
        `lock_lease` / `lock_wait` (seconds): the object-storage lock's lease, and how long `lock()` waits for a
        live holder (default: the lease and 30 s more, so a dead holder's lock is always taken over first)."""
        range_of(0, range_size)  # validates the size
        self.root: Path | ObjectPath = (
            root if isinstance(root, ObjectPath) else object_root(root, s3) if is_url(root) else Path(root)
        )
        self.range_size = range_size
        self.specs = dict(specs)
        self.lock_lease = lock_lease
        self.lock_wait = lock_lease + 30.0 if lock_wait is None else lock_wait

    @property
    def on_object_store(self) -> bool:
        return isinstance(self.root, ObjectPath)

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r}, range_size={self.range_size})"

    # --- naming ------------------------------------------------------------------------------------------------

    def spec(self, dataset: str) -> DatasetSpec:
        try:
            return self.specs[dataset]
        except KeyError:
            raise LakeError(f"unknown dataset {dataset!r}: the lake holds {sorted(self.specs)}") from None

    def parse_key(self, key: str) -> BlockRange:
        """The range of a partition key (Dagster's), checked against this lake's range size."""
        return parse_key(key, self.range_size)

    def folder(self, dataset: str) -> LakePath:
        return self.root / self.spec(dataset).name

    def path(self, dataset: str, block_range: BlockRange) -> LakePath:
        self._check_grid(dataset, block_range)
        return self.folder(dataset) / file_name(dataset, block_range)

    def _check_grid(self, dataset: str, block_range: BlockRange) -> None:
        if range_of(block_range.start, self.range_size) != block_range:
            raise LakeError(
                f"{dataset}: {block_range} is not a range of this lake's grid of {self.range_size} blocks "
                f"(the range holding block {block_range.start} is {range_of(block_range.start, self.range_size)})"
            )

    # --- listing -----------------------------------------------------------------------------------------------

    def ranges(self, dataset: str) -> list[BlockRange]:
        """Ranges present, in block order. Hidden temp files of interrupted writes are not ranges."""
        folder = self.folder(dataset)
        if isinstance(folder, ObjectPath):
            children = folder.children()  # one LIST (paged): an absent prefix is simply empty
        elif folder.is_dir():
            children = list(folder.iterdir())
        else:
            return []
        found = []
        for path in children:
            match = _FILE.match(path.name)
            if match is None or match.group("dataset") != dataset:
                continue
            block_range = BlockRange(int(match.group("start")), int(match.group("end")))
            self._check_grid(dataset, block_range)  # a file of another range size would overlap the grid
            found.append(block_range)
        return sorted(found)

    def exists(self, dataset: str, block_range: BlockRange) -> bool:
        return self.path(dataset, block_range).is_file()

    def missing(self, dataset: str, first: int, last: int) -> list[BlockRange]:
        """Grid ranges holding a block of [first, last] that have no file yet (what a backfill must build)."""
        present = set(self.ranges(dataset))
        return [r for r in ranges_covering(first, last, self.range_size) if r not in present]

    def stale_temp_files(self, dataset: str) -> list[Path]:
        """Temp files left by writers killed mid-write (safe to delete when no writer runs). None on object storage:
        a PUT that does not complete leaves nothing."""
        folder = self.folder(dataset)
        if isinstance(folder, ObjectPath):
            return []
        return sorted(folder.glob(f".{dataset}__*.tmp")) if folder.is_dir() else []

    # --- writing -----------------------------------------------------------------------------------------------

    def conform(self, dataset: str, block_range: BlockRange, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame as it will be stored: schema checked exactly, rows inside the range, key unique, sorted."""
        spec = self.spec(dataset)
        expected = dict(spec.schema)
        actual = dict(frame.schema)
        if actual != expected:
            missing = [c for c in expected if c not in actual]
            extra = [c for c in actual if c not in expected]
            wrong = [
                f"{c}: {actual[c]} instead of {expected[c]}"
                for c in expected
                if c in actual and actual[c] != expected[c]
            ]
            raise SchemaMismatch(
                f"{dataset} {block_range}: frame does not match the dataset schema "
                f"(missing {missing}, extra {extra}, wrong types {wrong})"
            )
        frame = frame.select(list(expected))
        if frame.height:
            block = pl.col(spec.block_column)
            low, high = frame.select(block.min().alias("low"), block.max().alias("high")).row(0)
            if low is None or low < block_range.start or high > block_range.end:
                raise SchemaMismatch(
                    f"{dataset} {block_range}: rows with {spec.block_column} {low}..{high} fall outside the range"
                )
            duplicated = frame.select(pl.struct(list(spec.key)).is_duplicated().any()).item()
            if duplicated:
                raise SchemaMismatch(f"{dataset} {block_range}: several rows share a key {spec.key}")
        order = list(spec.key) + [
            c for c, t in expected.items() if c not in spec.key and not isinstance(t, _UNSORTABLE)
        ]
        return frame.sort(order, nulls_last=True, maintain_order=True)

    def write(
        self, dataset: str, block_range: BlockRange, frame: pl.DataFrame, *, writer: FrameWriter | None = None
    ) -> LakePath:
        """Store the whole range at once, replacing any previous file of it atomically."""
        path = self.path(dataset, block_range)
        stored = self.spec(dataset).to_storage(self.conform(dataset, block_range, frame))
        return write_parquet_atomic(stored, path, writer=writer)

    def delete(self, dataset: str, block_range: BlockRange) -> bool:
        """Remove a range's file (a rewind); whether there was one. Take `lock(dataset)` if an appender may run."""
        path = self.path(dataset, block_range)
        if not path.is_file():
            return False
        path.unlink(missing_ok=True)
        return True

    @contextlib.contextmanager
    def lock(self, dataset: str) -> Iterator[None]:
        """Exclusive lock for read-modify-write of a dataset's files (appenders): flock across processes on one
        host; on object storage a lease object created with a conditional PUT, across hosts (objects.py)."""
        folder = self.folder(dataset)
        if isinstance(folder, ObjectPath):
            with ObjectLock(folder / ".lock", lease=self.lock_lease, wait=self.lock_wait).held():
                yield
            return
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- reading -----------------------------------------------------------------------------------------------

    def read(self, dataset: str, block_range: BlockRange) -> pl.DataFrame:
        path = self.path(dataset, block_range)
        if not path.is_file():
            raise LakeError(f"{dataset}: range {block_range} is not in the lake ({path} does not exist)")
        frame = self._scan_files(dataset, [path])
        if isinstance(path, ObjectPath):
            try:
                return frame.collect()
            except (pl.exceptions.PolarsError, OSError) as error:
                raise path.bucket.error("GET (polars)", path.key, error) from None
        return frame.collect()

    def require_complete(self, dataset: str, first: int, last: int) -> None:
        """LakeError naming the missing ranges when a range holding a block of [first, last] has no file."""
        holes = self.missing(dataset, first, last)
        if holes:
            shown = ", ".join(r.key for r in holes[:5]) + (" ..." if len(holes) > 5 else "")
            raise LakeError(f"{dataset}: {len(holes)} range(s) of [{first}, {last}] not materialized: {shown}")

    def scan(
        self, dataset: str, first: int | None = None, last: int | None = None, *, complete: bool = False
    ) -> pl.LazyFrame:
        """The dataset's rows with blocks in [first, last] (either end open), over the files present.
        complete=True refuses when a range of [first, last] is missing, instead of reading around the hole."""
        spec = self.spec(dataset)
        chosen = [
            r for r in self.ranges(dataset) if (first is None or r.end >= first) and (last is None or r.start <= last)
        ]
        if complete:
            low = first if first is not None else (chosen[0].start if chosen else 0)
            high = last if last is not None else (chosen[-1].end if chosen else -1)
            self.require_complete(dataset, low, high)
        frame = self._scan_files(dataset, [self.path(dataset, r) for r in chosen])
        block = pl.col(spec.block_column)
        if first is not None:
            frame = frame.filter(block >= first)
        if last is not None:
            frame = frame.filter(block <= last)
        return frame

    def _scan_files(self, dataset: str, paths: Iterable[LakePath]) -> pl.LazyFrame:
        spec = self.spec(dataset)
        paths = [str(p) for p in paths]
        if not paths:
            return spec.empty().lazy()
        if isinstance(self.root, ObjectPath):  # explicit URLs: no globbing; the lake's own endpoint and retries
            options = self.root.bucket.storage_options()
            frame = pl.scan_parquet(paths, schema=spec.stored_schema(), glob=False, storage_options=options)
            return spec.from_storage(frame)
        return spec.from_storage(pl.scan_parquet(paths, schema=spec.stored_schema()))
