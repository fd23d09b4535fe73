"""`liq dev` (what `make dev` runs): the whole platform on this machine, stopped together by Ctrl-C or `kill`.

1. the devnet: anvil with the real Aave V3 contracts and a seeded market (state cache: ~1 s after the first time);
2. the embedded Redis (unless REDIS_URL points at a server);
3. the simulator, a block every 2 s like Base: prices move, interest accrues, borrowers come and go, a competitor
   liquidates;
4. the watcher (`liq watch`): every block, candidates written to Redis in tens of milliseconds, /metrics;
   and the KPI exporter (`liq exporter`) for what Dagster runs compute;
5. `dagster dev` on 127.0.0.1:DAGSTER_PORT with the new-block sensor running.
Every child is started in its own process group and stopped by it; the devnet and Redis are stopped last.
SIGINT (Ctrl-C), SIGTERM (systemd, `docker stop`, a CI runner, `kill`) and SIGHUP (the terminal closed) all stop
everything the same way; a second signal while stopping does not cut the cleanup short (make forwards SIGTERM, so
`kill -TERM -<make's group>` delivers it twice).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..cache.server import EmbeddedRedis
from ..chain.rpc import RpcClient
from ..config import Settings
from ..devnet import lifecycle
from ..devnet.market import Market
from .supervisor import Child, Supervisor, SupervisorError

ROOT = Path(__file__).resolve().parents[2]  # the repository: dagster.yaml, workspace.yaml
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopping(KeyboardInterrupt):
    """A stop signal arrived (a KeyboardInterrupt, so no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_on_signals(say: Callable[[str], None]) -> Callable[[], None]:
    """The first SIGINT/SIGTERM/SIGHUP raises Stopping; any later one is only acknowledged. Returns `shutting_down`,
    which switches to the latter before the cleanup starts (whether a signal or a dead child led there)."""

    def again(signum: int, _frame: object) -> None:
        # a closed terminal (SIGHUP) or pipe makes printing raise: that must not abort the cleanup it interrupts
        with contextlib.suppress(OSError):
            say(f"{signal.Signals(signum).name}: already stopping")

    def shutting_down() -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, again)

    def first(signum: int, _frame: object) -> None:
        shutting_down()  # before raising: a second signal must not interrupt the cleanup
        raise Stopping(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, first)
    return shutting_down


def _together(*steps: Callable[[], object]) -> None:
    """Run the steps at once and wait for all of them (stopping the devnet and Redis, each with its own timeout)."""
    threads = [threading.Thread(target=step, daemon=True) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    return ready


def _bin(name: str) -> str:
    """A console script of this venv (dagster, liq), found next to the running interpreter."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def platform_env(
    settings: Settings, market: Market, rpc_url: str, redis_url: str | None, state_from: int
) -> dict[str, str]:
    env = {
        # the devnet is loaded from a state dump: blocks before the load keep their logs, not their state
        "STATE_HISTORY_FROM_BLOCK": str(state_from),
        "RPC_URL": rpc_url,
        "AAVE_ADDRESSES_PROVIDER": market.addresses_provider,
        "CHAIN_ID": "",  # the devnet's own chain, whatever CHAIN_ID the user's .env names for a real one
        "AAVE_PROTOCOL_VERSION": market.protocol_version,  # the devnet's rules, whatever the user's .env says
        "DATA_DIR": str(Path(settings.data_dir).absolute()),
        "DAGSTER_HOME": str((Path(settings.data_dir) / "dagster").absolute()),
        # make dev shows the whole platform: scenarios and projections on, the borrower index kept in Redis
        "PREDICTIVE_ENABLED": "true",
        "BORROWERS_INDEX_MODE": "redis",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def run_dev(settings: Settings, borrowers: int, block_time: int, say: Callable[[str], None]) -> int:
    data_dir = Path(settings.data_dir).absolute()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    dagster_home = data_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")

    shutting_down = _stop_on_signals(say)
    embedded = None
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    supervisor = Supervisor(say)
    try:
        say(f"starting the devnet ({borrowers} borrowers; first time builds the state cache)")
        if lifecycle.anvil.running_node(data_dir) is not None:
            lifecycle.down(data_dir)
        devnet = lifecycle.up(data_dir, borrowers=borrowers, protocol=settings.devnet_protocol_version)
        if redis_url is None:
            embedded = EmbeddedRedis(data_dir / "redis")
            redis_url = embedded.ensure_running().url
        with RpcClient(devnet.node.url) as rpc:
            loaded_at = rpc.quantity("eth_blockNumber")
        env = platform_env(settings, devnet.market, devnet.node.url, redis_url, loaded_at)
        os.environ.update(env)  # this process reads the same settings as its children
        supervisor.start(
            Child(
                "simulator",
                [
                    _bin("liq"),
                    "devnet",
                    "simulate",
                    "--blocks",
                    "1000000000",
                    "--block-time",
                    str(block_time),
                    "--realtime",
                ],
                env=env,
                log_path=logs / "simulator.log",
            )
        )
        supervisor.start(
            Child("watcher", [_bin("liq"), "watch"], env=env, log_path=logs / "watcher.log")
        )  # the sub-second path: every block, candidates in Redis within tens of milliseconds
        supervisor.start(Child("exporter", [_bin("liq"), "exporter"], env=env, log_path=logs / "exporter.log"))
        ui = f"http://127.0.0.1:{settings.dagster_port}"
        say(f"starting dagster dev on {ui} (about 5 s)")
        supervisor.start(
            Child(
                "dagster",
                [
                    _bin("dagster"),
                    "dev",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(settings.dagster_port),
                    "-w",
                    str(ROOT / "workspace.yaml"),
                ],
                ready=_answers(f"{ui}/server_info"),
                ready_timeout=180,
                env=env,
                log_path=logs / "dagster.log",
            )
        )
        say("")
        say(f"  Dagster UI     {ui}  (assets, partitions, checks, runs; the new-block sensor is on)")
        say(f"  chain (anvil)  {devnet.node.url}  market: {devnet.market_path}")
        say(f"  watcher        every block -> Redis candidates; log {logs / 'watcher.log'}")
        host = settings.metrics_host
        say(
            f"  metrics        watcher http://{host}:{settings.metrics_port}/metrics, "
            f"KPI exporter http://{host}:{settings.exporter_port}/metrics (ops/prometheus/prometheus.yml)"
        )
        say(f"  Redis          {'embedded, ' + str(data_dir / 'redis') if embedded else 'REDIS_URL'}")
        say(f"  lake           {data_dir / 'lake'}")
        say(f"  logs           {logs}")
        say("  Ctrl-C stops everything.")
        dead = supervisor.wait()
        shutting_down()
        say(f"{dead.name} stopped on its own (exit {dead.process.returncode}); see {dead.log_path}")
        return 1
    except Stopping as stop:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            say(f"stopping ({stop})")
        return 0
    except SupervisorError as error:
        say(f"error: {error}")
        return 2
    finally:
        shutting_down()
        supervisor.stop_all()  # the children first: the watcher writes its last snapshot to Redis on the way out
        _together(lambda: lifecycle.down(data_dir), *([embedded.stop] if embedded is not None else []))
