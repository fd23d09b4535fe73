"""Fixtures of the deployment tests: a real PostgreSQL server (postgres.py), one per session; DAGSTER_HOMEs of the
production profile on it; data dirs on the session devnet."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.devnet import anvil
from liq_pipeline.devnet.paths import market_json_path
from liq_pipeline_tests.deploy.postgres import Postgres, require_bin_dir, running_postgres

PRODUCTION_PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "production" / "dagster.yaml"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on 127.0.0.1 with an empty `dagster` database, for the whole session."""
    with running_postgres(require_bin_dir()) as server:
        yield server


@pytest.fixture
def data_dirs(chain, tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """DATA_DIRs whose running devnet is the session's (its pid file and market.json, as `liq devnet up` writes);
    the embedded Redis a command started in one (`liq backfill` does) is stopped after the test."""
    made: list[Path] = []

    def make(name: str) -> Path:
        data_dir = tmp_path / name / "data"
        anvil.write_pid_file(data_dir, chain.node)
        chain.market.save(market_json_path(data_dir))
        made.append(data_dir)
        return data_dir

    yield make
    for data_dir in made:
        EmbeddedRedis(data_dir / "redis").stop()


@pytest.fixture
def production_home(postgres: Postgres, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A DAGSTER_HOME holding the production profile, and the environment that points it at the test Postgres."""
    home = tmp_path / "dagster-production"
    home.mkdir()
    shutil.copyfile(PRODUCTION_PROFILE, home / "dagster.yaml")
    return home, {"DAGSTER_HOME": str(home), **postgres.env()}
