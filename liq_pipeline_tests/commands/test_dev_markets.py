"""`liq dev --protocols 3.6,3.0`: one market per protocol version, each its own data dir, ports and Dagster code
location (the run itself: test_dev_signals.py)."""

from __future__ import annotations

import json

import pytest

from liq_pipeline.commands.dev import dev_markets, markets_workspace
from liq_pipeline.commands.supervisor import SupervisorError
from liq_pipeline.config import load_settings


def test_dev_names_one_location_per_protocol_with_its_env_file(tmp_path):
    settings = load_settings(data_dir=tmp_path, metrics_port=9464, exporter_port=9465)
    (one,) = dev_markets(settings, [])
    assert one.name is None and one.data_dir == tmp_path.absolute() and one.child("watcher") == "watcher"
    v36, v30 = dev_markets(settings, ["3.6", "v3.0"])
    assert (v36.name, v30.name, v30.protocol) == ("v36", "v30", "3.0")
    assert v30.data_dir == tmp_path.absolute() / "markets" / "v30"
    assert (v36.metrics_port, v36.exporter_port, v30.metrics_port, v30.exporter_port) == (9464, 9465, 9466, 9467)
    with pytest.raises(SupervisorError, match="each protocol version once"):
        dev_markets(settings, ["3.6", "3.6.0"])
    with pytest.raises(SupervisorError, match=r"--protocols 3\.6,3\.5: .*not '3\.5'"):
        dev_markets(settings, ["3.6", "3.5"])
    path, env = markets_workspace([v36, v30], tmp_path)
    text = path.read_text()
    assert text.count("module_name: liq_pipeline.definitions") == 2 and "location_name: v30" in text
    assert json.loads(env["DAGSTER_PROJECT_ENV_FILE_PATHS"]) == {"v36": str(v36.data_dir), "v30": str(v30.data_dir)}
