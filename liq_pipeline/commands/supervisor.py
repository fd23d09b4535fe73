"""Run several long-lived processes as one: start in order, wait until each is ready, stop them all together.

`make dev` uses it. Each child gets its own process group, so stopping it stops what it started too (dagster dev
starts five processes). Measured trap: a child started from a non-interactive shell inherits SIGINT ignored, and
dagster copies that onto SIGTERM; the supervisor resets both signals in each child. Stopping is concurrent: every
child's process group gets SIGTERM at once, all share one deadline, then whatever is left of their process trees
gets SIGKILL (a descendant that left its group too: the trees are read before the first signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

Ready = Callable[[], bool]
KILL_WAIT = 5.0  # after SIGKILL: the kernel only has to reap


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    ready: Ready | None = None  # returns True once the child serves; None = ready when started
    ready_timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen | None = None


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class SupervisorError(RuntimeError):
    """A child failed to start or became ready too late; the message names it and where its log is."""


class Supervisor:
    def __init__(self, say: Callable[[str], None] = print):
        self.children: list[Child] = []
        self.say = say

    def start(self, child: Child) -> Child:
        log = open(child.log_path, "ab") if child.log_path else subprocess.DEVNULL  # noqa: SIM115
        child.process = subprocess.Popen(
            list(child.argv),
            env={**os.environ, **child.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stop it and everything it started
            preexec_fn=_reset_signals,  # the child must obey SIGINT/SIGTERM again
        )
        self.children.append(child)
        deadline = time.monotonic() + child.ready_timeout
        while child.ready is not None and not child.ready():
            if child.process.poll() is not None:
                raise SupervisorError(f"{child.name} exited with code {child.process.returncode}{self._log(child)}")
            if time.monotonic() > deadline:
                raise SupervisorError(f"{child.name} not ready after {child.ready_timeout:.0f}s{self._log(child)}")
            time.sleep(0.2)
        return child

    @staticmethod
    def _log(child: Child) -> str:
        return f" (log: {child.log_path})" if child.log_path else ""

    def failed(self) -> Child | None:
        """The first child that exited on its own, if any."""
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def wait(self, poll: float = 0.5) -> Child | None:
        """Block until a child exits (returned) or KeyboardInterrupt."""
        while True:
            dead = self.failed()
            if dead is not None:
                return dead
            time.sleep(poll)

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop every child at once: SIGTERM to each process group, then one deadline `grace` s away for all the
        children to exit; SIGKILL to whatever is left of their process trees once they have (what a child leaves
        behind is an orphan: measured, dagster dev exits ~1.5 s before its code server) or at the deadline."""
        leaders = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        tree = _descendants(leaders)
        for process in leaders:
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in leaders) and time.monotonic() < deadline:
            time.sleep(0.05)
        tree += _descendants([p for p in tree if _alive(p)])  # started since the trees were read
        for process in leaders:
            _signal_group(process.pid, signal.SIGKILL)
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        deadline = time.monotonic() + KILL_WAIT
        while _any_alive(leaders, tree) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.children.clear()


def _descendants(processes: Sequence[subprocess.Popen | psutil.Process]) -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            found += psutil.Process(process.pid).children(recursive=True)
    return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a dead process whose parent has not reaped it yet is gone for us)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _any_alive(leaders: Sequence[subprocess.Popen], tree: Sequence[psutil.Process]) -> bool:
    # the leaders are our children: poll() reaps them and keeps their exit code
    return any(p.poll() is None for p in leaders) or any(_alive(p) for p in tree)
