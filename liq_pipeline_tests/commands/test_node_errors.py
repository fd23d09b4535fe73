"""A node that answers errors, cannot be reached, or is of another chain; options checked before any request;
ws(s):// refused. Each ends in one line and an exit code, never a traceback (exit codes: commands/runtime.py)."""

from __future__ import annotations

import socket
from contextlib import ExitStack

import pytest

from liq_pipeline_tests.commands.clirun import chain_of, error_for_everything, fake_node, lines, liq, liq_at_once

PROVIDER = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"
NODE_COMMANDS = [
    ["scan", "--from-block", "0"],
    ["watch", "--no-redis"],
    ["backfill", "--from-block", "0", "--to-block", "10"],
]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _at_once(argvs: list[list[str]], answer, cli_env, clean_env, **settings: str):
    """Each argv against a fake node of its own answering `answer`, all run at once: (argv, node, result)."""
    with ExitStack() as stack:
        nodes = [stack.enter_context(fake_node(answer)) for _ in argvs]
        each = [{"RPC_URL": node.url(), "AAVE_ADDRESSES_PROVIDER": PROVIDER, **settings} for node in nodes]
        results = liq_at_once(argvs, env=cli_env, cwd=clean_env, settings=each)
    return list(zip(argvs, nodes, results, strict=True))


def test_a_node_answering_an_error_is_one_line(cli_env, clean_env):
    for argv, _, result in _at_once(NODE_COMMANDS, error_for_everything, cli_env, clean_env):
        assert result.returncode == 3, (argv, result.stderr)
        assert lines(result.stderr) == ["error: the node answered an error: eth_chainId: header not found"], argv


def test_status_tells_a_node_answering_errors_apart(cli_env, clean_env):
    with fake_node() as node:
        result = liq(
            "status", "--json", env=cli_env, cwd=clean_env, RPC_URL=node.url(), AAVE_ADDRESSES_PROVIDER=PROVIDER
        )
    assert result.returncode == 1
    assert '"reachable": true, "error": "the node answered an error: eth_chainId: header not found"' in result.stdout


@pytest.mark.slow  # the client retries 4 times with backoff (~4 s): the commands wait at once, not one after another
def test_an_unreachable_node_is_one_line_and_exit_3(cli_env, clean_env):
    url = f"http://127.0.0.1:{_closed_port()}/v2/KEY"
    env = {**cli_env, "RPC_URL": url, "AAVE_ADDRESSES_PROVIDER": PROVIDER}
    for argv, result in zip(NODE_COMMANDS, liq_at_once(NODE_COMMANDS, env=env, cwd=clean_env), strict=True):
        assert result.returncode == 3, (argv, result.stderr)
        expected = f"error: no usable answer from {url[:-7]} after 5 attempts (ConnectionError)"
        assert lines(result.stderr) == [expected], argv


def test_status_of_an_unreachable_node(cli_env, clean_env):
    url = f"http://127.0.0.1:{_closed_port()}"
    result = liq("status", "--json", env=cli_env, cwd=clean_env, RPC_URL=url, AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert result.returncode == 1
    assert f'"chain": {{"url": "{url}", "reachable": false, "error": "no usable answer' in result.stdout


def test_options_are_checked_before_any_request(cli_env, clean_env):
    argvs = [
        ["scan", "--from-block", "10", "--to-block", "5"],
        ["scan", "--from-block", "0", "--out", "rows.csv"],
        ["backfill", "--from-block", "10", "--to-block", "5"],
    ]
    for argv, node, result in _at_once(argvs, chain_of(31337), cli_env, clean_env):
        assert result.returncode == 2 and len(lines(result.stderr)) == 1, (argv, result.stderr)
        assert result.stderr.startswith("error: --"), (argv, result.stderr)
        assert node.requests == [], argv


def test_chain_id_is_enforced_by_every_command_that_talks_to_a_node(cli_env, clean_env):
    argvs = [*NODE_COMMANDS, ["status", "--json"]]
    for argv, node, result in _at_once(argvs, chain_of(1), cli_env, clean_env, CHAIN_ID="8453"):
        problem = f"CHAIN_ID=8453 but the node at http://127.0.0.1:{node.port} is chain 1"
        if argv[0] == "status":
            assert result.returncode == 1 and f'"error": "{problem}"' in result.stdout, argv
        else:
            assert result.returncode == 2 and lines(result.stderr) == [f"error: {problem}"], (argv, result.stderr)
        assert node.requests == ["eth_chainId"], argv  # checked first, nothing else asked


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8546", "wss://base.example/v2/KEY"])
def test_websocket_urls_are_refused_at_validation(url, cli_env, clean_env):
    result = liq("scan", "--from-block", "0", env=cli_env, cwd=clean_env, RPC_URL=url, AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert result.returncode == 2
    assert lines(result.stderr) == [
        "config error: RPC_URL=(hidden) is not valid: expected an http(s):// URL: the client speaks JSON-RPC over "
        "HTTP only, not ws(s)://"
    ]


def _answers_null(method: str, _params: list) -> tuple[str, object]:
    """A node of chain 31337 that answers null to everything else (a backend without the block yet, a broken
    proxy)."""
    return ("result", hex(31337)) if method == "eth_chainId" else ("result", None)


def test_a_node_answering_null_is_one_line_not_a_traceback(cli_env, clean_env):
    argvs = [["scan", "--from-block", "0"], ["status", "--json"]]
    for argv, _, result in _at_once(argvs, _answers_null, cli_env, clean_env):
        assert "Traceback" not in result.stderr, argv
        if argv[0] == "status":
            assert result.returncode == 1 and "expected a hex quantity, got 'None'" in result.stdout
        else:
            assert result.returncode == 3, result.stderr
            assert lines(result.stderr) == [
                "error: the node answered an error: eth_blockNumber: expected a hex quantity, got 'None'"
            ]
