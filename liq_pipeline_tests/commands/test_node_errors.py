"""A node that answers errors, cannot be reached, or is of another chain; options checked before any request;
ws(s):// refused. Each ends in one line and an exit code, never a traceback (exit codes: commands/runtime.py).
The commands of a test are independent: each test runs them at once (`liq_at_once`), each against a node of its
own, a case's argv named in its assertions' messages."""

from __future__ import annotations

import socket

import pytest

from liq_pipeline_tests.commands.clirun import chain_of, fake_nodes, lines, liq_at_once

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
    with fake_nodes(len(argvs), answer) as nodes:
        each = [{"RPC_URL": node.url(), "AAVE_ADDRESSES_PROVIDER": PROVIDER, **settings} for node in nodes]
        results = liq_at_once(argvs, env=cli_env, cwd=clean_env, settings=each)
    return list(zip(argvs, nodes, results, strict=True))


def test_a_node_answering_an_error_is_one_line_and_status_tells_it_from_an_unreachable_one(cli_env, clean_env):
    unreachable = f"http://127.0.0.1:{_closed_port()}"
    with fake_nodes(len(NODE_COMMANDS) + 1) as nodes:
        argvs = [*NODE_COMMANDS, ["status", "--json"], ["status", "--json"]]
        urls = [*(node.url() for node in nodes), unreachable]  # the last status: a node that cannot be reached
        each = [{"RPC_URL": url, "AAVE_ADDRESSES_PROVIDER": PROVIDER} for url in urls]
        *results, erring, unreached = liq_at_once(argvs, env=cli_env, cwd=clean_env, settings=each)
    for argv, result in zip(NODE_COMMANDS, results, strict=True):
        assert result.returncode == 3, (argv, result.stderr)
        assert lines(result.stderr) == ["error: the node answered an error: eth_chainId: header not found"], argv
    # status tells a node answering errors apart...
    assert erring.returncode == 1, ("status of a node answering errors", erring.stdout, erring.stderr)
    assert '"reachable": true, "error": "the node answered an error: eth_chainId: header not found"' in erring.stdout
    # ...from one that cannot be reached
    assert unreached.returncode == 1, ("status of an unreachable node", unreached.stdout, unreached.stderr)
    expected = f'"chain": {{"url": "{unreachable}", "reachable": false, "error": "no usable answer'
    assert expected in unreached.stdout, ("status of an unreachable node", unreached.stdout)


@pytest.mark.slow  # the client retries 4 times with backoff (~4 s): the commands wait at once, not one after another
def test_an_unreachable_node_is_one_line_and_exit_3(cli_env, clean_env):
    url = f"http://127.0.0.1:{_closed_port()}/v2/KEY"
    env = {**cli_env, "RPC_URL": url, "AAVE_ADDRESSES_PROVIDER": PROVIDER}
    for argv, result in zip(NODE_COMMANDS, liq_at_once(NODE_COMMANDS, env=env, cwd=clean_env), strict=True):
        assert result.returncode == 3, (argv, result.stderr)
        expected = f"error: no usable answer from {url[:-7]} after 5 attempts (ConnectionError)"
        assert lines(result.stderr) == [expected], argv


WS_URLS = ["ws://127.0.0.1:8546", "wss://base.example/v2/KEY"]


def test_options_and_websocket_urls_are_checked_before_any_request(cli_env, clean_env):
    argvs = [
        ["scan", "--from-block", "10", "--to-block", "5"],
        ["scan", "--from-block", "0", "--out", "rows.csv"],
        ["backfill", "--from-block", "10", "--to-block", "5"],
    ]
    with fake_nodes(len(argvs), chain_of(31337)) as nodes:
        # and `liq scan --from-block 0` with a ws(s):// RPC_URL, refused at validation: one run per URL
        urls = [*(node.url() for node in nodes), *WS_URLS]
        each = [{"RPC_URL": url, "AAVE_ADDRESSES_PROVIDER": PROVIDER} for url in urls]
        scans = [["scan", "--from-block", "0"]] * len(WS_URLS)
        results = liq_at_once([*argvs, *scans], env=cli_env, cwd=clean_env, settings=each)
    for argv, node, result in zip(argvs, nodes, results[: len(argvs)], strict=True):
        assert result.returncode == 2 and len(lines(result.stderr)) == 1, (argv, result.stderr)
        assert result.stderr.startswith("error: --"), (argv, result.stderr)
        assert node.requests == [], argv
    for url, result in zip(WS_URLS, results[len(argvs) :], strict=True):
        assert result.returncode == 2, (url, result.stderr)
        assert lines(result.stderr) == [
            "config error: RPC_URL=(hidden) is not valid: expected an http(s):// URL: the client speaks JSON-RPC over "
            "HTTP only, not ws(s)://"
        ], url


def test_chain_id_is_enforced_by_every_command_that_talks_to_a_node(cli_env, clean_env):
    argvs = [*NODE_COMMANDS, ["status", "--json"]]
    for argv, node, result in _at_once(argvs, chain_of(1), cli_env, clean_env, CHAIN_ID="8453"):
        problem = f"CHAIN_ID=8453 but the node at http://127.0.0.1:{node.port} is chain 1"
        if argv[0] == "status":
            assert result.returncode == 1 and f'"error": "{problem}"' in result.stdout, argv
        else:
            assert result.returncode == 2 and lines(result.stderr) == [f"error: {problem}"], (argv, result.stderr)
        assert node.requests == ["eth_chainId"], argv  # checked first, nothing else asked


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
