"""No secret in anything `liq` writes, at any log level: RPC_URL's key in its path, its query and its user info,
REDIS_URL's password and ALERT_WEBHOOK_URL's token, with LOG_LEVEL=DEBUG (urllib3 logs every request line)."""

from __future__ import annotations

from liq_pipeline_tests.commands.clirun import fake_node, fake_nodes, liq, liq_at_once

PATH_KEY = "PathKey0123456789abcdef"
QUERY_KEY = "QueryKey98765"
PASSWORD = "UserPass4242"
REDIS_PASSWORD = "RedisPass777"
WEBHOOK_TOKEN = "HookToken31337xyz"
SECRETS = (PATH_KEY, QUERY_KEY, PASSWORD, REDIS_PASSWORD, WEBHOOK_TOKEN)


def _settings(node_url: str) -> dict[str, str]:
    return {
        "LOG_LEVEL": "DEBUG",
        "RPC_URL": node_url,
        "AAVE_ADDRESSES_PROVIDER": "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6",
        "REDIS_URL": f"redis://default:{REDIS_PASSWORD}@127.0.0.1:9/0",  # nothing listens on port 9
        "ALERT_WEBHOOK_URL": f"https://hooks.example/services/{WEBHOOK_TOKEN}",
    }


# Every command that reads RPC_URL (or may log a URL) and ends by itself. Not here: exporter, dev (long-running),
# demo, bench-* and devnet * (they start their own devnet and never read RPC_URL), harness/bench (no chain).
COMMANDS = [
    ["config"],
    ["config", "--json"],
    ["status"],
    ["status", "--json"],
    ["scan", "--from-block", "0"],
    ["scan", "--from-block", "0", "--json"],
    ["watch", "--no-redis"],
    ["backfill", "--from-block", "0", "--to-block", "10"],
]


def test_no_secret_at_debug(cli_env, clean_env):
    """Every command of COMMANDS, each with a node of its own, all run at once (independent: ~2x faster)."""
    with fake_nodes(len(COMMANDS)) as nodes:  # answer every call with a JSON-RPC error
        urls = [node.url(f"/v2/{PATH_KEY}?apikey={QUERY_KEY}", userinfo=f"alice:{PASSWORD}") for node in nodes]
        results = liq_at_once(COMMANDS, env=cli_env, cwd=clean_env, settings=[_settings(url) for url in urls])
    for argv, node, result in zip(COMMANDS, nodes, results, strict=True):
        if argv[0] != "config":
            assert node.paths and PATH_KEY in node.paths[0], argv  # the key did reach the node
            assert "DEBUG urllib3" in result.stderr, argv  # and the request lines were logged
        assert result.returncode in (0, 1, 3), (argv, result.stderr)
        shown = result.stdout + result.stderr
        for secret in SECRETS:
            assert secret not in shown, (argv, secret, shown)
        assert "Traceback" not in shown, argv


def test_a_key_echoed_by_the_node_is_cut_out(cli_env, clean_env):
    """A gateway refusing a key often names it: the message quotes the answer without it."""
    with fake_node(http=(401, f"invalid api key {PATH_KEY} for apikey={QUERY_KEY}")) as node:
        url = node.url(f"/v2/{PATH_KEY}?apikey={QUERY_KEY}")
        settings = _settings(url) | {"LOG_LEVEL": "INFO"}  # the message itself, not the log redaction
        result = liq("scan", "--from-block", "0", env=cli_env, cwd=clean_env, **settings)
    assert result.returncode == 3
    assert result.stderr.splitlines()[-1].startswith(f"error: http://127.0.0.1:{node.port} answered HTTP 401:")
    assert "invalid api key ***" in result.stderr
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def test_config_shows_scheme_and_host_only(cli_env, clean_env):
    """Both `liq config` runs (with secrets, and with nothing secret) at once."""
    settings = _settings(f"https://alice:{PASSWORD}@base.example:8443/v2/{PATH_KEY}?apikey={QUERY_KEY}")
    result, plain = liq_at_once(
        [["config"], ["config"]], env=cli_env, cwd=clean_env, settings=[settings, {"RPC_URL": "http://127.0.0.1:8545"}]
    )
    assert result.returncode == 0, result.stderr
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert shown["RPC_URL"] == "https://***@base.example:8443/***"
    assert shown["REDIS_URL"] == "redis://***@127.0.0.1:9/***"
    assert shown["ALERT_WEBHOOK_URL"] == "https://hooks.example/***"
    assert "RPC_URL=http://127.0.0.1:8545\n" in plain.stdout  # nothing secret: nothing masked
