"""The machinery: anvil's lifecycle and pid file, library linking, the local compiler, state dumps, the CLI."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import socket
from collections import Counter

import psutil
import pytest

from liq_pipeline.devnet import anvil, artifacts, paths, state_cache
from liq_pipeline.devnet.errors import DevnetError
from liq_pipeline.devnet.paths import BUILD_DIR_VARIABLE
from liq_pipeline.devnet.rpc import Rpc
from liq_pipeline.devnet.solc import compile_contract
from liq_pipeline_tests.commands.clirun import liq_devnet

pytestmark = pytest.mark.integration

# Borrow(address indexed reserve, address user, address indexed onBehalfOf, uint256, uint8, uint256, uint16 indexed)
BORROW_TOPIC = "0xb3d084820fb1a9decffb176436bd02558d15fac9b0ddfed8c465bc7359d7dce0"


def test_anvil_starts_answers_and_stops_without_orphans(tmp_path):
    node = anvil.start()
    try:
        assert node.host == "127.0.0.1"
        with Rpc(node.url) as rpc:
            assert int(rpc.call("eth_chainId"), 16) == 31337
        listening = {c.laddr for c in psutil.Process(node.pid).net_connections() if c.status == psutil.CONN_LISTEN}
        assert {(addr.ip, addr.port) for addr in listening} == {("127.0.0.1", node.port)}
        anvil.write_pid_file(tmp_path, node)
        found = anvil.running_node(tmp_path)
        assert found is not None and (found.pid, found.port) == (node.pid, node.port)
    finally:
        stopped = anvil.stop_recorded(tmp_path)
    assert stopped is not None and stopped.pid == node.pid
    assert not psutil.pid_exists(node.pid) or psutil.Process(node.pid).status() == psutil.STATUS_ZOMBIE
    assert anvil.running_node(tmp_path) is None
    assert not anvil.pid_file(tmp_path).exists()


def test_a_stale_pid_file_is_ignored(tmp_path):
    anvil.pid_file(tmp_path).write_text(json.dumps({"pid": os.getpid(), "port": 1}))  # pytest is no anvil
    assert anvil.running_node(tmp_path) is None
    assert not anvil.pid_file(tmp_path).exists()


def test_a_busy_port_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(DevnetError, match=f"port {port} on 127.0.0.1 is busy"):
            anvil.start(port)


def test_missing_node_modules_says_how_to_fix_it(monkeypatch, tmp_path):
    paths.node_modules.cache_clear()
    monkeypatch.setattr(paths, "_PROJECT_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(DevnetError, match="make setup"):
            paths.anvil_binary()
    finally:
        paths.node_modules.cache_clear()


def test_libraries_are_linked_at_byte_offsets():
    pool = artifacts.load("Pool")
    assert pool.libraries == [
        "BorrowLogic",
        "BridgeLogic",
        "EModeLogic",
        "FlashLoanLogic",
        "LiquidationLogic",
        "PoolLogic",
        "SupplyLogic",
    ]
    addresses = {name: f"0x{index + 1:040x}" for index, name in enumerate(pool.libraries)}
    code = pool.linked(addresses)
    assert "__$" not in code and len(code) == len(pool.bytecode)
    for name, refs in pool.link_references["contracts/protocol/libraries/logic/BorrowLogic.sol"].items():
        for ref in refs:
            start = 2 + 2 * ref["start"]
            assert code[start : start + 40] == addresses[name][2:]
    with pytest.raises(DevnetError, match="needs library"):
        pool.linked({k: v for k, v in addresses.items() if k != "PoolLogic"})


def test_the_price_feed_compiles_reproducibly(devnet, tmp_path, monkeypatch):
    cached = compile_contract("DevnetAggregator", devnet.data_dir)
    monkeypatch.delenv(BUILD_DIR_VARIABLE)  # the data dir's own build folder, as outside the test suite
    fresh = compile_contract("DevnetAggregator", tmp_path)  # a new data dir: compiled again by solcjs
    assert list((tmp_path / "devnet" / "build").glob("DevnetAggregator.*.json"))
    assert fresh.bytecode == cached.bytecode and fresh.abi == cached.abi
    weth = devnet.market.by_symbol["WETH"]
    runtime = devnet.rpc.call("eth_getCode", weth.aggregator, "latest")
    assert len(runtime) > 1_000  # deployed from this source


def test_strip_traces_keeps_everything_but_traces():
    dump = (
        b'{"transactions":[{"info":{"transaction_hash":"0x1","traces":[{"a":[1,[2]]}],"exit":"Return","out":"0x"},'
        b'"receipt":{"logs":[1]}},{"info":{"traces":[],"exit":"Revert"}}]}'
    )
    slim = state_cache.strip_traces(dump)
    data = json.loads(slim)
    assert [t["info"]["traces"] for t in data["transactions"]] == [[], []]
    assert data["transactions"][0]["receipt"] == {"logs": [1]}
    assert data["transactions"][1]["info"]["exit"] == "Revert"
    with pytest.raises(ValueError):
        state_cache.strip_traces(b'{"traces":[{"x":1}], "exit": 1}')


def test_the_cached_state_reloads_with_the_chain_clock(devnet):
    node, market = state_cache.start_from(devnet.entry)
    try:
        with Rpc(node.url) as rpc:
            latest = rpc.call("eth_getBlockByNumber", "latest", False)
            assert rpc.call("eth_getCode", market.pool, "latest") != "0x"
            assert market.rpc_url == node.url
            rpc.call("evm_mine")
            mined = rpc.call("eth_getBlockByNumber", "latest", False)
            assert int(mined["timestamp"], 16) == int(latest["timestamp"], 16) + 2  # not the wall clock
            logs = rpc.call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": market.pool})
            assert len(logs) > len(devnet.users)  # history (blocks, receipts, logs) survives the dump
    finally:
        anvil.stop(node)
    assert devnet.entry.size_bytes() < 2_000_000


def test_the_build_collects_history_the_node_drops(build_cache, monkeypatch):
    """The build node keeps few blocks' transactions (memory at 100k borrowers): the dump is stitched from
    collections along the way and must still hold every block, transaction and log."""
    monkeypatch.setattr(state_cache, "HARVEST_EVERY", 2)
    monkeypatch.setattr(state_cache, "KEEP_BLOCKS", 3)
    entry = state_cache.build(build_cache, 600, 1, protocol="3.0")  # 3 chunks of 250: more blocks than the node keeps
    dump = json.loads(gzip.decompress(entry.state_path.read_bytes()))
    numbers = sorted(int(block["header"]["number"], 16) for block in dump["blocks"])
    assert numbers == list(range(dump["best_block_number"] + 1)) and len(numbers) > 2 * 3
    # every block's transactions, once (a body's "hash" is not the impersonated hash: count per block)
    mined = Counter({int(block["header"]["number"], 16): len(block["transactions"]) for block in dump["blocks"]})
    assert Counter(tx["block_number"] for tx in dump["transactions"]) == +mined
    assert len({tx["info"]["transaction_hash"] for tx in dump["transactions"]}) == len(dump["transactions"]) > 2_400
    assert all(tx["info"]["traces"] == [] for tx in dump["transactions"])
    node, market = state_cache.start_from(entry)
    try:
        with Rpc(node.url) as rpc:
            logs = rpc.call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": market.pool})
            borrowers = {"0x" + log["topics"][2][-40:] for log in logs if log["topics"][0] == BORROW_TOPIC}
            assert borrowers == {user.lower() for user in state_cache.read_borrowers(entry).users}
    finally:
        anvil.stop(node)


def test_a_block_dropped_before_collection_fails_the_build(build_cache, monkeypatch):
    monkeypatch.setattr(state_cache, "HARVEST_EVERY", 4)
    monkeypatch.setattr(state_cache, "KEEP_BLOCKS", 2)
    with pytest.raises(DevnetError, match="lost its transactions"):
        state_cache.build(build_cache, 1000, 1, protocol="3.0")


def test_cli_reports_a_busy_port_in_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        result = liq_devnet(["up", "--port", str(holder.getsockname()[1]), "--no-cache"], tmp_path)
    assert result.returncode == 2
    assert "busy" in result.stderr and result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert not (tmp_path / "devnet" / "anvil.json").exists()


def test_cli_help_for_every_command():
    from typer.testing import CliRunner

    from liq_pipeline.commands.devnet import app

    runner = CliRunner()
    for command in ("up", "down", "status", "seed", "simulate", "price", "advance"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_mine_blocks_mines_that_many_blocks_block_time_apart():
    from liq_pipeline.devnet.actions import mine_blocks

    node = anvil.start()
    try:
        with Rpc(node.url) as rpc:
            before = rpc.call("eth_getBlockByNumber", "latest", False)
            assert mine_blocks(rpc, 0) == 0
            assert mine_blocks(rpc, 5, block_time=3) == 5
            assert mine_blocks(rpc, 1) == 6
            stamps = [int(rpc.call("eth_getBlockByNumber", hex(n), False)["timestamp"], 16) for n in range(7)]
    finally:
        anvil.stop(node)
    assert stamps[0] == int(before["timestamp"], 16)
    assert [b - a for a, b in itertools.pairwise(stamps)] == [3, 3, 3, 3, 3, 2]
