"""execution/channels.py on a real anvil (1.7, which answers eth_sendRawTransactionSync): the sync channel returns
at a refusal or after its accept wait, keeps the receipt that comes back once the block is mined, and the choice
of channel says what the node can do. A node without the method is the one stub here (anvil cannot be one)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from liq_pipeline.chain.rpc import RpcClient, RpcError
from liq_pipeline.devnet import anvil
from liq_pipeline.devnet.accounts import OPERATOR, OPERATOR_KEY
from liq_pipeline.execution.channels import RawChannel, SyncChannel, channel_kind, node_has_sync_send, tx_hash
from liq_pipeline.execution.signer import Signer
from liq_pipeline_tests.fixtures.stub_node import METHOD_NOT_FOUND, stub_node

pytestmark = pytest.mark.integration

GWEI = 10**9


@pytest.fixture
def node() -> Iterator[RpcClient]:
    """A bare anvil, automine off (blocks come when the test mines, as on the devnet), the operator funded."""
    started = anvil.start()
    rpc = RpcClient(started.url, retries=0)
    try:
        rpc.call("evm_setAutomine", False)
        rpc.call("anvil_setBalance", OPERATOR, hex(10**20))
        yield rpc
    finally:
        rpc.close()
        anvil.stop(started)


def _transfer(nonce: int) -> bytes:
    signer = Signer.from_private_key(OPERATOR_KEY, 31337)
    tx = {"to": "0x" + "11" * 20, "value": 1, "data": "0x", "gas": 21_000, "nonce": nonce}
    return signer.sign(tx | {"maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI}).raw


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sync_channel_refuses_at_once_accepts_after_its_wait_and_keeps_the_receipt(node):
    channel = SyncChannel(node.url, accept_wait_s=0.05)
    try:
        good, taken = _transfer(0), _transfer(0)  # the same nonce twice: the second is refused (already known)
        began = time.monotonic()
        answers = channel.send_many([good])
        accepted_in = time.monotonic() - began
        refused = channel.send_many([taken])
        assert answers == [None]
        assert 0.04 <= accepted_in < 1.0  # no receipt before the block: counted accepted after the wait
        assert isinstance(refused[0], RpcError)
        assert channel.take_receipts([tx_hash(good)]) == {}  # not mined yet
        node.call("evm_mine")
        _wait_for(lambda: channel.pushed == 1)
        receipt = channel.take_receipts([tx_hash(good), "0x" + "00" * 32])
        assert list(receipt) == [tx_hash(good)]
        assert receipt[tx_hash(good)]["status"] == "0x1"
        assert receipt[tx_hash(good)]["transactionHash"] == tx_hash(good)
        assert channel.take_receipts([tx_hash(good)]) == {}  # taken once
        with pytest.raises(RpcError):
            channel.send(_transfer(0))  # mined: nonce too low, refused within the wait
    finally:
        channel.close()


def test_raw_channel_sends_a_batch_and_names_each_refusal(node):
    channel = RawChannel(RpcClient(node.url, retries=0))
    try:
        answers = channel.send_many([_transfer(0), _transfer(1), _transfer(1)])
        assert answers[:2] == [None, None]
        assert isinstance(answers[2], RpcError)
        assert int(node.call("txpool_status")["pending"], 16) == 2
        assert channel.take_receipts([tx_hash(_transfer(0))]) == {}
    finally:
        channel.client.close()


@pytest.fixture
def no_sync_node() -> Iterator[RpcClient]:
    with stub_node(METHOD_NOT_FOUND) as url, RpcClient(url, retries=0) as rpc:
        yield rpc


def test_the_channel_is_what_the_setting_asks_of_the_node(node, no_sync_node, caplog):
    assert node_has_sync_send(node) is True
    assert node_has_sync_send(no_sync_node) is False
    assert channel_kind("raw", no_sync_node) == "raw"
    assert channel_kind("sync", node) == "sync"
    with caplog.at_level("INFO", logger="liq_pipeline.execution.channels"):
        caplog.clear()  # the lines above, when an earlier test left the logger at INFO
        assert channel_kind("auto", node) == "sync"
        assert channel_kind("auto", no_sync_node) == "raw"
    assert [r.getMessage() for r in caplog.records] == [
        "sending with eth_sendRawTransactionSync (receipts come back with the send)",
        "the node has no eth_sendRawTransactionSync: sending with eth_sendRawTransaction",
    ]
    with pytest.raises(ValueError, match=r"EXECUTION_CHANNEL=sync: the node at .* has no eth_sendRawTransactionSync"):
        channel_kind("sync", no_sync_node)
