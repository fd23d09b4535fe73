"""The process supervisor behind `make dev`: children start in order, and stopping leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from liq_pipeline.commands.supervisor import Child, Supervisor, SupervisorError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def _start_child_with_grandchild(name, marker, ignored_signal, start_new_session=False):
    """A supervised child that starts a grandchild ignoring `ignored_signal`, writes its pid to `marker` and
    waits: (the supervisor, the child, the grandchild's pid)."""
    grandchild_code = f"import signal, time; signal.signal(signal.{ignored_signal}, signal.SIG_IGN); time.sleep(600)"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild_code!r}], start_new_session={start_new_session})\n"
        f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    supervisor = Supervisor(say=lambda _m: None)
    child = supervisor.start(Child(name, [sys.executable, "-c", script], ready=marker.exists))
    return supervisor, child, int(marker.read_text())


def test_children_and_grandchildren_stop_together(tmp_path):
    marker = tmp_path / "grandchild.pid"
    # a child that starts a grandchild ignoring SIGINT (like `dagster dev &` in a script) and waits
    supervisor, child, grandchild = _start_child_with_grandchild("sleeper", marker, "SIGINT")
    assert _alive(child.process.pid) and _alive(grandchild)
    supervisor.stop_all(grace=5)
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert child.process.poll() is not None


def test_a_child_that_dies_before_ready_is_named(tmp_path):
    supervisor = Supervisor(say=lambda _m: None)
    log = tmp_path / "bad.log"
    with pytest.raises(SupervisorError, match=r"broken exited with code 3 \(log: .*bad.log\)"):
        supervisor.start(
            Child("broken", [sys.executable, "-c", "raise SystemExit(3)"], ready=lambda: False, log_path=log)
        )
    supervisor.stop_all()


def test_wait_returns_the_child_that_exited(tmp_path):
    supervisor = Supervisor(say=lambda _m: None)
    supervisor.start(Child("long", [sys.executable, "-c", "import time; time.sleep(600)"]))
    short = supervisor.start(Child("short", [sys.executable, "-c", "pass"]))
    assert supervisor.wait(poll=0.05) is short
    supervisor.stop_all()


def test_sigint_in_the_parent_shell_is_not_inherited(tmp_path):
    # start the supervisor's child from a parent that ignores SIGINT: the child must still stop on SIGTERM
    code = (
        "import signal, sys, time\n"
        "from liq_pipeline.commands.supervisor import Child, Supervisor\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "s = Supervisor(say=lambda m: None)\n"
        "c = s.start(Child('x', [sys.executable, '-c', 'import time; time.sleep(600)']))\n"
        "print(c.process.pid, flush=True)\n"
        "s.stop_all(grace=3)\n"
        "print(c.process.returncode, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = out.stdout.split()
    assert int(lines[1]) == -signal.SIGTERM, out.stderr


def test_every_child_is_signalled_at_once(tmp_path):
    # each child, on SIGTERM, waits up to 20 s for the other's SIGTERM: stopped one after the other, the first
    # would never see the second's (it only comes once the first has exited)
    script = (
        "import os, signal, sys, time\n"
        "me, other = sys.argv[1], sys.argv[2]\n"
        "def stop(*_):\n"
        "    open(me + '.term', 'w').close()\n"
        "    deadline = time.monotonic() + 20\n"
        "    while not os.path.exists(other + '.term') and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    if os.path.exists(other + '.term'):\n"
        "        open(me + '.together', 'w').close()\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "open(me + '.up', 'w').close()\n"
        "time.sleep(600)\n"
    )
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    supervisor = Supervisor(say=lambda _m: None)
    for me, other in ((a, b), (b, a)):
        supervisor.start(
            Child(me, [sys.executable, "-c", script, me, other], ready=lambda m=me: os.path.exists(m + ".up"))
        )
    supervisor.stop_all(grace=60)
    assert os.path.exists(a + ".together") and os.path.exists(b + ".together")


def test_a_descendant_that_left_the_group_and_ignores_sigterm_is_killed(tmp_path):
    marker = tmp_path / "escaped.pid"
    # the grandchild starts a session of its own (not reached by the child's process group) and ignores SIGTERM
    supervisor, child, escaped = _start_child_with_grandchild("parent", marker, "SIGTERM", start_new_session=True)
    assert os.getpgid(escaped) != os.getpgid(child.process.pid)
    supervisor.stop_all(grace=5)
    assert not _alive(escaped)
    assert child.process.returncode == -signal.SIGTERM
