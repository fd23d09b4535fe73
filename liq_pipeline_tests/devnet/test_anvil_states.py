"""anvil's persisted states (--cache-path): one folder per node, removed when the node stops, and swept when the
node died without our stop. Left to anvil they pile up in ~/.foundry/anvil/tmp (61 GB measured on this machine)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from liq_pipeline.devnet import anvil

pytestmark = pytest.mark.integration


def _states(node: anvil.AnvilNode):
    folder = anvil._states_of(node.pid)
    assert folder is not None and folder.parent == anvil.STATES_ROOT and folder.is_dir(), node.args
    return folder


def test_a_stopped_node_leaves_no_states_and_a_killed_ones_are_swept():
    node = anvil.start()
    folder = _states(node)
    assert (folder / "owner.pid").read_text() == str(node.pid)
    anvil.stop(node)
    assert not folder.exists()

    killed = anvil.start(detach=True)  # as `liq devnet up` starts it; then killed outright (no stop of ours)
    left = _states(killed)
    os.killpg(killed.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while anvil._alive(killed.pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left.exists()
    other = anvil.start()  # the next start sweeps the dead node's folder, not a live one's
    try:
        assert not left.exists()
        assert _states(other).exists()
    finally:
        anvil.stop(other)
