"""Settings: defaults, .env.example drift, strict validation with one clear line per bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from liq_pipeline.config import Settings, SettingsError, load_settings, parse_bool, settings_fields

ROOT = Path(__file__).resolve().parents[1]


def _example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _as_env_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def test_env_example_lists_every_setting_with_its_default():
    example = _example()
    fields = settings_fields()
    assert set(example) == set(fields), "the two must name the same variables"
    for name, default in fields.items():
        assert example[name] == _as_env_text(default), f"{name}: .env.example says {example[name]!r}"


def test_env_example_loads_to_the_defaults(clean_env):
    (clean_env / ".env").write_text((ROOT / ".env.example").read_text())
    assert load_settings() == Settings.model_validate({})


def test_old_bot_defaults(clean_env):
    settings = load_settings()
    assert settings.predictive_enabled is False
    assert settings.predictive_hf_buffer_bps == 40
    assert settings.predictive_horizon_sec == 180
    assert settings.predictive_scenarios == ("baseline", "adverse", "extreme")
    assert settings.predictive_max_users_per_tick == 800
    assert settings.redis_max_pipeline == 500
    assert settings.borrowers_index_mode == "memory"


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "1", "yes", "on", " y ", "t"])
def test_true_spellings(text, clean_env, monkeypatch):
    monkeypatch.setenv("PREDICTIVE_ENABLED", text)
    assert load_settings().predictive_enabled is True


@pytest.mark.parametrize("text", ["false", "False", "FALSE", "0", "no", "off", "n", "f"])
def test_false_spellings_are_false(text, clean_env, monkeypatch):
    # A non-empty "false" must never read as true.
    monkeypatch.setenv("PREDICTIVE_ENABLED", text)
    monkeypatch.setenv("REDIS_ENABLE_PIPELINING", text)
    settings = load_settings()
    assert settings.predictive_enabled is False
    assert settings.redis_enable_pipelining is False


@pytest.mark.parametrize("text", ["flase", "ture", "2", "enabled", "", "nope"])
def test_unknown_boolean_spellings_are_refused(text):
    with pytest.raises(ValueError, match="true/false"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PREDICTIVE_HF_BUFFER_BPS", "abc", "whole number of basis points"),
        ("PREDICTIVE_HF_BUFFER_BPS", "-5", "whole number of basis points"),
        ("PREDICTIVE_HF_BUFFER_BPS", "40.5", "whole number of basis points"),
        ("PREDICTIVE_SCENARIOS", "baseline,panic", "baseline, adverse, extreme"),
        ("PREDICTIVE_SCENARIOS", ",", "baseline, adverse, extreme"),
        ("PREDICTIVE_ENABLED", "flase", "true/false"),
        ("AAVE_ADDRESSES_PROVIDER", "0x123", "20-byte hex address"),
        ("AAVE_ADDRESSES_PROVIDER", "0xE20FCBDBFFC4DD138CE8B2E6FBB6CB49777AD64d", "checksum"),
        ("AAVE_PROTOCOL_VERSION", "2.0", "3.0 to 3.7"),
        ("AAVE_PROTOCOL_VERSION", "3.8", "3.0 to 3.7"),
        ("PREDICTIVE_MAX_USERS_PER_TICK", "-1", ">= 0"),
        ("PREDICTIVE_HORIZON_SEC", "0", "seconds"),
        ("REDIS_MAX_PIPELINE", "0", "entries per round trip"),
        ("RPC_MAX_PARALLEL_POSTS", "0", "requests at once from 1 to 32"),
        ("BORROWERS_INDEX_MODE", "disk", "memory or redis"),
        ("LOG_LEVEL", "LOUD", "DEBUG"),
        ("CHAIN_ID", "base", "8453"),
        ("REDIS_URL", "http://localhost:6379", "redis://"),
        ("RPC_URL", "localhost:8545", "http(s)://"),
        # execution settings (issue #13)
        ("EXECUTION_ENABLED", "maybe", "true/false"),
        ("EXECUTION_MIN_PROFIT_USD", "-1", "US dollars"),
        ("EXECUTION_MIN_PROFIT_USD", "lots", "US dollars"),
        ("GAS_LADDER_PROFIT_SHARE_BPS", "10001", "basis points from 0 to 10000"),
        ("GAS_LADDER_BUMP_BPS", "500", "the node's 10 % minimum"),
        ("GAS_LADDER_BUMP_AFTER_BLOCKS", "0", "blocks from 1"),
        ("GAS_LADDER_MAX_BUMPS", "-1", "replacements"),
        ("PRECOMPUTE_TOP_K", "ten", "candidates"),
        ("EXECUTION_ATTEMPT_TTL_SEC", "0", "seconds from 1"),
        ("EXECUTION_MAX_PER_BLOCK", "0", "transactions from 1"),
        ("EXECUTION_CHANNEL", "fast", "raw (eth_sendRawTransaction), sync (eth_sendRawTransactionSync) or auto"),
        ("EXECUTION_PENDING_TRIGGER", "on", "auto (act on pending price updates where the node streams them) or off"),
    ],
)
def test_bad_value_names_variable_value_and_what_is_allowed(name, value, expected, clean_env, monkeypatch):
    """One line: `NAME='value' is not valid: expected ...` (a URL's value hidden: it may hold a key)."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{name}=")
    assert expected in message
    if name not in ("RPC_URL", "REDIS_URL"):
        assert repr(value.strip()) in message or repr(value) in message
        assert message.startswith(f"{name}={value!r} is not valid")


def test_addresses_are_checksummed(clean_env, monkeypatch):
    monkeypatch.setenv("AAVE_ADDRESSES_PROVIDER", "0xe20fcbdbffc4dd138ce8b2e6fbb6cb49777ad64d")
    assert load_settings().aave_addresses_provider == "0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D"


def test_protocol_version_forms(clean_env, monkeypatch):
    for text, expected in [("3.0", "3.0"), ("v3.5", "3.5"), ("3.0.2", "3.0"), ("3.7", "3.7")]:
        monkeypatch.setenv("AAVE_PROTOCOL_VERSION", text)
        assert load_settings().aave_protocol_version == expected


def test_secret_values_never_echoed(clean_env, monkeypatch):
    monkeypatch.setenv("RPC_URL", "ftp://node.example/v2/SECRETKEY123")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "SECRETKEY123" not in str(caught.value)
    monkeypatch.setenv("RPC_URL", "https://node.example/v2/SECRETKEY123")
    settings = load_settings()
    assert "SECRETKEY123" not in repr(settings)
    assert settings.rpc_url.get_secret_value().endswith("SECRETKEY123")


def _liq(args: list[str], env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liq_pipeline.commands.cli", *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_bad_setting_is_one_line_without_traceback(cli_env):
    result = _liq(["config"], cli_env, PREDICTIVE_HF_BUFFER_BPS="abc")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "config error: PREDICTIVE_HF_BUFFER_BPS='abc' is not valid: expected a whole number of basis points "
        "from 0 to 10000"
    ]


def test_cli_config_masks_secrets(cli_env):
    result = _liq(["config", "--json"], cli_env, RPC_URL="https://node.example/v2/SECRETKEY123")
    assert result.returncode == 0, result.stderr
    assert "SECRETKEY123" not in result.stdout + result.stderr
    assert '"RPC_URL": "https://node.example/***"' in result.stdout  # scheme and host: safe, and useful


@pytest.mark.parametrize("url", ["ws://node.example/v2/KEY", "wss://node.example/v2/KEY", "WSS://node.example"])
def test_websocket_rpc_urls_are_refused(url, clean_env, monkeypatch):
    # the client speaks JSON-RPC over HTTP only: a ws(s):// URL would pass and then fail on the first call
    monkeypatch.setenv("RPC_URL", url)
    with pytest.raises(SettingsError, match=r"RPC_URL=\(hidden\) is not valid: expected an http\(s\):// URL.*ws\(s\)"):
        load_settings()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "https://u:p@node.example:8443/v2/KEY?x=1"])
def test_http_rpc_urls_are_accepted(url, clean_env, monkeypatch):
    monkeypatch.setenv("RPC_URL", url)
    assert load_settings().rpc_url.get_secret_value() == url


def test_every_numeric_setting_has_a_validation_rule():
    from liq_pipeline.config import _FLOAT_RULES, _INT_RULES

    numeric = {name for name, info in Settings.model_fields.items() if info.annotation in (int, float)}
    assert numeric == set(_INT_RULES) | set(_FLOAT_RULES)


def test_predictive_enabled_decides_the_engine_parameters(clean_env, monkeypatch):
    from liq_pipeline.evaluation.params import engine_params

    off = engine_params(load_settings())  # the default: false
    assert [s.name for s in off.scenarios] == ["baseline"] and off.horizon_sec == 0
    monkeypatch.setenv("PREDICTIVE_ENABLED", "true")
    on = engine_params(load_settings())
    assert [s.name for s in on.scenarios] == ["baseline", "adverse", "extreme"] and on.horizon_sec == 180


# --- execution settings (issue #13) ---------------------------------------------------------------------------
_OPERATOR_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def test_execution_defaults_are_dry_run_and_keyless(clean_env):
    settings = load_settings()
    assert settings.execution_enabled is False
    assert settings.executor_private_key is None and settings.executor_keystore is None
    assert settings.execution_min_profit_usd == 1.0
    assert settings.gas_ladder_bump_bps >= 1_000  # the node's minimum replacement bump


@pytest.mark.parametrize(
    "bad", [_OPERATOR_KEY[:-1], "0x" + _OPERATOR_KEY + "00", "0x" + "0" * 64, "zz" + _OPERATOR_KEY[2:]]
)
def test_bad_private_key_is_refused_without_echoing_it(bad, clean_env, monkeypatch):
    monkeypatch.setenv("EXECUTOR_PRIVATE_KEY", bad)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message == (
        "EXECUTOR_PRIVATE_KEY=(hidden) is not valid: expected a 32-byte hex private key (64 hex digits, 0x optional), "
        "or empty"
    )
    assert bad not in message and bad[4:-4] not in message


def test_one_key_source_and_one_password_source(clean_env, monkeypatch):
    monkeypatch.setenv("EXECUTOR_PRIVATE_KEY", _OPERATOR_KEY)
    monkeypatch.setenv("EXECUTOR_KEYSTORE", "/keys/operator.json")
    with pytest.raises(
        SettingsError, match=r"^EXECUTOR_KEYSTORE='/keys/operator.json' is not valid: .*EXECUTOR_PRIVATE_KEY"
    ):
        load_settings()
    monkeypatch.delenv("EXECUTOR_PRIVATE_KEY")
    monkeypatch.setenv("EXECUTOR_KEYSTORE_PASSWORD", "pw-secret")
    monkeypatch.setenv("EXECUTOR_KEYSTORE_PASSWORD_FILE", "/keys/pw")
    with pytest.raises(SettingsError, match=r"^EXECUTOR_KEYSTORE_PASSWORD_FILE='/keys/pw' is not valid") as caught:
        load_settings()
    assert "pw-secret" not in str(caught.value)
    monkeypatch.delenv("EXECUTOR_KEYSTORE_PASSWORD")
    settings = load_settings()
    assert settings.executor_keystore == Path("/keys/operator.json")
    assert settings.executor_keystore_password_file == Path("/keys/pw")


def test_cli_config_never_shows_the_operator_key_or_password(cli_env):
    secrets = {"EXECUTOR_PRIVATE_KEY": "0x" + _OPERATOR_KEY, "EXECUTOR_KEYSTORE_PASSWORD": "pw-SECRET-123"}
    as_json = _liq(["config", "--json"], cli_env, **secrets)
    as_env = _liq(["config"], cli_env, **secrets)
    for result in (as_json, as_env):
        assert result.returncode == 0, result.stderr
        text = result.stdout + result.stderr
        for piece in (_OPERATOR_KEY, _OPERATOR_KEY.upper(), "pw-SECRET-123"):
            assert piece not in text
    assert '"EXECUTOR_PRIVATE_KEY": "***"' in as_json.stdout
    assert '"EXECUTOR_KEYSTORE_PASSWORD": "***"' in as_json.stdout
    assert "EXECUTOR_PRIVATE_KEY=***" in as_env.stdout.splitlines()
    assert "EXECUTOR_KEYSTORE=" in as_env.stdout.splitlines()  # unset: empty, not ***


def test_the_node_client_carries_the_request_limits(clean_env, monkeypatch):
    monkeypatch.setenv("RPC_URL", "http://127.0.0.1:8545")
    monkeypatch.setenv("RPC_MAX_PARALLEL_POSTS", "2")
    with load_settings().node_client(retries=1) as rpc:
        assert (rpc.url, rpc.max_parallel_posts, rpc.retries) == ("http://127.0.0.1:8545", 2, 1)
    monkeypatch.delenv("RPC_URL")
    with pytest.raises(ValueError, match="RPC_URL is not set"):
        load_settings().node_client()
