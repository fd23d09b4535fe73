"""`liq watch` stopped by SIGTERM (what `liq dev` sends) or Ctrl-C: it finishes the block in hand and leaves a
positions snapshot, stamped with the block's hash, for the next start."""

from __future__ import annotations

import signal
import subprocess

import pytest

from liq_pipeline.cache import open_market_cache
from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import load_settings
from liq_pipeline_tests.commands.clirun import LIQ, wait_for_line
from liq_pipeline_tests.fixtures.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_watcher_leaves_a_snapshot_of_its_last_block(chain, cli_env, tmp_path, monkeypatch, stop):
    server = EmbeddedRedis(tmp_path / "r")
    redis_url = server.ensure_running().url
    env = {
        **cli_env,
        "RPC_URL": chain.node.url,
        "AAVE_ADDRESSES_PROVIDER": chain.market.addresses_provider,
        "AAVE_PROTOCOL_VERSION": chain.market.protocol_version,  # the default is Base's 3.7
        "REDIS_URL": redis_url,
        "METRICS_PORT": str(free_port()),
    }
    process = subprocess.Popen([LIQ, "watch"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        wait_for_line(process, "metrics on", seen)
        chain.rpc.call("evm_mine")
        head = int(chain.rpc.call("eth_blockNumber"), 16)
        wait_for_line(process, f"block {head}:", seen)
        process.send_signal(stop)
        process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    try:
        assert process.returncode == 0, "".join(seen) + process.stderr.read()
        monkeypatch.setenv("REDIS_URL", redis_url)
        snapshot = open_market_cache(load_settings(), 31337, chain.market.pool).get_positions()
        assert snapshot is not None and snapshot.block == head
        assert snapshot.block_hash == chain.rpc.call("eth_getBlockByNumber", hex(head), False)["hash"]
    finally:
        server.stop()
