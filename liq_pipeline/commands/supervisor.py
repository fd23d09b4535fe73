"""Run several long-lived processes as one: start in order, wait until each is ready, stop them all together.

`make dev` uses it. Each child gets its own process group, so stopping it stops what it started too (dagster dev
starts five processes). Measured trap: a child started from a non-interactive shell inherits SIGINT ignored, and
dagster copies that onto SIGTERM; the supervisor resets both signals in each child and stops children by their
own process group with SIGTERM, then SIGKILL after a grace period.
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

Ready = Callable[[], bool]


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
        """Stop children in reverse start order, each by its process group."""
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=grace)
            # children of the group that outlived their leader
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.children.clear()
