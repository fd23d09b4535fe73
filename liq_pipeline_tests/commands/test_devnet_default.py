"""RPC_URL and AAVE_ADDRESSES_PROVIDER both empty ("Empty = devnet"): every command that needs a node uses the devnet
running for its DATA_DIR and says so in one line; with no devnet running, one line says what to set or start."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from liq_pipeline_tests.commands.clirun import LIQ, lines, liq

PROVIDER = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"


def _announced(result: subprocess.CompletedProcess, chain) -> None:
    """Exactly one line says which devnet (DATA_DIR is ./data, the default, in the test's working directory)."""
    provider = chain.market.addresses_provider
    expected = f"using the devnet of ./data ({chain.node.url}, provider {provider}, Aave V3.0)"
    assert [line for line in lines(result.stderr) if line.startswith("using the devnet")] == [expected]


@pytest.mark.integration
def test_status_and_scan_use_the_running_devnet(devnet_home, chain, cli_env):
    cwd = devnet_home.parent
    status = liq("status", "--json", env=cli_env, cwd=cwd)
    _announced(status, chain)
    report = json.loads(status.stdout)
    assert report["chain"]["reachable"] and report["chain"]["url"] == chain.node.url
    assert report["chain"]["market"] == {
        "found": True,
        "addresses_provider": chain.market.addresses_provider,
        "pool": chain.market.pool,
        "reserves": len(chain.market.reserves),
    }
    scan = liq("scan", "--from-block", "0", "--json", env=cli_env, cwd=cwd)
    assert scan.returncode == 0, scan.stderr
    _announced(scan, chain)
    assert set(chain.users) <= {json.loads(row)["user"] for row in lines(scan.stdout)}  # every seeded borrower


@pytest.mark.integration
def test_the_devnets_protocol_version_is_used_and_a_contrary_setting_refused(devnet_home, chain, cli_env):
    """The devnet's rounding rules are a fact of its market.json: a command uses them, never a default of another
    version's; an explicit AAVE_PROTOCOL_VERSION that contradicts them is a mistake, said in one line."""
    cwd = devnet_home.parent
    refused = liq("scan", "--from-block", "0", "--json", env=cli_env, cwd=cwd, AAVE_PROTOCOL_VERSION="3.6")
    assert refused.returncode == 2
    assert lines(refused.stderr) == [
        "error: AAVE_PROTOCOL_VERSION=3.6 but the devnet of ./data runs Aave V3.0: unset it (the devnet's version "
        "is used) or set it to 3.0"
    ]
    agreed = liq("status", "--json", env=cli_env, cwd=cwd, AAVE_PROTOCOL_VERSION="3.0")
    _announced(agreed, chain)
    (cwd / ".env").write_text("AAVE_PROTOCOL_VERSION=3.6\n")  # a .env names a version for real chains: not an error
    from_file = liq("scan", "--from-block", "0", "--json", env=cli_env, cwd=cwd)
    assert from_file.returncode == 0, from_file.stderr
    _announced(from_file, chain)


@pytest.mark.integration
def test_backfill_uses_the_running_devnet(devnet_home, chain, cli_env):
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    result = liq("backfill", "--from-block", "0", "--to-block", "10", env=cli_env, cwd=devnet_home.parent)
    _announced(result, chain)
    assert result.returncode == 2  # the devnet's head is too low for range 0-999 to be final: said in one line
    assert lines(result.stderr)[-1].endswith(
        f"the chain is at {head} and CONFIRMATIONS=10 (last final block {head - 10})"
    )


@pytest.mark.integration
@pytest.mark.slow
def test_watch_follows_the_running_devnet(devnet_home, chain, cli_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**cli_env, "METRICS_PORT": str(port)}
    process = subprocess.Popen(
        [LIQ, "watch", "--max-blocks", "1", "--no-redis"],
        env=env,
        cwd=devnet_home.parent,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        deadline = time.monotonic() + 60
        while not any("metrics on" in line for line in seen) and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
        assert any("metrics on" in line for line in seen), "".join(seen)
        chain.rpc.call("evm_mine")
        process.wait(60)
        seen += process.stderr.readlines()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, "".join(seen)
    expected = f"using the devnet of ./data ({chain.node.url}, provider {chain.market.addresses_provider}, Aave V3.0)\n"
    assert seen[0] == expected
    assert any(" INFO liq_pipeline.watch: block " in line for line in seen)


@pytest.mark.parametrize(
    "argv",
    [["scan", "--from-block", "0"], ["watch"], ["backfill", "--from-block", "0", "--to-block", "10"]],
    ids=" ".join,
)
def test_no_devnet_and_no_settings_is_one_line(argv, cli_env, clean_env):
    result = liq(*argv, env=cli_env, cwd=clean_env)
    assert result.returncode == 2
    assert lines(result.stderr) == [
        "error: RPC_URL and AAVE_ADDRESSES_PROVIDER are not set and no devnet runs for DATA_DIR=./data: start one "
        "with `liq devnet up` (or `make dev`), or set both to use another chain"
    ]
    assert not (clean_env / "data").exists()  # looking for a devnet creates nothing


def test_status_without_devnet_or_settings(cli_env, clean_env):
    result = liq("status", "--json", env=cli_env, cwd=clean_env)
    assert result.returncode == 1
    chain = json.loads(result.stdout)["chain"]
    assert chain["reachable"] is False and "liq devnet up" in chain["error"] and "RPC_URL" in chain["error"]


@pytest.mark.parametrize(
    ("given", "missing"), [("RPC_URL", "AAVE_ADDRESSES_PROVIDER"), ("AAVE_ADDRESSES_PROVIDER", "RPC_URL")]
)
def test_one_of_the_two_is_named(given, missing, cli_env, clean_env):
    value = {"RPC_URL": "http://127.0.0.1:8545", "AAVE_ADDRESSES_PROVIDER": PROVIDER}[given]
    result = liq("scan", "--from-block", "0", env=cli_env, cwd=clean_env, **{given: value})
    assert result.returncode == 2
    assert lines(result.stderr) == [
        f"error: {missing} is not set but {given} is: set both (a node and its market's PoolAddressesProvider), "
        "or neither to use the devnet running for DATA_DIR"
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--competitor", "svr"],
            "error: --pending-window-ms 0 is not valid: expected > 0 with competitor='svr' (it acts between an update "
            "and its block's seal)",
        ),
    ],
)
def test_a_bad_simulator_option_is_one_line_naming_it(options, expected, cli_env, clean_env):
    result = liq("devnet", "simulate", "--blocks", "1", *options, env=cli_env, cwd=clean_env)
    assert result.returncode == 2
    assert lines(result.stderr) == [expected]
