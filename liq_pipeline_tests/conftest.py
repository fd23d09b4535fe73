"""Shared test setup: settings come from a clean environment, never from a developer's own .env."""

from __future__ import annotations

import os

import pytest

from liq_pipeline.config import settings_fields


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
