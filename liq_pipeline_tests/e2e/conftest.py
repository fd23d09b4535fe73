"""The running platform for the end-to-end tests: what `make dev` starts, on free ports, in a temporary data dir.

One platform per test session (~8 s to start, ~3 s to stop), shared by every e2e test: the devnet (anvil with the
real Aave V3 contracts, 200 seeded borrowers), the embedded Redis, and `dagster dev` with the new-block sensor.
No simulator runs: blocks come only when a test mines them, so each test decides what happens on chain.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import settings_fields
from liq_pipeline.devnet import lifecycle
from liq_pipeline.devnet.rpc import Rpc
from liq_pipeline.supervisor import Child, Supervisor

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    url: str  # the Dagster UI and its GraphQL API, http://127.0.0.1:<port>
    rpc: Rpc
    devnet: lifecycle.UpResult
    data_dir: Path  # DATA_DIR of the platform; dagster.log (the `dagster dev` output) lies here


@pytest.fixture(scope="session")
def platform(tmp_path_factory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("e2e")
    home = data / "dagster"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/server_info", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    supervisor = Supervisor(say=lambda _m: None)
    redis = EmbeddedRedis(data / "redis")
    rpc: Rpc | None = None
    try:
        devnet = lifecycle.up(data, borrowers=200, seed=5)
        rpc = Rpc(devnet.node.url)
        env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
        env.update(
            RPC_URL=devnet.node.url,
            AAVE_ADDRESSES_PROVIDER=devnet.market.addresses_provider,
            DATA_DIR=str(data),
            DAGSTER_HOME=str(home),
            REDIS_URL=redis.ensure_running().url,
            STATE_HISTORY_FROM_BLOCK=str(int(rpc.call("eth_blockNumber"), 16)),
            LAKE_RANGE_BLOCKS="100",
            PREDICTIVE_ENABLED="true",
        )
        dagster = str(Path(sys.executable).parent / "dagster")
        supervisor.start(
            Child("dagster", [dagster, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(ROOT / "workspace.yaml")],
                  ready=ready, ready_timeout=180, env=env, log_path=data / "dagster.log")
        )  # fmt: skip
        yield Platform(url=url, rpc=rpc, devnet=devnet, data_dir=data)
    finally:
        supervisor.stop_all()
        if rpc is not None:
            rpc.close()
        lifecycle.down(data)
        redis.stop()
