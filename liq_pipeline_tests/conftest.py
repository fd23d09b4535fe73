"""Shared test setup: settings come from a clean environment, never from a developer's own .env.

Tests are laid out like the packages they test; what a test needs (real services, minutes) is a marker, not a
folder: `integration` (a real anvil with the Aave contracts, Redis, Prometheus, dagster dev) and `slow`. The
shared fixtures live in `fixtures/` and are loaded here as plugins (pytest takes `pytest_plugins` only here).
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
