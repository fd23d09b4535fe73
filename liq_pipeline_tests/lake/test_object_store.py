"""The lake on object storage, against a real S3 API (`moto_server` on 127.0.0.1, started by the tests): the same
bytes and rows as the local folder, atomic rewrites, the appenders' lock, one clear error for a bad LAKE_URL or
an endpoint that does not answer. Objects are checked with boto3 too, not only through the lake's own client.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import polars as pl
import pytest

from liq_pipeline.config import SettingsError, load_settings
from liq_pipeline.evaluation.rewind import rewind_lake
from liq_pipeline.lake.datasets.liquidation_candidates import NAME as CANDIDATES
from liq_pipeline.lake.datasets.liquidation_candidates import append_candidates
from liq_pipeline.lake.errors import LakeError
from liq_pipeline.lake.objects import ObjectPath, S3Settings
from liq_pipeline.lake.open import lake_at, lake_root, open_lake
from liq_pipeline.lake.partitions import BlockRange
from liq_pipeline.lake.store import Lake
from liq_pipeline_tests.lake import moto_s3 as fixtures
from liq_pipeline_tests.lake.moto_s3 import MotoS3, free_port
from liq_pipeline_tests.lake.test_outcomes import candidates
from liq_pipeline_tests.lake.test_store import R0, R1, R2, SPEC, toy

SPECS = {"toy": SPEC}
moto_s3, s3_env = fixtures.moto_s3, fixtures.s3_env  # the S3 server (session) and a lake URL per test


def _boto(server: MotoS3):
    import boto3  # moto's own dependency: a second, independent S3 client

    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", **BOTO_KEYS)


BOTO_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def raw_get(server: MotoS3, url: str) -> bytes:
    """An object's bytes read with boto3, not through the lake's client."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return _boto(server).get_object(Bucket=bucket, Key=key)["Body"].read()


def raw_keys(server: MotoS3, url: str) -> list[str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    listed = _boto(server).list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_the_lake_on_s3_holds_the_same_bytes_and_rows_as_the_local_lake(s3_env, moto_s3, tmp_path):
    local = Lake(tmp_path / "lake", 100, SPECS)
    remote = Lake(s3_env, 100, SPECS)
    assert remote.on_object_store and not local.on_object_store
    frames = {
        R0: toy([(50, "b", 2**100), (5, "a", -(10**37)), (99, "c", 0)]),
        R2: toy([]),  # an empty range is an object too
    }
    assert remote.ranges("toy") == [] and remote.missing("toy", 0, 299) == [R0, R1, R2]
    for block_range, frame in frames.items():
        local.write("toy", block_range, frame)
        written = remote.write("toy", block_range, frame)
        assert isinstance(written, ObjectPath) and str(written) == str(remote.path("toy", block_range))
        assert raw_get(moto_s3, str(written)) == local.path("toy", block_range).read_bytes()  # byte-identical
    assert str(remote.path("toy", R0)) == f"{s3_env}/toy/toy__000000000000_to_000000000099.parquet"
    assert raw_keys(moto_s3, s3_env) == [
        f"{s3_env.partition('liq-lake-tests/')[2]}/toy/toy__{r.start:012d}_to_{r.end:012d}.parquet" for r in (R0, R2)
    ]  # nothing else: no temp object, no lock left behind

    assert remote.ranges("toy") == local.ranges("toy") == [R0, R2]
    (remote.root / "toy2" / "toy__000000000100_to_000000000199.parquet").write_bytes(b"x")  # a sibling prefix
    (remote.root / "toy" / "deeper" / "toy__000000000100_to_000000000199.parquet").write_bytes(b"x")  # a sub-prefix
    assert remote.ranges("toy") == [R0, R2]
    assert remote.missing("toy", 0, 299) == local.missing("toy", 0, 299) == [R1]
    assert remote.exists("toy", R0) and not remote.exists("toy", R1)
    assert remote.stale_temp_files("toy") == []
    assert remote.read("toy", R0).equals(local.read("toy", R0))
    assert remote.read("toy", R0).equals(frames[R0].sort("block_number", "user"))
    assert remote.scan("toy", 5, 60).collect().equals(local.scan("toy", 5, 60).collect())
    assert remote.scan("toy").collect().height == 3
    with pytest.raises(LakeError, match="1 range"):
        remote.scan("toy", 0, 299, complete=True)
    with pytest.raises(LakeError, match=r"range 000000000100-000000000199 is not in the lake \(s3://"):
        remote.read("toy", R1)

    assert remote.delete("toy", R2) and not remote.delete("toy", R2)
    assert remote.ranges("toy") == [R0]


def test_a_rewrite_replaces_the_object_whole_and_a_failed_or_killed_write_keeps_the_old_one(s3_env, moto_s3):
    lake = Lake(s3_env, 100, SPECS)
    old, new = toy([(101, "a", 1), (150, "b", 2)]), toy([(120, "z", 7)])
    path = lake.write("toy", R1, old)
    before = raw_get(moto_s3, str(path))

    def half_then_fail(frame, temp):
        frame.write_parquet(temp)
        temp.write_bytes(temp.read_bytes()[: temp.stat().st_size // 2])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        lake.write("toy", R1, new, writer=half_then_fail)
    assert raw_get(moto_s3, str(path)) == before

    killer = textwrap.dedent(f"""
        import os, polars as pl
        from liq_pipeline.lake.store import Lake
        from liq_pipeline_tests.lake.test_store import SPEC, R1, toy
        def die(frame, temp):
            frame.write_parquet(temp)
            temp.write_bytes(temp.read_bytes()[:100])
            os._exit(9)  # killed mid-file
        Lake({s3_env!r}, 100, {{"toy": SPEC}}).write("toy", R1, toy([(120, "z", 7)]), writer=die)
    """)
    assert subprocess.run([sys.executable, "-c", killer], timeout=60).returncode == 9
    assert raw_get(moto_s3, str(path)) == before and lake.ranges("toy") == [R1]

    # readers racing a writer that swaps the range back and forth see one whole version or the other
    versions = {old.sort("block_number").rows().__repr__(), new.rows().__repr__()}
    seen, errors, done = set(), [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                seen.add(lake.read("toy", R1).rows().__repr__())
            except Exception as error:  # any failure is the finding
                errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(12):
        lake.write("toy", R1, new if i % 2 == 0 else old)
    done.set()
    thread.join(timeout=30)
    assert errors == [] and seen <= versions and seen
    lake.write("toy", R1, new)
    assert lake.read("toy", R1).equals(new)  # the rewrite is what the next read sees (no stale cache)


@pytest.mark.parametrize(
    "value",
    [
        "bucket-only-no-scheme",
        "s3://",
        "s3://UpperCase/lake",
        "s3://ab/lake",  # too short a bucket name
        "s3://my_bucket/lake",
        "s3://bucket..dots/lake",
        "s3://bucket/a//b",
        "s3://bucket/lake with space",
        "s3://bucket/lake?versionId=1",
        "s3://bucket/lake/*",
        "gs://bucket/lake",
        "/data/lake",
    ],
)
def test_a_bad_lake_url_is_one_clear_error(value, clean_env, monkeypatch):
    monkeypatch.setenv("LAKE_URL", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.count("\n") == 0 and message.startswith(f"LAKE_URL={value!r} is not valid: expected s3://BUCKET")
    assert "or empty for the local folder DATA_DIR/lake" in message
    if "://" in value:  # a lake opened with a URL directly says the same, as a LakeError
        with pytest.raises(LakeError, match=r"lake URL .* is not valid: expected s3://BUCKET"):
            Lake(value, 100, SPECS)


def test_lake_url_picks_the_lake_and_empty_keeps_the_local_folder(clean_env, monkeypatch, s3_env, moto_s3):
    assert load_settings().lake_url is None
    local = open_lake(load_settings(DATA_DIR=str(clean_env)))
    assert not local.on_object_store and local.root == clean_env / "lake"
    monkeypatch.setenv("LAKE_URL", f" {s3_env}/ ")
    settings = load_settings()
    assert settings.lake_url == s3_env  # trimmed, no trailing slash
    lake = open_lake(settings)
    assert lake.on_object_store and str(lake.root) == s3_env
    assert not lake_root(settings).is_dir()  # what `liq status` asks: nothing there yet
    lake.write("liquidation_candidates", BlockRange(0, 999), candidates([(5, "A", "baseline", 1.0)]))
    assert lake_root(settings).is_dir()
    assert lake.read("liquidation_candidates", BlockRange(0, 999)).height == 1


def test_an_endpoint_that_does_not_answer_is_one_clear_lake_error(s3_env, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a stopped S3 server
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    lake = Lake(s3_env, 100, SPECS)
    began = time.perf_counter()
    for attempt in (
        lambda: lake.ranges("toy"),
        lambda: lake.exists("toy", R0),
        lambda: lake.write("toy", R0, toy([(5, "a", 1)])),
        lambda: lake.read("toy", R0),
    ):
        with pytest.raises(LakeError) as raised:
            attempt()
        message = str(raised.value)
        assert "\n" not in message and len(message) < 400, message
        assert f"AWS_ENDPOINT_URL={endpoint}" in message and "the endpoint does not answer" in message, message
        assert message.startswith(f"lake {s3_env}/toy"), message
    assert time.perf_counter() - began < 20  # a few quick retries, not minutes


def test_a_missing_bucket_and_a_bad_endpoint_variable_are_named(s3_env, moto_s3, monkeypatch):
    lake = Lake("s3://no-such-bucket-here/lake", 100, SPECS)
    with pytest.raises(LakeError, match="the bucket 'no-such-bucket-here' does not exist"):
        lake.write("toy", R0, toy([]))
    with pytest.raises(LakeError, match="the bucket 'no-such-bucket-here' does not exist"):
        lake.ranges("toy")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "127.0.0.1:9000")
    with pytest.raises(LakeError, match=r"AWS_ENDPOINT_URL='127.0.0.1:9000' is not valid: expected an http\(s\)://"):
        Lake(s3_env, 100, SPECS)


def test_the_lock_lets_one_writer_at_a_time_read_modify_write(s3_env):
    lake = Lake(s3_env, 100, SPECS)
    counter = lake.folder("toy") / "counter"
    counter.write_bytes(b"0")

    def add(times: int) -> None:
        own = Lake(s3_env, 100, SPECS)  # a client of its own, as another process would have
        for _ in range(times):
            with own.lock("toy"):
                value = int(counter.read_bytes())
                time.sleep(0.02)  # widen the window a lost update needs
                counter.write_bytes(str(value + 1).encode())

    threads = [threading.Thread(target=add, args=(5,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert int(counter.read_bytes()) == 15
    assert not (lake.folder("toy") / ".lock").is_file()  # released


def test_a_dead_holders_lock_expires_and_a_live_one_makes_waiters_fail_loudly(s3_env):
    lake = Lake(s3_env, 100, SPECS, lock_lease=1.0, lock_wait=6.0)
    lock = lake.folder("toy") / ".lock"
    lock.write_bytes(b'{"owner": "dead-host:1"}')  # left by a process killed while holding it
    began = time.perf_counter()
    with lake.lock("toy"):
        assert b"dead-host" not in lock.read_bytes()
        waited = time.perf_counter() - began
        impatient = Lake(s3_env, 100, SPECS, lock_lease=60.0, lock_wait=0.5)
        with pytest.raises(LakeError, match=r"lock held by .* One writer per dataset"), impatient.lock("toy"):
            pass
    assert waited < 6.0
    assert not lock.is_file()

    # a holder that overran its lease finds the lock taken over, and says so at release
    slow = Lake(s3_env, 100, SPECS, lock_lease=1.0, lock_wait=6.0)
    taker = Lake(s3_env, 100, SPECS, lock_lease=1.0, lock_wait=6.0)  # takes it over once the lease is over
    with (
        pytest.raises(LakeError, match="lock lost: held longer than its 1 s lease"),
        slow.lock("toy"),
        taker.lock("toy"),
    ):
        pass  # entered left to right: slow holds it, taker waits out the lease and takes it; slow's release fails


def test_appending_candidates_and_rewinding_work_on_s3(s3_env):
    lake = lake_at(s3_env, range_size=100)
    first = candidates([(150, "A", "baseline", 9.0), (199, "B", "adverse", 3.0), (200, "A", "baseline", 1.0)])
    assert append_candidates(lake, first) == [BlockRange(100, 199), BlockRange(200, 299)]
    before = lake.path(CANDIDATES, BlockRange(100, 199)).read_bytes()
    append_candidates(lake, first)
    assert lake.path(CANDIDATES, BlockRange(100, 199)).read_bytes() == before  # idempotent
    append_candidates(lake, candidates([(150, "A", "baseline", 4.0)]))
    assert lake.scan(CANDIDATES).collect().sort("block")["eta_sec"].to_list() == [4.0, 3.0, 1.0]
    trimmed, deleted = rewind_lake(lake, 160)  # the evaluation's rewind: trims under the lock, deletes objects
    assert trimmed == [f"{CANDIDATES} 000000000100-000000000199"]
    assert deleted == [f"{CANDIDATES} 000000000200-000000000299"]
    assert lake.ranges(CANDIDATES) == [BlockRange(100, 199)]
    assert lake.scan(CANDIDATES).collect()["block"].to_list() == [150]
    assert pl.Series(lake.scan(CANDIDATES).collect()["user"]).to_list() == ["A"]


def test_the_secret_key_and_session_token_never_show_in_the_settings_repr():
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-k3y", "AWS_SESSION_TOKEN": "t0k3n"}
    shown = repr(S3Settings.from_env(env))
    assert "s3cr3t-k3y" not in shown and "t0k3n" not in shown
    assert S3Settings.from_env(env).secret_access_key == "s3cr3t-k3y"  # held, only not shown
