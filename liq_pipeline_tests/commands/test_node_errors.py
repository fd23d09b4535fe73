"""A node that answers errors, cannot be reached, or is of another chain; options checked before any request;
ws(s):// refused. Each ends in one line and an exit code, never a traceback (exit codes: commands/runtime.py)."""

from __future__ import annotations

import socket

import pytest

from liq_pipeline_tests.commands.clirun import chain_of, fake_node, lines, liq

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


@pytest.mark.parametrize("argv", NODE_COMMANDS, ids=" ".join)
def test_a_node_answering_an_error_is_one_line(argv, cli_env, clean_env):
    with fake_node() as node:
        result = liq(*argv, env=cli_env, cwd=clean_env, RPC_URL=node.url(), AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert result.returncode == 3
    assert lines(result.stderr) == ["error: the node answered an error: eth_chainId: header not found"]


def test_status_tells_a_node_answering_errors_apart(cli_env, clean_env):
    with fake_node() as node:
        result = liq(
            "status", "--json", env=cli_env, cwd=clean_env, RPC_URL=node.url(), AAVE_ADDRESSES_PROVIDER=PROVIDER
        )
    assert result.returncode == 1
    assert '"reachable": true, "error": "the node answered an error: eth_chainId: header not found"' in result.stdout


@pytest.mark.slow  # the client retries 4 times with backoff (~4 s)
@pytest.mark.parametrize("argv", NODE_COMMANDS, ids=" ".join)
def test_an_unreachable_node_is_one_line_and_exit_3(argv, cli_env, clean_env):
    url = f"http://127.0.0.1:{_closed_port()}/v2/KEY"
    result = liq(*argv, env=cli_env, cwd=clean_env, RPC_URL=url, AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert result.returncode == 3
    assert lines(result.stderr) == [f"error: no usable answer from {url[:-7]} after 5 attempts (ConnectionError)"]


def test_status_of_an_unreachable_node(cli_env, clean_env):
    url = f"http://127.0.0.1:{_closed_port()}"
    result = liq("status", "--json", env=cli_env, cwd=clean_env, RPC_URL=url, AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert result.returncode == 1
    assert f'"chain": {{"url": "{url}", "reachable": false, "error": "no usable answer' in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "--from-block", "10", "--to-block", "5"],
        ["scan", "--from-block", "0", "--out", "rows.csv"],
        ["backfill", "--from-block", "10", "--to-block", "5"],
    ],
    ids=" ".join,
)
def test_options_are_checked_before_any_request(argv, cli_env, clean_env):
    with fake_node(chain_of(31337)) as node:
        result = liq(*argv, env=cli_env, cwd=clean_env, RPC_URL=node.url(), AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert result.returncode == 2 and len(lines(result.stderr)) == 1 and result.stderr.startswith("error: --")
    assert node.requests == []


@pytest.mark.parametrize("argv", [*NODE_COMMANDS, ["status", "--json"]], ids=" ".join)
def test_chain_id_is_enforced_by_every_command_that_talks_to_a_node(argv, cli_env, clean_env):
    with fake_node(chain_of(1)) as node:
        result = liq(
            *argv, env=cli_env, cwd=clean_env, RPC_URL=node.url(), AAVE_ADDRESSES_PROVIDER=PROVIDER, CHAIN_ID="8453"
        )
    problem = f"CHAIN_ID=8453 but the node at http://127.0.0.1:{node.port} is chain 1"
    if argv[0] == "status":
        assert result.returncode == 1 and f'"error": "{problem}"' in result.stdout
    else:
        assert result.returncode == 2 and lines(result.stderr) == [f"error: {problem}"]
    assert node.requests == ["eth_chainId"]  # checked first, nothing else asked


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


@pytest.mark.parametrize("argv", [["scan", "--from-block", "0"], ["status", "--json"]], ids=" ".join)
def test_a_node_answering_null_is_one_line_not_a_traceback(argv, cli_env, clean_env):
    with fake_node(_answers_null) as node:
        result = liq(*argv, env=cli_env, cwd=clean_env, RPC_URL=node.url(), AAVE_ADDRESSES_PROVIDER=PROVIDER)
    assert "Traceback" not in result.stderr
    if argv[0] == "status":
        assert result.returncode == 1 and "expected a hex quantity, got 'None'" in result.stdout
    else:
        assert result.returncode == 3
        assert lines(result.stderr) == [
            "error: the node answered an error: eth_blockNumber: expected a hex quantity, got 'None'"
        ]
