"""`liq dev` (what `make dev` runs): the whole platform on this machine, stopped together by Ctrl-C or `kill`.

1. the devnet: anvil with the real Aave V3 contracts and a seeded market (state cache: ~1 s after the first time);
2. the embedded Redis (unless REDIS_URL points at a server);
3. the simulator, a block every 2 s like Base: prices move, interest accrues, borrowers come and go, a competitor
   liquidates;
4. the watcher with the executor live (`liq execute --live`): every block, candidates written to Redis in tens of
   milliseconds, then the users below HF 1 liquidated through the project's Liquidator, deployed for the devnet's
   operator key at start (its key is in that child's environment only); if the executor cannot start, the watcher
   alone (`liq watch`) with one warning; and the KPI exporter (`liq exporter`) for what Dagster runs compute;
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
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..cache.server import EmbeddedRedis
from ..chain.rpc import RpcClient
from ..config import Settings
from ..devnet import lifecycle
from ..devnet.accounts import OPERATOR, OPERATOR_KEY
from ..devnet.dex import find_dex
from ..devnet.liquidator import ExecutorVenue, deploy_liquidator, fund_inventory, save_venue
from ..devnet.market import Market
from ..devnet.rpc import Rpc
from .supervisor import Child, Supervisor, SupervisorError

ROOT = Path(__file__).resolve().parents[2]  # the repository: dagster.yaml, workspace.yaml
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Debt assets the devnet's Liquidator holds (inventory mode, as `liq arena` funds it): where the DEX's pools are too
# shallow for a flash loan's swap, it repays from them and keeps the collateral.
INVENTORY_USD = 1_000_000
EXECUTOR_START_SEC = 60.0  # the executor's watcher exiting this soon after its start: it could not start


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


def deploy_executor(data_dir: Path, up: lifecycle.UpResult) -> dict[str, str]:
    """The Liquidator for the devnet's operator, funded with inventory, recorded in DATA_DIR/devnet/liquidator.json;
    returns the environment of the watcher child that runs it live (the operator key: that child's only)."""
    with Rpc(up.node.url) as rpc:
        deployed = deploy_liquidator(rpc, up.market, data_dir, OPERATOR)
        fund_inventory(rpc, up.market, deployed.address, INVENTORY_USD)
        dex = find_dex(rpc, up.market)
    if dex is None:
        raise RuntimeError("the devnet has no DEX (a state cache from before it: delete DATA_DIR/devnet/cache)")
    save_venue(data_dir, ExecutorVenue(deployed.address, deployed.operator, dex.factory, deployed.block, True))
    return {
        "EXECUTION_ENABLED": "true",
        "EXECUTOR_PRIVATE_KEY": OPERATOR_KEY,  # devnet-only, public on purpose (devnet/accounts.py)
        "EXECUTOR_KEYSTORE": "",  # one key, from one place: whatever the user's .env names
        "EXECUTOR_KEYSTORE_PASSWORD": "",
        "EXECUTOR_KEYSTORE_PASSWORD_FILE": "",
        "EXECUTOR_LIQUIDATOR": deployed.address,
        "EXECUTION_DEX_FACTORY": dex.factory,
        "EXECUTION_INVENTORY": "true",
    }


def _watcher(env: dict[str, str], executor_env: dict[str, str] | None, logs: Path) -> Child:
    """The watcher child: with the executor live when it was deployed, else `liq watch`."""
    if executor_env is None:
        return Child("watcher", [_bin("liq"), "watch"], env=env, log_path=logs / "watcher.log")
    return Child(
        "watcher", [_bin("liq"), "execute", "--live"], env={**env, **executor_env}, log_path=logs / "watcher.log"
    )


def _last_line(path: Path | None) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path else []
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


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
        say("deploying the executor's Liquidator for the devnet operator (the first time compiles it)")
        try:
            executor_env = deploy_executor(data_dir, devnet)
        except Exception as error:  # make dev runs without the executor rather than not at all
            say(f"warning: the executor is off (deploying its Liquidator failed: {type(error).__name__}: {error})")
            executor_env = None
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
        # the sub-second path: every block, candidates in Redis within tens of milliseconds, then the executor
        watcher = supervisor.start(_watcher(env, executor_env, logs))
        watcher_started = time.monotonic()
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
        what = "Redis candidates, then the executor live" if executor_env else "Redis candidates"
        say(f"  watcher        every block -> {what}; log {logs / 'watcher.log'}")
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
        if dead is watcher and executor_env is not None and time.monotonic() - watcher_started < EXECUTOR_START_SEC:
            # the executor could not start (its one-line error is the log's last line): the watcher alone
            say(f"warning: the executor is off ({_last_line(dead.log_path)}); running the watcher alone")
            supervisor.children.remove(dead)
            executor_env = None
            watcher = supervisor.start(_watcher(env, None, logs))
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
