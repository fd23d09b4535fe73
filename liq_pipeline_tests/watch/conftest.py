"""Watcher tests run on the session devnet (real anvil, real Aave V3), each between evm_snapshot and evm_revert."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.evaluation.tracker import Tracker
from liq_pipeline.risk.engine import EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.watch.watcher import Watcher

# pytest refuses `pytest_plugins` outside the root conftest: re-export the devnet fixtures instead
from liq_pipeline_tests.integration.conftest import chain, devnet, devnet_data_dir  # noqa: F401

PARAMS = EngineParams(default_specs(["baseline", "adverse", "extreme"]))


def make_watcher(url: str, provider: str, cache=None, **kwargs) -> Watcher:
    rpc = RpcClient(url, retries=0, timeout=5)
    head = int(rpc.call("eth_blockNumber"), 16)
    tracker = Tracker.bootstrap(rpc, provider, rules_for("3.0"), 0, head, ("USDC", "DAI"))
    return Watcher(rpc, tracker, PARAMS, cache, poll_interval=0.01, max_backoff=0.2, **kwargs)


@pytest.fixture
def watcher(chain):  # noqa: F811
    w = make_watcher(chain.node.url, chain.market.addresses_provider)
    yield w
    w.rpc.close()


class TcpProxy:
    """A real TCP relay in front of the node that can be cut and restored: the node 'goes away' for the watcher
    while the chain itself keeps running (and keeps making blocks)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._connections: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self.up = False
        for connection in self._connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            except OSError:
                pass
        self._connections.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
