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
import json
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cache.server import EmbeddedRedis
from ..chain.rpc import RpcClient
from ..config import Settings
from ..devnet import lifecycle
from ..devnet.accounts import OPERATOR, OPERATOR_KEY
from ..devnet.dex import find_dex
from ..devnet.errors import DevnetError
from ..devnet.liquidator import ExecutorVenue, deploy_liquidator, fund_inventory, save_venue
from ..devnet.market import Market
from ..devnet.paths import BUILD_DIR_VARIABLE
from ..devnet.protocols import check_protocol
from ..devnet.rpc import Rpc
from .supervisor import Child, Supervisor, SupervisorError

ROOT = Path(__file__).resolve().parents[2]  # the repository: dagster.yaml, workspace.yaml
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Debt assets the devnet's Liquidator holds (inventory mode, as `liq arena` funds it): where the DEX's pools are too
# shallow for a flash loan's swap, it repays from them and keeps the collateral.
INVENTORY_USD = 1_000_000
# The settings every market of a several-market `liq dev` shares (one Redis, one Dagster instance); the rest is each
# market's own (its .env, its children's environment).
SHARED_KEYS = frozenset({"REDIS_URL", "DAGSTER_HOME", "PREDICTIVE_ENABLED", "BORROWERS_INDEX_MODE", "CHAIN_ID"})
EXECUTOR_START_SEC = 60.0  # the executor's watcher exiting this soon after its start: it could not start
# each simulated block's price updates pending this long before it is sealed (a Flashblock on Base)
DEV_PENDING_WINDOW_MS = 200


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
    settings: Settings, market: Market, rpc_url: str, redis_url: str | None, state_from: int, data_dir: Path
) -> dict[str, str]:
    env = {
        # the devnet is loaded from a state dump: blocks before the load keep their logs, not their state
        "STATE_HISTORY_FROM_BLOCK": str(state_from),
        "RPC_URL": rpc_url,
        "AAVE_ADDRESSES_PROVIDER": market.addresses_provider,
        "CHAIN_ID": "",  # the devnet's own chain, whatever CHAIN_ID the user's .env names for a real one
        "AAVE_PROTOCOL_VERSION": market.protocol_version,  # the devnet's rules, whatever the user's .env says
        "DATA_DIR": str(data_dir),
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


def _watcher(market: DevMarket, env: dict[str, str], executor_env: dict[str, str] | None, logs: Path) -> Child:
    """The market's watcher child: with the executor live when it was deployed, else `liq watch`."""
    name = market.child("watcher")
    if executor_env is None:
        return Child(name, [_bin("liq"), "watch"], env=env, log_path=logs / f"{name}.log")
    return Child(name, [_bin("liq"), "execute", "--live"], env={**env, **executor_env}, log_path=logs / f"{name}.log")


def _last_line(path: Path | None) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path else []
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


@dataclass(frozen=True)
class DevMarket:
    """One market of `liq dev`: its devnet, simulator, watcher and exporter, and (named) its Dagster location."""

    name: str | None  # MARKET_NAME; None: the one market of plain `make dev` (asset keys without a prefix)
    protocol: str
    data_dir: Path  # its devnet, lake and liquidator.json
    metrics_port: int
    exporter_port: int

    def child(self, role: str) -> str:
        return f"{role}-{self.name}" if self.name else role


def dev_markets(settings: Settings, protocols: list[str]) -> list[DevMarket]:
    """One market per protocol version asked for (default DEVNET_PROTOCOL_VERSION). Several: each named after
    its version (`v36`, `v30`), with its own DATA_DIR/markets/<name> and metrics ports two apart."""
    data_dir = Path(settings.data_dir).absolute()
    try:
        chosen = [check_protocol(p) for p in protocols] or [check_protocol(settings.devnet_protocol_version)]
    except DevnetError as error:
        raise SupervisorError(f"--protocols {','.join(protocols)}: {error}") from None
    if len(set(chosen)) != len(chosen):
        raise SupervisorError(f"--protocols {','.join(protocols)}: each protocol version once")
    if len(chosen) == 1:
        return [DevMarket(None, chosen[0], data_dir, settings.metrics_port, settings.exporter_port)]
    return [
        DevMarket(
            name := "v" + protocol.replace(".", ""),
            protocol,
            data_dir / "markets" / name,
            settings.metrics_port + 2 * i,
            settings.exporter_port + 2 * i,
        )
        for i, protocol in enumerate(chosen)
    ]


def markets_workspace(markets: list[DevMarket], dagster_home: Path) -> tuple[Path, dict[str, str]]:
    """A workspace with one code location per market (the same package; each location's `.env` names its market)
    and the variable that makes Dagster inject each `.env` into its location's processes (code server, run
    workers; Dagster's PerProjectEnvFileLoader). Returns the workspace's path and that variable."""
    lines = ["# written by `liq dev --protocols`: one code location per market (docs/deployment.md)", "load_from:"]
    for market in markets:
        lines += [
            "  - python_module:",
            "      module_name: liq_pipeline.definitions",
            f"      location_name: {market.name}",
            f"      working_directory: {ROOT}",
        ]
    path = dagster_home / "workspace.yaml"
    path.write_text("\n".join(lines) + "\n")
    env_dirs = {str(market.name): str(market.data_dir) for market in markets}
    return path, {"DAGSTER_PROJECT_ENV_FILE_PATHS": json.dumps(env_dirs)}


def _market_env_file(market: DevMarket, env: dict[str, str]) -> None:
    """DATA_DIR/markets/<name>/.env: what Dagster injects into the market's code location."""
    text = "".join(f"{key}={json.dumps(value)}\n" for key, value in sorted(env.items()))
    (market.data_dir / ".env").write_text("# written by `liq dev`: this market's settings\n" + text)


def _start_market(
    market: DevMarket,
    settings: Settings,
    borrowers: int,
    block_time: int,
    redis_url: str | None,
    logs: Path,
    supervisor: Supervisor,
    say: Callable[[str], None],
) -> tuple[dict[str, str], dict[str, str] | None, Child, lifecycle.UpResult]:
    """The market's devnet, Liquidator, simulator, watcher and exporter; returns its environment, the executor's,
    its watcher child and its devnet."""
    top = Path(settings.data_dir).absolute()
    what = f"the {market.name} devnet (Aave V{market.protocol}" if market.name else "the devnet ("
    say(f"starting {what}, {borrowers} borrowers; first time builds the state cache)")
    if lifecycle.anvil.running_node(market.data_dir) is not None:
        lifecycle.down(market.data_dir)
    devnet = lifecycle.up(market.data_dir, borrowers=borrowers, protocol=market.protocol, cache_dir=top)
    with RpcClient(devnet.node.url) as rpc:
        loaded_at = rpc.quantity("eth_blockNumber")
    env = platform_env(settings, devnet.market, devnet.node.url, redis_url, loaded_at, market.data_dir)
    if market.name:
        env |= {
            "MARKET_NAME": market.name,
            "METRICS_PORT": str(market.metrics_port),
            "EXPORTER_PORT": str(market.exporter_port),
        }
    say("deploying the executor's Liquidator for the devnet operator (the first time compiles it)")
    try:
        executor_env = deploy_executor(market.data_dir, devnet)
    except Exception as error:  # make dev runs without the executor rather than not at all
        say(f"warning: the executor is off (deploying its Liquidator failed: {type(error).__name__}: {error})")
        executor_env = None
    simulate = ["devnet", "simulate", "--blocks", "1000000000", "--block-time", str(block_time), "--realtime"]
    # each block's price updates pending for a Flashblock's 200 ms before it is sealed, as Base shows them: the
    # executor's pre-confirmation lane acts in that window (EXECUTION_PENDING_TRIGGER=auto)
    simulate += ["--pending-window-ms", str(DEV_PENDING_WINDOW_MS)]
    supervisor.start(
        Child(
            market.child("simulator"),
            [_bin("liq"), *simulate],
            env=env,
            log_path=logs / f"{market.child('simulator')}.log",
        )
    )
    # the sub-second path: every block, candidates in Redis within tens of milliseconds, then the executor
    watcher = supervisor.start(_watcher(market, env, executor_env, logs))
    supervisor.start(
        Child(
            market.child("exporter"),
            [_bin("liq"), "exporter"],
            env=env,
            log_path=logs / f"{market.child('exporter')}.log",
        )
    )
    return env, executor_env, watcher, devnet


def run_dev(
    settings: Settings,
    borrowers: int,
    block_time: int,
    say: Callable[[str], None],
    protocols: list[str] | None = None,
) -> int:
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
    markets: list[DevMarket] = []
    try:
        markets = dev_markets(settings, protocols or [])
        if len(markets) > 1:
            # one compile of the contracts for every market (the executor's Liquidator, the V3.6 sources)
            os.environ.setdefault(BUILD_DIR_VARIABLE, str(data_dir / "devnet" / "build"))
        if redis_url is None:
            embedded = EmbeddedRedis(data_dir / "redis")
            redis_url = embedded.ensure_running().url
        started: dict[str, tuple[DevMarket, dict[str, str], dict[str, str] | None, lifecycle.UpResult]] = {}
        watchers: dict[str, float] = {}  # watcher child -> when it started
        for market in markets:
            market.data_dir.mkdir(parents=True, exist_ok=True)
            env, executor_env, watcher, devnet = _start_market(
                market, settings, borrowers, block_time, redis_url, logs, supervisor, say
            )
            started[watcher.name] = (market, env, executor_env, devnet)
            watchers[watcher.name] = time.monotonic()
        first_env = next(iter(started.values()))[1]
        shared = {key: value for key, value in first_env.items() if key in SHARED_KEYS}
        if len(markets) == 1:
            dagster_env, workspace = first_env, ROOT / "workspace.yaml"
            os.environ.update(first_env)  # this process reads the same settings as its children
        else:
            for market, market_env, _executor, _devnet in started.values():
                _market_env_file(market, {k: v for k, v in market_env.items() if k not in SHARED_KEYS})
            workspace, location_env = markets_workspace(markets, dagster_home)
            dagster_env = {**shared, **location_env}
            os.environ.update(shared)
        ui = f"http://127.0.0.1:{settings.dagster_port}"
        say(f"starting dagster dev on {ui} (about 5 s)")
        supervisor.start(
            Child(
                "dagster",
                [_bin("dagster"), "dev", "-h", "127.0.0.1", "-p", str(settings.dagster_port), "-w", str(workspace)],
                ready=_answers(f"{ui}/server_info"),
                ready_timeout=180,
                env=dagster_env,
                log_path=logs / "dagster.log",
            )
        )
        say("")
        say(f"  Dagster UI     {ui}  (assets, partitions, checks, runs; the new-block sensor is on)")
        for market, _env, executor_env, devnet in started.values():
            label = f" [{market.name}: Aave V{market.protocol}]" if market.name else ""
            say(f"  chain (anvil)  {devnet.node.url}  market: {devnet.market_path}{label}")
            what = "Redis candidates, then the executor live" if executor_env else "Redis candidates"
            say(f"  watcher        every block -> {what}; log {logs / (market.child('watcher') + '.log')}")
            host = settings.metrics_host
            say(
                f"  metrics        watcher http://{host}:{market.metrics_port}/metrics, "
                f"KPI exporter http://{host}:{market.exporter_port}/metrics (ops/prometheus/prometheus.yml)"
            )
            say(f"  lake           {market.data_dir / 'lake'}")
        say(f"  Redis          {'embedded, ' + str(data_dir / 'redis') if embedded else 'REDIS_URL'}")
        if len(markets) > 1:
            say(f"  markets        one Dagster code location each ({workspace}), asset keys <market>/<asset>")
        say(f"  logs           {logs}")
        say("  Ctrl-C stops everything.")
        while True:
            dead = supervisor.wait()
            begun = watchers.pop(dead.name, None)
            market, env, executor_env, _devnet = started.get(dead.name, (None, {}, None, None))
            if market is None or begun is None or executor_env is None or time.monotonic() - begun > EXECUTOR_START_SEC:
                break
            # the executor could not start (its one-line error is the log's last line): the watcher alone
            say(f"warning: the executor is off ({_last_line(dead.log_path)}); running the watcher alone")
            supervisor.children.remove(dead)
            started[dead.name] = (market, env, None, _devnet)
            watchers[supervisor.start(_watcher(market, env, None, logs)).name] = float("-inf")  # not again
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
        _together(
            *(lambda d=market.data_dir: lifecycle.down(d) for market in markets),
            *([embedded.stop] if embedded is not None else []),
        )
