"""Shared test setup: settings come from a clean environment, never from a developer's own .env.

Tests are laid out like the packages they test; what a test needs (real services, minutes) is a marker, not a
folder: `integration` (a real anvil with the Aave contracts, Redis, Prometheus, dagster dev) and `slow`. The
shared fixtures live in `fixtures/` and are loaded here as plugins (pytest takes `pytest_plugins` only here).
`make test` runs them in two processes (pytest-xdist, `--dist loadgroup`): see pytest_collection_modifyitems.
"""

from __future__ import annotations

import os

import pytest

from liq_pipeline.config import settings_fields

pytest_plugins = [
    "liq_pipeline_tests.fixtures.devnet",
    "liq_pipeline_tests.fixtures.devnet_v36",
    "liq_pipeline_tests.fixtures.dagster_dev",
    "liq_pipeline_tests.fixtures.liquidatable",
    "liq_pipeline_tests.fixtures.prometheus",
    "liq_pipeline_tests.fixtures.watcher",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One test process (xdist group) per file, so a module's fixtures start once; the tests on the session's running
    platform (`dagster dev`, ~8 s to start and a daemon's CPU while it runs) share one process wherever they live.
    Without xdist the marker is inert. Under xdist the `slow` files go first (`make test` keeps this order with
    --no-loadscope-reorder): a minute-long file started last would leave the other process idle at the end."""
    for item in items:
        group = "platform" if "platform" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("dist", "no") != "no":
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: each file keeps its order


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """No liq-pipeline variable set, and a working directory without a .env file."""
    for name in settings_fields():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli_env(clean_env) -> dict[str, str]:
    """Environment for running `liq` in a subprocess without inherited settings."""
    env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    return env
