"""`liq node` on the devnet (anvil 1.7: the mempool stream, the `pending` tag, eth_sendRawTransactionSync and
eth_simulateV1), with a websocket endpoint that does not answer (sealed blocks only, its key never shown), and with
a websocket URL that is not one (one line naming RPC_WS_URL, exit 2)."""

from __future__ import annotations

import json

import pytest

from liq_pipeline_tests.commands.clirun import lines, liq

pytestmark = pytest.mark.integration


def test_the_devnet_offers_its_mempool_the_pending_tag_sync_sends_and_simulation(devnet_home, cli_env):
    result = liq("node", "--json", env=cli_env, cwd=devnet_home.parent)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert {k: found[k] for k in ("pending_stream", "pending_tag", "send_sync", "simulate_v1")} == {
        "pending_stream": "newPendingTransactions",
        "pending_tag": True,
        "send_sync": True,
        "simulate_v1": True,
    }
    assert found["ws_url"].startswith("ws://127.0.0.1:")
    shown = liq("node", env=cli_env, cwd=devnet_home.parent)
    assert shown.returncode == 0, shown.stderr
    stream = "pending stream: eth_subscribe newPendingTransactions at ws://"
    assert any(line.startswith(stream) for line in lines(shown.stdout)), shown.stdout


def test_a_websocket_endpoint_that_does_not_answer_is_sealed_blocks_only_and_its_key_stays_hidden(devnet_home, cli_env):
    key = "k3y5ecr3tk3y5ecr3t"
    result = liq("node", env=cli_env, cwd=devnet_home.parent, RPC_WS_URL=f"ws://127.0.0.1:1/v2/{key}")
    assert result.returncode == 0, result.stderr
    assert "no pending stream at ws://127.0.0.1:1 (no websocket: " in result.stdout
    assert "sealed blocks only" in result.stdout
    assert key not in result.stdout + result.stderr


def test_a_websocket_url_that_is_not_one_is_one_line_naming_the_variable(devnet_home, cli_env):
    result = liq("node", env=cli_env, cwd=devnet_home.parent, RPC_WS_URL="http://127.0.0.1:8545/secretpath")
    assert result.returncode == 2
    assert len(lines(result.stderr)) == 1, result.stderr
    assert "RPC_WS_URL" in result.stderr and "ws(s)://" in result.stderr
    assert "secretpath" not in result.stderr
