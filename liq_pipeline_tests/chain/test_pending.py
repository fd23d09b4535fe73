"""chain/pending.py on the real devnet (anvil 1.7: the mempool stream, the `pending` tag) and against an HTTP-only
node (no websocket: sealed blocks only). Base's Flashblocks stream cannot run here; its log decoding is checked on
the log shape the node sends (the same as eth_getLogs')."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from liq_pipeline.chain.pending import (
    ANSWER_UPDATED,
    FLASHBLOCK_LOGS,
    MEMPOOL,
    PendingPriceStream,
    PriceUpdate,
    probe_pending,
    ws_url_for,
)
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet.actions import oracle_prices, price_txs
from liq_pipeline.devnet.txs import Chain
from liq_pipeline_tests.fixtures.stub_node import NULL_RESULT, stub_node


def test_the_websocket_url_is_rpc_url_with_a_websocket_scheme_unless_given():
    assert ws_url_for("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert ws_url_for("https://base.example/v2/KEY") == "wss://base.example/v2/KEY"
    assert ws_url_for("https://base.example/v2/KEY", "wss://ws.example/KEY") == "wss://ws.example/KEY"
    assert ws_url_for("ipc:///tmp/node.ipc") is None


@pytest.mark.integration
def test_the_devnet_streams_its_mempool_and_answers_the_pending_tag(chain):
    with RpcClient(chain.node.url) as rpc:
        found = probe_pending(rpc, ws_url_for(chain.node.url))
    assert (found.stream, found.pending_tag) == (MEMPOOL, True)
    assert found.line() == (
        f"pending stream: eth_subscribe newPendingTransactions at ws://127.0.0.1:{chain.node.port}; "
        "the `pending` tag: answers"
    )


@pytest.mark.integration
def test_a_price_update_is_seen_before_its_block_is_mined(chain):
    market = chain.market
    feeds = {r.aggregator: r.symbol for r in market.reserves}
    seen: list[PriceUpdate] = []
    stream = PendingPriceStream(ws_url_for(chain.node.url), MEMPOOL, feeds, seen.append)
    assert stream.start(), "not subscribed within 5 s"
    txs = Chain(chain.rpc)
    try:
        with txs.manual_mining():
            before = oracle_prices(chain.rpc, market)
            new = {"WETH": before["WETH"] * 9 // 10}
            head = txs.block_number()
            sent_at = time.time()
            hashes = txs.send(price_txs(market, new))
            deadline = time.monotonic() + 5
            while not seen and time.monotonic() < deadline:
                time.sleep(0.005)
            assert txs.block_number() == head  # nothing mined: the update is still pending
            assert oracle_prices(chain.rpc, market)["WETH"] == before["WETH"]
            txs.mine(txs.latest_timestamp() + 2)
    finally:
        stream.stop()
    assert len(seen) == 1, seen
    update = seen[0]
    assert feeds[update.feed] == "WETH"
    assert (update.answer, update.source, update.tx_hash) == (new["WETH"], MEMPOOL, hashes[0])
    assert update.max_priority_fee is not None
    assert 0 <= update.seen_at - sent_at < 1.0
    assert oracle_prices(chain.rpc, market)["WETH"] == new["WETH"]  # the block it was seen ahead of


@pytest.fixture
def http_only() -> Iterator[str]:
    with stub_node(NULL_RESULT) as url:
        yield url


def test_a_node_without_websocket_is_sealed_blocks_only_in_one_line(http_only):
    with RpcClient(http_only, retries=0) as rpc:
        found = probe_pending(rpc, ws_url_for(http_only), timeout=1.0)
    assert (found.stream, found.pending_tag) == (None, False)
    port = http_only.rsplit(":", 1)[1]
    assert found.line().startswith(f"no pending stream at ws://127.0.0.1:{port} (no websocket: ")
    assert found.line().endswith("; the `pending` tag: does not answer: sealed blocks only")


def test_a_flashblock_log_of_a_feed_is_an_update_and_other_logs_are_not():
    feed = "0x" + "ab" * 20
    got: list[PriceUpdate] = []
    stream = PendingPriceStream("ws://127.0.0.1:1", FLASHBLOCK_LOGS, {feed: "WETH"}, got.append)
    answer = 2_345_67000000
    log = {
        "address": feed.upper().replace("0X", "0x"),
        "topics": [ANSWER_UPDATED, "0x" + answer.to_bytes(32, "big").hex(), "0x" + "00" * 31 + "07"],
        "data": "0x" + "00" * 32,
        "transactionHash": "0x" + "cd" * 32,
    }
    stream._handle(log)
    stream._handle({**log, "address": "0x" + "ef" * 20})  # another contract
    stream._handle({**log, "topics": ["0x" + "11" * 32, *log["topics"][1:]]})  # another event
    assert [(u.feed, u.answer, u.source, u.tx_hash) for u in got] == [(feed, answer, FLASHBLOCK_LOGS, "0x" + "cd" * 32)]
    assert stream.seen == 1
