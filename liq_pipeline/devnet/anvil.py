"""Start and stop the anvil node: bound to 127.0.0.1, chain id 31337, stopped by its own process group.

`start()` returns once the node answers `eth_chainId`. A detached node (for `liq devnet up`) outlives the CLI and
is found again through the pid file in <DATA_DIR>/devnet; an attached node (tests) is killed at interpreter exit
at the latest, so a crashed test run leaves no orphan.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import psutil
import requests

from .errors import DevnetError
from .paths import anvil_binary, devnet_dir

HOST = "127.0.0.1"  # never 0.0.0.0: the node has unlocked accounts and impersonation on
CHAIN_ID = 31337
# Aave transactions carry an explicit 3M gas limit; a large block gas limit lets one mined batch hold a few
# thousand of them (anvil fills a block by gas used, so the explicit limits do not crowd it).
BLOCK_GAS_LIMIT = 1_000_000_000
GENESIS_TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed genesis keeps deployments reproducible
BLOCK_TIME = 2  # seconds, like Base
PID_FILE = "anvil.json"

_attached: dict[int, subprocess.Popen] = {}
# Where anvil writes the states it moves out of memory (`--cache-path`): one folder per node, removed when we stop
# it. Left to itself anvil writes them to ~/.foundry/anvil/tmp and never removes them: ~740 MB per 1,000-block run
# measured, 61 GB built up on this machine by tests and benches until the disk was full.
STATES_ROOT = Path(tempfile.gettempdir()) / "liq-anvil-states"
STATES_FLAG = "--cache-path"


@dataclass
class AnvilNode:
    pid: int
    port: int
    host: str = HOST
    log_path: str | None = None
    args: list[str] = field(default_factory=list)
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def anvil_args(
    port: int,
    *,
    load_state: Path | None = None,
    dump_state: Path | None = None,
    prune_history: bool = False,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    args = [
        str(anvil_binary()),
        "--host",
        HOST,
        "--port",
        str(port),
        "--chain-id",
        str(CHAIN_ID),
        "--auto-impersonate",  # seeders and liquidators send from any address without keys
        "--no-request-size-limit",  # big batches and anvil_loadState exceed the 2 MB default
        "--gas-limit",
        str(BLOCK_GAS_LIMIT),
        "--silent",  # per-transaction logging costs throughput; errors still reach stderr
    ]
    if load_state is not None:
        args += ["--load-state", str(load_state)]
    else:  # a fixed genesis keeps deployments reproducible; a loaded state brings its own clock
        args += ["--timestamp", str(GENESIS_TIMESTAMP)]
    if dump_state is not None:
        args += ["--dump-state", str(dump_state)]
    if prune_history:
        args += ["--prune-history"]  # keeps memory flat on long runs, at the cost of old-block state reads
    return args + list(extra_args)


def start(
    port: int | None = None,
    *,
    load_state: Path | None = None,
    dump_state: Path | None = None,
    prune_history: bool = False,
    detach: bool = False,
    log_path: Path | None = None,
    timeout: float = 30.0,
    extra_args: tuple[str, ...] = (),
) -> AnvilNode:
    """Start anvil and wait until it answers. Raises DevnetError for a busy port or a node that dies."""
    port = port or free_port()
    if not port_is_free(port):
        raise DevnetError(f"port {port} on {HOST} is busy: stop what uses it or choose another --port")
    if load_state is not None and not Path(load_state).is_file():
        raise DevnetError(f"state file {load_state} does not exist")
    _sweep_states()
    STATES_ROOT.mkdir(parents=True, exist_ok=True)
    states = tempfile.mkdtemp(prefix=f"{port}-", dir=STATES_ROOT)
    args = anvil_args(
        port,
        load_state=load_state,
        dump_state=dump_state,
        prune_history=prune_history,
        extra_args=(*extra_args, STATES_FLAG, states),
    )
    # stderr goes to the log file, or to an unnamed temporary file: a pipe nobody reads would block anvil.
    log = open(log_path, "a+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115 (handed to the child)
    started = time.time()
    # Own session = own process group: stopping it stops anvil and nothing else, and a Ctrl-C aimed at the
    # CLI does not reach a detached node.
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )
    except OSError as error:
        log.close()
        shutil.rmtree(states, ignore_errors=True)
        raise DevnetError(f"cannot run anvil ({error}): run `make setup`") from None
    (Path(states) / "owner.pid").write_text(str(process.pid))  # for the sweep of folders whose node is gone
    node = AnvilNode(pid=process.pid, port=port, log_path=str(log_path) if log_path else None, args=args[1:])
    node.started_at = started
    if not detach:
        _attached[process.pid] = process
    try:
        _wait_until_ready(node, process, timeout, log)
    except BaseException:
        _terminate(process.pid, process)
        raise
    finally:
        log.close()  # the child keeps its own descriptor
    return node


def _wait_until_ready(node: AnvilNode, process: subprocess.Popen, timeout: float, log: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with requests.Session() as session:
        while True:
            code = process.poll()
            if code is not None:
                tail = _log_tail(log)
                raise DevnetError(f"anvil exited with code {code} while starting{': ' + tail if tail else ''}")
            try:
                answer = session.post(node.url, json=body, timeout=0.5).json()
                if int(answer["result"], 16) == CHAIN_ID:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise DevnetError(f"anvil did not answer on {node.url} within {timeout:.0f} s")
            time.sleep(0.01)


def _log_tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    lines = [line.strip() for line in log.read()[-4_000:].decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1][:300]


def stop(node: AnvilNode | int, timeout: float = 10.0) -> bool:
    """Stop a node by its pid (its process group). Returns False when it was not running."""
    pid = node.pid if isinstance(node, AnvilNode) else int(node)
    return _terminate(pid, _attached.get(pid), timeout)


def _terminate(pid: int, process: subprocess.Popen | None, timeout: float = 10.0) -> bool:
    _attached.pop(pid, None)
    if not _alive(pid, process):
        return False
    states = _states_of(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)  # SIGTERM lets anvil write --dump-state before exiting
    if not _wait_gone(pid, process, timeout):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid, process, 5.0)
    if states is not None:
        shutil.rmtree(states, ignore_errors=True)
    return True


def _states_of(pid: int) -> Path | None:
    """The node's own states folder (its --cache-path under STATES_ROOT), read from its command line."""
    args = _cmdline(pid)
    for flag, value in itertools.pairwise(args):
        if flag == STATES_FLAG and Path(value).parent == STATES_ROOT:
            return Path(value)
    return None


def _sweep_states() -> None:
    """Remove the states folders of nodes that are gone (killed without our stop: SIGKILL, a crashed test run)."""
    if not STATES_ROOT.is_dir():
        return
    for folder in STATES_ROOT.iterdir():
        try:
            owner = int((folder / "owner.pid").read_text())
        except (OSError, ValueError):
            if time.time() - folder.stat().st_mtime > 60:  # a start that never wrote its owner
                shutil.rmtree(folder, ignore_errors=True)
            continue
        if not _alive(owner, None) or STATES_FLAG not in _cmdline(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def _alive(pid: int, process: subprocess.Popen | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, process: subprocess.Popen | None, timeout: float) -> bool:
    if process is not None:
        try:
            process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    # Not our child (started by another `liq` process): it is gone once it is a zombie awaiting its reaper.
    deadline = time.monotonic() + timeout
    while _alive(pid, None):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@atexit.register
def _stop_attached() -> None:
    for pid, process in list(_attached.items()):
        _terminate(pid, process, timeout=5.0)


# --- the pid file: how `liq devnet down` finds a node started by another process ----------------------------


def pid_file(data_dir: Path | str) -> Path:
    return devnet_dir(data_dir) / PID_FILE


def write_pid_file(data_dir: Path | str, node: AnvilNode) -> Path:
    path = pid_file(data_dir)
    path.write_text(json.dumps(asdict(node) | {"url": node.url}, indent=2))
    return path


def running_node(data_dir: Path | str) -> AnvilNode | None:
    """The node recorded in the pid file if it still runs (and is anvil); a stale file is removed."""
    path = pid_file(data_dir)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        node = AnvilNode(
            pid=int(record["pid"]),
            port=int(record["port"]),
            host=record.get("host", HOST),
            log_path=record.get("log_path"),
            args=list(record.get("args", [])),
            started_at=float(record.get("started_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not _is_our_anvil(node):
        path.unlink(missing_ok=True)
        return None
    return node


def _is_our_anvil(node: AnvilNode) -> bool:
    """Guards against pid reuse: the process must be anvil, listening on the recorded port."""
    try:
        proc = psutil.Process(node.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(cmdline) and Path(cmdline[0]).name == "anvil" and str(node.port) in cmdline


def stop_recorded(data_dir: Path | str, timeout: float = 10.0) -> AnvilNode | None:
    """Stop the node of the pid file; None when none was running."""
    node = running_node(data_dir)
    if node is None:
        return None
    stop(node, timeout)
    pid_file(data_dir).unlink(missing_ok=True)
    return node
