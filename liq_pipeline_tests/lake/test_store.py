"""The lake store: cryo-style names, atomic writes (even when the writer dies mid-file), idempotent rewrites,
listing, scans and missing ranges. Pure: small hand-made frames in a temp folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from liq_pipeline.lake.errors import LakeError, SchemaMismatch
from liq_pipeline.lake.open import lake_at
from liq_pipeline.lake.partitions import BlockRange
from liq_pipeline.lake.spec import DatasetSpec
from liq_pipeline.lake.store import Lake

SCHEMA = {"block_number": pl.Int64, "user": pl.String, "amount": pl.Int128, "tags": pl.List(pl.Int32)}
SPEC = DatasetSpec("toy", SCHEMA, key=("block_number", "user"))
R0, R1, R2 = BlockRange(0, 99), BlockRange(100, 199), BlockRange(200, 299)


def toy(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "block_number": [r[0] for r in rows],
            "user": [r[1] for r in rows],
            "amount": [r[2] for r in rows],
            "tags": [[r[0] % 3] for r in rows],
        },
        schema=SCHEMA,
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake", range_size=100, specs={"toy": SPEC})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_are_named_by_dataset_and_block_range_like_cryo(tmp_path):
    lake = lake_at(tmp_path)  # the real datasets, 1,000-block ranges
    path = lake.path("pool_events", BlockRange(12_000, 12_999))
    assert path == tmp_path / "pool_events" / "pool_events__000000012000_to_000000012999.parquet"
    with pytest.raises(LakeError, match="not a range of this lake's grid"):
        lake.path("pool_events", BlockRange(12_000, 12_099))
    with pytest.raises(LakeError, match="unknown dataset 'nope'"):
        lake.path("nope", BlockRange(0, 999))


def test_big_integers_round_trip_exactly_and_stay_readable_by_pyarrow(lake):
    frame = toy([(5, "a", 2**100), (7, "b", -(10**37)), (9, "c", 0)])
    path = lake.write("toy", R0, frame)
    assert lake.read("toy", R0).equals(frame)
    table = pq.read_table(path)  # other readers (pyarrow, DuckDB) cannot read polars' Int128: stored as decimal
    assert str(table.schema.field("amount").type) == "decimal128(38, 0)"
    assert int(table.column("amount")[0].as_py()) == 2**100


def test_a_value_beyond_38_digits_fails_loudly_and_writes_nothing(lake):
    with pytest.raises(pl.exceptions.InvalidOperationError):
        lake.write("toy", R0, toy([(5, "a", 10**38)]))
    assert lake.ranges("toy") == [] and lake.stale_temp_files("toy") == []


def test_rewriting_a_range_gives_the_same_bytes_whatever_the_row_order(lake):
    rows = [(150, "b", 2), (101, "a", 1), (199, "c", 3), (150, "a", 4)]
    first = lake.write("toy", R1, toy(rows))
    before = digest(first)
    lake.write("toy", R1, toy(list(reversed(rows))))
    assert digest(first) == before
    stored = lake.read("toy", R1)
    assert stored["block_number"].to_list() == [101, 150, 150, 199]  # sorted by the key
    assert stored["user"].to_list() == ["a", "a", "b", "c"]


def test_a_writer_failing_midway_leaves_the_previous_file_and_no_temp(lake):
    path = lake.write("toy", R1, toy([(101, "a", 1)]))
    before = digest(path)

    def half_then_fail(frame: pl.DataFrame, temp: Path) -> None:
        frame.write_parquet(temp)
        with open(temp, "r+b") as handle:  # a half-written file, as a crash would leave it
            handle.truncate(temp.stat().st_size // 2)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        lake.write("toy", R1, toy([(101, "a", 99), (102, "b", 2)]), writer=half_then_fail)
    assert digest(path) == before
    assert lake.read("toy", R1)["amount"].to_list() == [1]
    assert sorted(p.name for p in lake.folder("toy").iterdir() if p.name != ".lock") == [path.name]

    with pytest.raises(OSError):  # a first write failing leaves no file at all
        lake.write("toy", R2, toy([(201, "a", 1)]), writer=half_then_fail)
    assert not lake.exists("toy", R2) and lake.ranges("toy") == [R1]


def test_a_process_killed_mid_write_never_leaves_a_partial_file(lake, tmp_path):
    path = lake.write("toy", R1, toy([(101, "a", 1)]))
    before = digest(path)
    script = textwrap.dedent(
        f"""
        import os, polars as pl
        from pathlib import Path
        from liq_pipeline.lake.spec import DatasetSpec
        from liq_pipeline.lake.store import Lake
        from liq_pipeline.lake.partitions import BlockRange
        from liq_pipeline_tests.lake.test_store import SPEC, toy

        def die(frame, temp: Path):
            frame.write_parquet(temp)
            with open(temp, "r+b") as handle:
                handle.truncate(temp.stat().st_size // 2)
            os._exit(9)  # killed: no exception handler, no cleanup runs

        lake = Lake({str(lake.root)!r}, range_size=100, specs={{"toy": SPEC}})
        lake.write("toy", BlockRange(100, 199), toy([(101, "a", 2), (150, "z", 3)]), writer=die)
        """
    )
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    assert digest(path) == before  # the previous file is whole
    assert lake.ranges("toy") == [R1]  # the orphan temp file is not a range
    leftovers = lake.stale_temp_files("toy")
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".toy__")
    assert lake.scan("toy").collect().height == 1


def test_frames_that_break_the_schema_key_or_range_are_refused_before_writing(lake):
    good = toy([(101, "a", 1)])
    with pytest.raises(SchemaMismatch, match=r"extra \['x'\]"):
        lake.write("toy", R1, good.with_columns(pl.lit(1).alias("x")))
    with pytest.raises(SchemaMismatch, match=r"missing \['tags'\]"):
        lake.write("toy", R1, good.drop("tags"))
    with pytest.raises(SchemaMismatch, match="amount: Int64 instead of Int128"):
        lake.write("toy", R1, good.with_columns(pl.col("amount").cast(pl.Int64)))
    with pytest.raises(SchemaMismatch, match="outside the range"):
        lake.write("toy", R1, toy([(101, "a", 1), (200, "b", 1)]))
    with pytest.raises(SchemaMismatch, match="share a key"):
        lake.write("toy", R1, toy([(101, "a", 1), (101, "a", 2)]))
    assert lake.ranges("toy") == []


def test_listing_scanning_and_missing_ranges(lake):
    lake.write("toy", R0, toy([(5, "a", 1), (99, "b", 2)]))
    lake.write("toy", R2, toy([(200, "c", 3), (250, "d", 4)]))
    lake.write("toy", BlockRange(400, 499), toy([]))  # an empty range is materialized, not missing
    assert lake.ranges("toy") == [R0, R2, BlockRange(400, 499)]
    assert lake.missing("toy", 0, 499) == [R1, BlockRange(300, 399)]
    assert lake.missing("toy", 50, 60) == []
    scanned = lake.scan("toy", 50, 249)
    assert isinstance(scanned, pl.LazyFrame)
    assert scanned.collect()["block_number"].to_list() == [99, 200]
    assert lake.scan("toy").collect().height == 4
    assert lake.scan("toy").collect_schema() == pl.Schema(SCHEMA)
    with pytest.raises(LakeError, match=r"1 range\(s\) of \[0, 299\] not materialized: 000000000100-000000000199"):
        lake.scan("toy", 0, 299, complete=True)
    empty = Lake(lake.root / "other", 100, {"toy": SPEC}).scan("toy", 0, 10)
    assert empty.collect().height == 0 and empty.collect_schema() == pl.Schema(SCHEMA)


def test_a_file_of_another_range_size_is_refused_when_listing(lake):
    Lake(lake.root, range_size=50, specs={"toy": SPEC}).write("toy", BlockRange(50, 99), toy([(60, "a", 1)]))
    with pytest.raises(LakeError, match="not a range of this lake's grid of 100 blocks"):
        lake.ranges("toy")
