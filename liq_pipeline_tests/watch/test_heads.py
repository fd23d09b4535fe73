"""HeadObserver on a scripted node and clocks: first-seen stamps, the measured block time, one warning per stall."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from liq_pipeline.chain.rpc import NodeUnavailable
from liq_pipeline.watch.heads import DEFAULT_BLOCK_TIME, HeadObserver, HeadPoller


class ScriptedNode:
    label = "http://node"

    def __init__(self) -> None:
        self.head: int | None = 100

    def quantity(self, method: str) -> int:
        assert method == "eth_blockNumber"
        if self.head is None:
            raise NodeUnavailable("frozen")
        return self.head

    def close(self) -> None:
        pass


def _observer(node: ScriptedNode, now: list[float]) -> HeadObserver:
    return HeadObserver(node, stall_blocks=3, clock=lambda: 1_000.0 + now[0], monotonic=lambda: now[0])


def test_blocks_are_stamped_when_first_seen_and_skipped_ones_with_them():
    node, now = ScriptedNode(), [0.0]
    observer = _observer(node, now)
    observer.poll_once()
    now[0] = 0.5
    node.head = 103  # three blocks between two polls: all available by this poll
    observer.poll_once()
    now[0] = 0.7
    observer.poll_once()  # the same head again: stamps unchanged
    assert observer.first_seen(100) == 1_000.0
    assert [observer.first_seen(n) for n in (101, 102, 103)] == [1_000.5] * 3
    assert observer.first_seen(104) is None and observer.head == 103
    assert observer.wait_for_head(102, 0) and not observer.wait_for_head(103, 0)
    now[0], node.head = 1.0, 101  # a shorter chain (a restarted devnet): heights above it are new blocks again
    observer.poll_once()
    now[0], node.head = 1.5, 102
    observer.poll_once()
    assert observer.first_seen(101) == 1_000.5 and observer.first_seen(102) == 1_001.5


def test_a_stall_of_three_block_times_is_warned_once_and_its_end_once(caplog):
    node, now = ScriptedNode(), [0.0]
    observer = _observer(node, now)
    caplog.set_level(logging.WARNING, logger="liq_pipeline.watch")
    assert observer.block_time() == DEFAULT_BLOCK_TIME
    for block in range(100, 106):  # one block a second: the block time is measured as 1 s
        node.head, now[0] = block, float(block - 100)
        observer.poll_once()
    assert observer.block_time() == 1.0
    node.head = None  # frozen: every poll fails
    for tenth in range(1, 80):
        now[0] = 5.0 + tenth / 10
        observer.poll_once()
    assert observer.stalls == 1 and observer.stalled
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "no new head for 3.1s" in warned[0] and "last block 105" in warned[0]
    node.head, now[0] = 106, 13.0
    observer.poll_once()
    node.head, now[0] = 107, 14.0
    observer.poll_once()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "block 106 after 8.0s" in lines[1]
    assert not observer.stalled and observer.block_time() == 1.0  # the stall is not taken for a block time


def test_within_the_limit_nothing_is_said(caplog):
    node, now = ScriptedNode(), [0.0]
    observer = HeadObserver(node, stall_blocks=3, block_time=2.0, monotonic=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="liq_pipeline.watch")
    observer.poll_once()
    now[0] = 5.9  # under 3 x 2 s
    observer.poll_once()
    assert observer.stalls == 0 and not caplog.records
    now[0] = 6.1
    observer.poll_once()
    assert observer.stalls == 1


def test_the_poller_reads_the_head_and_a_silent_node_costs_its_timeout_without_its_secret():
    """A real HTTP exchange with a one-shot server answering the head, then a listener that never answers."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        finished = threading.Event()

        def answer_once() -> None:
            connection, _ = server.accept()
            with connection:
                request = b""
                while b"params" not in request:  # headers and body may come in two sends
                    request += connection.recv(65536)
                assert b"eth_blockNumber" in request and b"/key1234567890abcdef" in request
                body = b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}'
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                connection.recv(65536)  # the next request: never answered (a frozen node)...
                finished.wait(5)  # ...nor closed

        thread = threading.Thread(target=answer_once, daemon=True)
        thread.start()
        poller = HeadPoller(f"http://127.0.0.1:{port}/key1234567890abcdef", timeout=0.2)
        assert poller.quantity("eth_blockNumber") == 42
        with pytest.raises(NodeUnavailable) as failed:
            poller.quantity("eth_blockNumber")
        finished.set()
        assert "key1234567890abcdef" not in str(failed.value) and "TimeoutError" in str(failed.value)
        poller.close()
