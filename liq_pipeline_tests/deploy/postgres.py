"""A real PostgreSQL server for tests (liq_pipeline/bench/postgres.py starts it: Debian's binaries, a cluster in a
temp folder, 127.0.0.1 at a free port, run as `nobody` when the tests run as root).

Without PostgreSQL the tests that need it are skipped with a reason starting "POSTGRES NOT INSTALLED"; on CI
(CI=true, or LIQ_REQUIRE_POSTGRES=1) they fail instead (`.ci/run` installs `postgresql`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from liq_pipeline.bench.postgres import INSTALL_HINT, Postgres, PostgresUnavailable, find_bin_dir, temporary_postgres

__all__ = ["Postgres", "require_bin_dir", "running_postgres"]


def _required() -> bool:
    flags = (os.environ.get("CI", ""), os.environ.get("LIQ_REQUIRE_POSTGRES", ""))
    return any(flag.strip().lower() in ("1", "true", "yes") for flag in flags)


def require_bin_dir() -> Path:
    found = find_bin_dir()
    if found is None:
        message = (
            "POSTGRES NOT INSTALLED: no `initdb`/`postgres` on PATH or under /usr/lib/postgresql/*/bin, so this test "
            f"did NOT run; {INSTALL_HINT} (.ci/run does)"
        )
        if _required():
            pytest.fail(message + " (CI / LIQ_REQUIRE_POSTGRES is set: missing is an error)")
        pytest.skip(message)
    return found


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[Postgres]:
    try:
        with temporary_postgres("dagster", bin_dir) as server:
            yield server
    except PostgresUnavailable as error:
        pytest.fail(f"PostgreSQL is installed but did not start: {error}")
