"""`liq config` prints an env file: fed back as `.env` it gives the same settings (secrets aside, they are masked)."""

from __future__ import annotations

import json
from pathlib import Path

from liq_pipeline.config import load_settings, settings_fields
from liq_pipeline_tests.commands.clirun import liq

CHANGED = {
    "LOG_LEVEL": "debug",
    "DATA_DIR": "my data/with 'quotes' #and $HOME",
    "RPC_URL": "https://alice:pw@node.example:8443/v2/KEY123456789?x=1",
    "CHAIN_ID": "8453",
    "AAVE_ADDRESSES_PROVIDER": "0xe20fcbdbffc4dd138ce8b2e6fbb6cb49777ad64d",
    "AAVE_PROTOCOL_VERSION": "v3.5",
    "MULTICALL_ADDRESS": "",
    "PREDICTIVE_ENABLED": "yes",
    "PREDICTIVE_SCENARIOS": "extreme, baseline",
    "PREDICTIVE_VOLATILITY_SCALING": "on",
    "PREDICTIVE_ADVERSE_SIGMAS": "1.25",
    "STABLE_ASSET_SYMBOLS": "usdc,dai",
    "KPI_MISS_RATE_MAX": "0.05",
    "REDIS_ENABLE_PIPELINING": "0",
    "BORROWERS_INDEX_MODE": "REDIS",
    "ALERT_WEBHOOK_URL": "https://hooks.example/services/T0/B0/XYZ",
}
SECRET_FIELDS = {"rpc_url", "redis_url", "alert_webhook_url"}


def test_the_output_is_an_env_file_of_the_same_settings(cli_env, clean_env, monkeypatch):
    first = liq("config", env=cli_env, cwd=clean_env, **CHANGED)
    assert first.returncode == 0, first.stderr
    printed = dict(line.split("=", 1) for line in first.stdout.splitlines())
    assert set(printed) == set(settings_fields())
    assert printed["PREDICTIVE_ENABLED"] == "true" and printed["REDIS_ENABLE_PIPELINING"] == "false"
    assert printed["PREDICTIVE_SCENARIOS"] == "extreme,baseline" and printed["STABLE_ASSET_SYMBOLS"] == "USDC,DAI"
    assert printed["MULTICALL_ADDRESS"] == "" and printed["REDIS_URL"] == ""

    elsewhere = clean_env / "again"
    elsewhere.mkdir()
    (elsewhere / ".env").write_text(first.stdout)
    again = liq("config", env=cli_env, cwd=elsewhere)  # from the .env alone
    assert again.stdout == first.stdout

    for name, value in CHANGED.items():
        monkeypatch.setenv(name, value)
    original = load_settings()
    for name in CHANGED:
        monkeypatch.delenv(name)
    monkeypatch.chdir(elsewhere)
    reread = load_settings()
    fields = set(type(original).model_fields) - SECRET_FIELDS
    assert {f: getattr(reread, f) for f in fields} == {f: getattr(original, f) for f in fields}
    assert reread.data_dir == Path(CHANGED["DATA_DIR"])


def test_json(cli_env, clean_env):
    result = liq("config", "--json", env=cli_env, cwd=clean_env, PREDICTIVE_SCENARIOS="adverse")
    values = json.loads(result.stdout)
    assert values["PREDICTIVE_SCENARIOS"] == ["adverse"] and values["PREDICTIVE_ENABLED"] is False
    assert values["CHAIN_ID"] is None and values["RPC_URL"] is None


def test_the_defaults_print_as_env_example_lists_them(cli_env, clean_env):
    example = Path(__file__).resolve().parents[2] / ".env.example"
    expected = [line for line in example.read_text().splitlines() if line and not line.startswith("#")]
    result = liq("config", env=cli_env, cwd=clean_env)
    assert result.stdout.splitlines() == expected
