"""RPC_URL and AAVE_ADDRESSES_PROVIDER both empty ("Empty = devnet"): every command that needs a node uses the devnet
running for its DATA_DIR and says so in one line; with no devnet running, one line says what to set or start.

The commands of a group run at once (a module fixture each, `liq_at_once`: each in a home of its own), every test
checks its own results: one `liq` start-up after another was most of this module's time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import settings_fields
from liq_pipeline.devnet import anvil
from liq_pipeline.devnet.paths import market_json_path
from liq_pipeline_tests.commands.clirun import LIQ, lines, liq_at_once
from liq_pipeline_tests.fixtures.devnet import rolled_back

PROVIDER = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"
# the cases of the tests without a devnet (run at once by the without_devnet fixture)
NO_DEVNET_ARGVS = [["scan", "--from-block", "0"], ["watch"], ["backfill", "--from-block", "0", "--to-block", "10"]]
ONE_OF_THE_TWO = {
    "RPC_URL": ("AAVE_ADDRESSES_PROVIDER", "http://127.0.0.1:8545"),
    "AAVE_ADDRESSES_PROVIDER": ("RPC_URL", PROVIDER),
}
BAD_SIMULATOR_OPTIONS = [
    (
        ["--competitor", "svr"],
        "error: --pending-window-ms 0 is not valid: expected > 0 with competitor='svr' (it acts between an update "
        "and its block's seal)",
    ),
]

# name: (argv, settings added to the environment, the home's .env or None)
Runs = dict[str, tuple[list[str], dict[str, str], str | None]]
Ran = dict[str, tuple[subprocess.CompletedProcess[str], Path]]  # name: (result, the home it ran in)


def _cli_env() -> dict[str, str]:
    """As the cli_env fixture (which is per test): no liq-pipeline variable inherited."""
    return {k: v for k, v in os.environ.items() if k not in settings_fields()}


def _run_at_once(runs: Runs, cwd: Path, devnet=None) -> Ran:
    """Every run at once, in homes `cwd`/0, `cwd`/1, ... (with the devnet's pid file and market.json in ./data, as
    the devnet_home fixture writes them, when `devnet` is given)."""
    names = list(runs)
    for index, name in enumerate(names):
        home = cwd / str(index)
        home.mkdir(parents=True)
        if devnet is not None:
            anvil.write_pid_file(home / "data", devnet.node)
            devnet.market.save(market_json_path(home / "data"))
        if runs[name][2] is not None:
            (home / ".env").write_text(runs[name][2])
    results = liq_at_once(
        [runs[name][0] for name in names], env=_cli_env(), cwd=cwd, settings=[runs[name][1] for name in names]
    )
    return {name: (result, cwd / str(index)) for index, (name, result) in enumerate(zip(names, results, strict=True))}


@pytest.fixture(scope="module")
def on_the_devnet(devnet, tmp_path_factory) -> Iterator[tuple[Ran, int]]:
    """The commands of the devnet tests below (but watch, which mines), at once against the session devnet, each in
    a home whose ./data is that devnet's (as devnet_home); and the chain's head they saw. They only read the chain:
    rolled back all the same, as the chain fixture does."""
    cwd = tmp_path_factory.mktemp("on_the_devnet")
    scan = ["scan", "--from-block", "0", "--json"]
    runs: Runs = {
        "status": (["status", "--json"], {}, None),
        "scan": (scan, {}, None),
        "refused": (scan, {"AAVE_PROTOCOL_VERSION": "3.6"}, None),
        "agreed": (["status", "--json"], {"AAVE_PROTOCOL_VERSION": "3.0"}, None),
        # a .env names a version for real chains: not an error
        "from_file": (scan, {}, "AAVE_PROTOCOL_VERSION=3.6\n"),
        "backfill": (["backfill", "--from-block", "0", "--to-block", "10"], {}, None),
    }
    try:
        with rolled_back(devnet.rpc):
            head = int(devnet.rpc.call("eth_blockNumber"), 16)
            ran = _run_at_once(runs, cwd, devnet)
        yield ran, head
    finally:
        for index in range(len(runs)):  # the embedded Redis a command started there (as devnet_home)
            EmbeddedRedis(cwd / str(index) / "data" / "redis").stop()


@pytest.fixture(scope="module")
def without_devnet(tmp_path_factory) -> Ran:
    """The commands of the tests without a devnet below, at once, each in an empty home of its own."""
    runs: Runs = {" ".join(argv): (argv, {}, None) for argv in NO_DEVNET_ARGVS}
    runs["status"] = (["status", "--json"], {}, None)
    for given, (_, value) in ONE_OF_THE_TWO.items():
        runs[f"given {given}"] = (["scan", "--from-block", "0"], {given: value}, None)
    for options, _ in BAD_SIMULATOR_OPTIONS:
        runs[" ".join(["simulate", *options])] = (["devnet", "simulate", "--blocks", "1", *options], {}, None)
    return _run_at_once(runs, tmp_path_factory.mktemp("without_devnet"))


def _announced(result: subprocess.CompletedProcess, chain) -> None:
    """Exactly one line says which devnet (DATA_DIR is ./data, the default, in the test's working directory)."""
    provider = chain.market.addresses_provider
    expected = f"using the devnet of ./data ({chain.node.url}, provider {provider}, Aave V3.0)"
    assert [line for line in lines(result.stderr) if line.startswith("using the devnet")] == [expected]


@pytest.mark.integration
def test_status_and_scan_use_the_running_devnet(on_the_devnet, devnet):
    ran, _ = on_the_devnet
    chain = devnet
    (status, _), (scan, _) = ran["status"], ran["scan"]
    _announced(status, chain)
    report = json.loads(status.stdout)
    assert report["chain"]["reachable"] and report["chain"]["url"] == chain.node.url
    assert report["chain"]["market"] == {
        "found": True,
        "addresses_provider": chain.market.addresses_provider,
        "pool": chain.market.pool,
        "reserves": len(chain.market.reserves),
    }
    assert scan.returncode == 0, scan.stderr
    _announced(scan, chain)
    assert set(chain.users) <= {json.loads(row)["user"] for row in lines(scan.stdout)}  # every seeded borrower


@pytest.mark.integration
def test_the_devnets_protocol_version_is_used_and_a_contrary_setting_refused(on_the_devnet, devnet):
    """The devnet's rounding rules are a fact of its market.json: a command uses them, never a default of another
    version's; an explicit AAVE_PROTOCOL_VERSION that contradicts them is a mistake, said in one line."""
    ran, _ = on_the_devnet
    chain = devnet
    (refused, _), (agreed, _), (from_file, home) = ran["refused"], ran["agreed"], ran["from_file"]
    assert refused.returncode == 2
    assert lines(refused.stderr) == [
        "error: AAVE_PROTOCOL_VERSION=3.6 but the devnet of ./data runs Aave V3.0: unset it (the devnet's version "
        "is used) or set it to 3.0"
    ]
    _announced(agreed, chain)
    assert (home / ".env").read_text() == "AAVE_PROTOCOL_VERSION=3.6\n"  # a .env names a version: not an error
    assert from_file.returncode == 0, from_file.stderr
    _announced(from_file, chain)


@pytest.mark.integration
def test_backfill_uses_the_running_devnet(on_the_devnet, devnet):
    ran, head = on_the_devnet
    chain = devnet
    result, _ = ran["backfill"]
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


@pytest.mark.parametrize("argv", NO_DEVNET_ARGVS, ids=" ".join)
def test_no_devnet_and_no_settings_is_one_line(argv, without_devnet):
    result, home = without_devnet[" ".join(argv)]
    assert result.args[1:] == argv
    assert result.returncode == 2, result.stderr
    assert lines(result.stderr) == [
        "error: RPC_URL and AAVE_ADDRESSES_PROVIDER are not set and no devnet runs for DATA_DIR=./data: start one "
        "with `liq devnet up` (or `make dev`), or set both to use another chain"
    ]
    assert not (home / "data").exists()  # looking for a devnet creates nothing


def test_status_without_devnet_or_settings(without_devnet):
    result, _ = without_devnet["status"]
    assert result.returncode == 1
    chain = json.loads(result.stdout)["chain"]
    assert chain["reachable"] is False and "liq devnet up" in chain["error"] and "RPC_URL" in chain["error"]


@pytest.mark.parametrize(("given", "missing"), [(given, missing) for given, (missing, _) in ONE_OF_THE_TWO.items()])
def test_one_of_the_two_is_named(given, missing, without_devnet):
    result, _ = without_devnet[f"given {given}"]
    assert result.args[1:] == ["scan", "--from-block", "0"]
    assert result.returncode == 2, result.stderr
    assert lines(result.stderr) == [
        f"error: {missing} is not set but {given} is: set both (a node and its market's PoolAddressesProvider), "
        "or neither to use the devnet running for DATA_DIR"
    ]


@pytest.mark.parametrize(("options", "expected"), BAD_SIMULATOR_OPTIONS)
def test_a_bad_simulator_option_is_one_line_naming_it(options, expected, without_devnet):
    result, _ = without_devnet[" ".join(["simulate", *options])]
    assert result.returncode == 2, result.stderr
    assert lines(result.stderr) == [expected]
