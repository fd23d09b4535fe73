"""`liq backfill --parallel N` on the devnet with the production profile's instance on a real Postgres (issue #17):
the ranges run side by side in worker processes, their lake files are the same bytes as a sequential backfill's
(on the dev profile, SQLite), every run is recorded in Postgres; a worker killed with SIGKILL mid-range has its
range run again, with the same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from liq_pipeline.devnet import actions
from liq_pipeline_tests.commands.clirun import LIQ, lines, liq

SIZE = 10
RANGES = 8  # the command runs the first ranges itself until a worker is up: enough left for the workers
DATASETS = ("pool_events", "reserve_indices", "price_histories", "borrower_snapshots", "liquidation_outcomes")


def _files(data_dir: Path) -> dict[str, bytes]:
    lake = data_dir / "lake"
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*.parquet"))}


def _runs(postgres) -> list[tuple[str, str]]:
    """(status, partition) of every `liq backfill --parallel` run in the Postgres run storage."""
    query = """
        SELECT r.status, p.value FROM runs r
        JOIN run_tags b ON b.run_id = r.run_id AND b.key = 'liq/backfill'
        JOIN run_tags p ON p.run_id = r.run_id AND p.key = 'dagster/partition'
    """
    try:
        return sorted(postgres.query(query))
    except psycopg2.errors.UndefinedTable:  # the backfill has not created Dagster's tables yet
        return []


def _running_in(postgres) -> set[int]:
    """The processes running a range now: the `liq/backfill-pid` tag of the backfill's STARTED runs."""
    query = """
        SELECT t.value FROM runs r
        JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'liq/backfill-pid'
        WHERE r.status = 'STARTED'
    """
    try:
        return {int(value) for (value,) in postgres.query(query)}
    except psycopg2.errors.UndefinedTable:
        return set()


SETTINGS = {"LAKE_RANGE_BLOCKS": str(SIZE), "CONFIRMATIONS": "0"}


def _workers(process: psutil.Process) -> list[psutil.Process]:
    """The backfill's worker processes: children of its forkserver (the command's child). Other children come and
    go (Dagster's compute-log `tail`s of the ranges the command runs itself)."""
    found = []
    for child in process.children():
        try:
            found += child.children()
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_parallel_ranges_on_postgres_survive_a_killed_worker_with_the_sequential_bytes(
    chain, data_dirs, cli_env, production_home, postgres
):
    actions.mine_blocks(chain.rpc, RANGES * SIZE)
    last = RANGES * SIZE - 1
    # the reference: one range after the other, in-process, on the dev profile (SQLite)
    reference = data_dirs("sequential")
    env = {**cli_env, "DAGSTER_HOME": str(reference / "dagster")}
    result = liq("backfill", "--from-block", "0", "--to-block", str(last), env=env, cwd=reference.parent, **SETTINGS)
    assert result.returncode == 0, result.stderr
    expected = _files(reference)
    assert {name.split("/")[0] for name in expected} >= set(DATASETS), sorted(expected)

    # --parallel 2 on the production profile (Postgres); every worker SIGKILLed once a range is mid-way
    data_dir = data_dirs("parallel")
    home, pg_env = production_home
    argv = [LIQ, "backfill", "--from-block", "0", "--to-block", str(last), "--parallel", "2"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    env = {**cli_env, **pg_env, **SETTINGS}
    with subprocess.Popen(argv, env=env, cwd=data_dir.parent, **pipes) as process:
        command = psutil.Process(process.pid)
        deadline = time.monotonic() + 60
        killed: list[int] = []
        while not killed and time.monotonic() < deadline and process.poll() is None:
            workers = _workers(command)
            if _running_in(postgres) & {worker.pid for worker in workers}:  # a worker is mid-range
                for worker in workers:
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.append(worker.pid)
            time.sleep(0.05)
        out, err = process.communicate(timeout=120)
    assert killed, "no worker was seen running a range"
    assert process.returncode == 0, err
    assert lines(out)[-1] == f"{RANGES} of {RANGES} ranges materialized"
    assert not list(home.rglob("*.db")), "runs and events go to Postgres, not to SQLite files in DAGSTER_HOME"

    runs = _runs(postgres)
    keys = sorted({key for _status, key in runs})
    assert len(keys) == RANGES
    assert sorted(key for status, key in runs if status == "SUCCESS") == keys  # one run per range succeeded
    died = [run for run in runs if run[0] != "SUCCESS"]
    assert died and all(status == "FAILURE" for status, _key in died), f"killed runs marked failed: {runs}"

    files = _files(data_dir)
    assert sorted(files) == sorted(expected)
    assert not [name for name in files if files[name] != expected[name]], "not the sequential backfill's bytes"
