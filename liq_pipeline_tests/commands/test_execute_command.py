"""`liq execute`: the watcher with the executor attached, run as a user runs it, on a real V3.6 devnet whose users a
price move made liquidatable (its DEX, the project's Liquidator for the devnet operator), and a real Redis.

Dry-run prints attempts and sends nothing; `--live` sends and the next block includes what it sent; the operator key
appears in no output; `--live` without EXECUTION_ENABLED=true is one line and exit 2, and so is an operator key that
cannot send (malformed, not a key, not the Liquidator's operator, without gas money, missing): the line names the
variable, never the value, and comes before anything starts.
"""

from __future__ import annotations

import subprocess

import pytest
import redis

from liq_pipeline.bench.rtt_relay import RttRelay
from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.devnet.accounts import OPERATOR, OPERATOR_KEY
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.txs import Chain
from liq_pipeline.lake.datasets.liquidation_executions import stream_key
from liq_pipeline_tests.commands.clirun import LIQ, liq, wait_for_line
from liq_pipeline_tests.fixtures.liquidatable import shock_txs
from liq_pipeline_tests.fixtures.net import free_port

KEY_HEX = OPERATOR_KEY.removeprefix("0x").lower()


def _armed(chain_v36, make_liquidatable, tmp_path, move: bool):
    """The V3.6 devnet, its DEX, the Liquidator deployed for the operator, automine off (what is sent waits for the
    next block), a Redis of the test's own; `move`: the price move that leaves users below HF 1 mined already (else
    the test sends it itself and leaves it pending: the pre-confirmation lane)."""
    from liq_pipeline.devnet.v36.seed import UserPlan, seed_examples

    net = chain_v36
    plans = (
        UserPlan("execute-half", supplies={"WETH": "10"}, borrows={"USDC": "20500"}),
        UserPlan("execute-full", supplies={"WETH": "3", "WBTC": "0.05"}, borrows={"DAI": "8500"}),
    )
    armed = make_liquidatable(net, list(seed_examples(net.rpc, net.deployment, plans).values()), move=move)
    server = EmbeddedRedis(tmp_path / "r")
    try:
        yield net, armed.liquidator, armed.dex.factory, server.ensure_running().url
    finally:
        server.stop()


@pytest.fixture
def liquidatable(chain_v36, make_liquidatable, tmp_path):
    """Users below HF 1 after a mined price move."""
    yield from _armed(chain_v36, make_liquidatable, tmp_path, move=True)


@pytest.fixture
def healthy_until_moved(chain_v36, make_liquidatable, tmp_path):
    """Users one price move from HF 1: the test sends the move and leaves it pending."""
    yield from _armed(chain_v36, make_liquidatable, tmp_path, move=False)


def _env(cli_env, net, liquidator, factory, redis_url, **extra) -> dict[str, str]:
    return {
        **cli_env,
        "RPC_URL": net.node.url,
        "AAVE_ADDRESSES_PROVIDER": net.market.addresses_provider,
        "AAVE_PROTOCOL_VERSION": net.market.protocol_version,
        "REDIS_URL": redis_url,
        "METRICS_PORT": str(free_port()),
        "EXECUTOR_LIQUIDATOR": liquidator,
        "EXECUTION_DEX_FACTORY": factory,
        **extra,
    }


def _run(net, argv: list[str], env: dict[str, str], cwd, blocks: int, before=None) -> tuple[int, str, str]:
    """`liq <argv>` in a subprocess; once it serves, `before(process, seen)` if given, then mine `blocks` blocks one
    at a time, each after it has processed the previous one. Returns (exit code, stdout, stderr)."""
    pipe = subprocess.PIPE
    process = subprocess.Popen([LIQ, *argv], env=env, cwd=cwd, stdout=pipe, stderr=pipe, text=True)
    seen: list[str] = []
    try:
        wait_for_line(process, "metrics on", seen, timeout=90)
        if before is not None:
            before(process, seen)
        chain = Chain(net.rpc)
        for _ in range(blocks):  # at the chain's pace (the executor plans for a block BLOCK_TIME later)
            wait_for_line(process, f"block {chain.mine(chain.latest_timestamp() + BLOCK_TIME)}:", seen, timeout=90)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    return process.returncode, out, "".join(seen) + err


def _attempts(redis_url: str, pool: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.xlen(stream_key(MarketKeys.for_market(31337, pool)))
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.slow
def test_dry_run_prints_attempts_and_sends_nothing(liquidatable, cli_env, tmp_path):
    net, liquidator, factory, redis_url = liquidatable
    nonce = net.rpc.quantity("eth_getTransactionCount", OPERATOR, "pending")
    env = _env(cli_env, net, liquidator, factory, redis_url, EXECUTOR_PRIVATE_KEY=OPERATOR_KEY)
    with RttRelay(net.node.url, rtt_ms=0) as relay:  # HTTP only, like most hosted endpoints: no pending stream
        env["RPC_URL"] = relay.url
        code, out, err = _run(net, ["execute", "--dry-run", "--max-blocks", "2"], env, tmp_path, blocks=2)
    assert code == 0, err
    assert err.count("no pending stream") == 1 and "sealed blocks only" in err, err  # said once, at start
    assert "dry-run" in err and "LIVE" not in err
    assert "attempt dry_run: block" in err, err
    assert net.rpc.quantity("eth_getTransactionCount", OPERATOR, "pending") == nonce
    assert int(net.rpc.call("txpool_status")["pending"], 16) == 0
    assert _attempts(redis_url, net.market.pool) >= 1  # recorded for the liquidation_executions asset
    assert KEY_HEX not in (out + err).lower()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("channel", ["raw", "auto"])
def test_live_sends_and_the_next_block_includes_it(liquidatable, cli_env, tmp_path, channel):
    net, liquidator, factory, redis_url = liquidatable
    nonce = net.rpc.quantity("eth_getTransactionCount", OPERATOR, "latest")
    env = _env(
        cli_env,
        net,
        liquidator,
        factory,
        redis_url,
        EXECUTION_ENABLED="true",
        EXECUTOR_PRIVATE_KEY=OPERATOR_KEY,
        EXECUTION_CHANNEL=channel,
    )
    code, out, err = _run(net, ["execute", "--live", "--max-blocks", "3"], env, tmp_path, blocks=3)
    assert code == 0, err
    assert "LIVE: sending transactions from" in err
    # auto on anvil 1.7: eth_sendRawTransactionSync, said once at start
    assert err.count("sending with eth_sendRawTransactionSync") == (channel == "auto"), err
    sent = [line for line in err.splitlines() if "attempt sent:" in line]
    assert sent, err
    hashes = [line.split(" tx ")[1].split()[0] for line in sent]
    for tx in hashes:
        receipt = net.rpc.call("eth_getTransactionReceipt", tx)
        assert receipt is not None and receipt["status"] == "0x1", (tx, receipt, err)
        assert receipt["to"].lower() == liquidator.lower()
    assert "attempt included:" in err, err
    assert net.rpc.quantity("eth_getTransactionCount", OPERATOR, "latest") == nonce + len(hashes)
    assert _attempts(redis_url, net.market.pool) >= 2 * len(hashes)  # sent, then included
    assert KEY_HEX not in (out + err).lower()


@pytest.mark.integration
def test_live_without_execution_enabled_is_one_line_and_exit_2(cli_env, tmp_path):
    ran = liq("execute", "--live", env=cli_env, cwd=tmp_path, EXECUTOR_PRIVATE_KEY=OPERATOR_KEY)
    assert ran.returncode == 2
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "EXECUTION_ENABLED=true" in lines[0], ran.stderr
    assert KEY_HEX not in (ran.stdout + ran.stderr).lower()


@pytest.mark.integration
def test_a_missing_liquidator_is_one_line(liquidatable, cli_env, tmp_path):
    net, _liquidator, factory, redis_url = liquidatable
    env = _env(cli_env, net, "", factory, redis_url)
    ran = subprocess.run([LIQ, "execute", "--max-blocks", "1"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 2, ran.stderr
    assert "error: EXECUTOR_LIQUIDATOR is not set" in ran.stderr
    env = _env(cli_env, net, factory, factory, redis_url)  # code there, but not a Liquidator
    ran = subprocess.run([LIQ, "execute", "--max-blocks", "1"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 2 and "not a Liquidator" in ran.stderr, ran.stderr


def test_on_the_devnet_the_venue_defaults_to_what_make_dev_deployed(clean_env, tmp_path):
    from liq_pipeline.commands.execute import _venue_addresses
    from liq_pipeline.commands.runtime import CommandError
    from liq_pipeline.config import load_settings
    from liq_pipeline.devnet.liquidator import ExecutorVenue, save_venue

    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(CommandError, match="make dev"):
        _venue_addresses(settings, on_devnet=True)
    liquidator, factory = "0x" + "ab" * 20, "0x" + "cd" * 20
    save_venue(tmp_path, ExecutorVenue(liquidator, OPERATOR, factory, 7, True))
    assert _venue_addresses(settings, on_devnet=True) == (liquidator, factory, True)
    with pytest.raises(CommandError, match="EXECUTOR_LIQUIDATOR is not set"):  # elsewhere: required
        _venue_addresses(settings, on_devnet=False)
    mine = "0x" + "ef" * 20
    own = _venue_addresses(load_settings(data_dir=tmp_path, executor_liquidator=mine), on_devnet=True)
    assert (own[0].lower(), own[1:]) == (mine, (factory, False))  # a Liquidator of one's own: its inventory setting


# A key `liq execute --live` cannot send with: (setting, value, what the one line says). The value never appears.
UNUSABLE_KEYS = {
    "not-hex": ("EXECUTOR_PRIVATE_KEY", "zz" * 32, "EXECUTOR_PRIVATE_KEY=(hidden) is not valid"),
    "not-a-curve-scalar": ("EXECUTOR_PRIVATE_KEY", "ff" * 32, "EXECUTOR_PRIVATE_KEY is not a valid secp256k1"),
    "not-the-operator": ("EXECUTOR_PRIVATE_KEY", "0x" + "11" * 32, "the Liquidator's operator is"),
    "no-gas-money": ("EXECUTOR_PRIVATE_KEY", OPERATOR_KEY, "holds no native token"),
    "none": ("EXECUTOR_PRIVATE_KEY", "", "no operator key: set EXECUTOR_PRIVATE_KEY"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(UNUSABLE_KEYS))
def test_an_unusable_operator_key_is_one_line_naming_the_variable_and_exit_2(liquidatable, cli_env, tmp_path, case):
    net, liquidator, factory, redis_url = liquidatable
    variable, value, says = UNUSABLE_KEYS[case]
    if case == "no-gas-money":
        net.rpc.call("anvil_setBalance", OPERATOR, "0x0")  # rolled back with the devnet after the test
    nonce = net.rpc.quantity("eth_getTransactionCount", OPERATOR, "pending")
    env = _env(cli_env, net, liquidator, factory, redis_url, EXECUTION_ENABLED="true", **{variable: value})
    argv = [LIQ, "execute", "--live", "--max-blocks", "1"]
    ran = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    # one line, said before anything starts (no watcher start-up lines first), naming the variable
    assert len(lines) == 1 and says in lines[0] and variable in lines[0], ran.stderr
    bare = value.lower().removeprefix("0x")
    assert not bare or bare not in (ran.stdout + ran.stderr).lower()
    assert net.rpc.quantity("eth_getTransactionCount", OPERATOR, "pending") == nonce


@pytest.mark.integration
@pytest.mark.slow
def test_live_acts_on_a_pending_price_update_before_its_block(healthy_until_moved, cli_env, tmp_path):
    """The users are healthy until a price move that waits in anvil's pool: `liq execute --live` sees it in the
    node's pending stream and sends behind it; the move's own block holds the update, then our liquidations."""
    net, liquidator, factory, redis_url = healthy_until_moved
    env = _env(
        cli_env, net, liquidator, factory, redis_url, EXECUTION_ENABLED="true", EXECUTOR_PRIVATE_KEY=OPERATOR_KEY
    )
    chain = Chain(net.rpc)
    updates: list[str] = []

    def move(process, seen) -> None:
        wait_for_line(process, "pending trigger on", seen, timeout=30)
        updates.extend(chain.send(shock_txs(net)))  # pending: not mined
        wait_for_line(process, "after the pending price update was seen", seen, timeout=30)

    code, out, err = _run(net, ["execute", "--live", "--max-blocks", "2"], env, tmp_path, blocks=2, before=move)
    assert code == 0, err
    assert err.count("pending stream: eth_subscribe newPendingTransactions") == 1, err
    sent = [line for line in err.splitlines() if "attempt sent:" in line and "pending price update" in line]
    assert sent, err
    hashes = [line.split(" tx ")[1].split()[0] for line in sent]
    receipts = [net.rpc.call("eth_getTransactionReceipt", tx) for tx in hashes]
    assert all(r is not None and r["status"] == "0x1" for r in receipts), (receipts, err)
    first = net.rpc.call("eth_getTransactionReceipt", updates[0])
    assert {r["blockNumber"] for r in receipts} == {first["blockNumber"]}  # the update's own block ...
    last_update = max(int(net.rpc.call("eth_getTransactionReceipt", h)["transactionIndex"], 16) for h in updates)
    assert min(int(r["transactionIndex"], 16) for r in receipts) > last_update  # ... right behind it
    assert "attempt included:" in err, err
    assert KEY_HEX not in (out + err).lower()
