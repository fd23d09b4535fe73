"""What every benchmark's report must carry, checked the same way for each of them."""

from __future__ import annotations

import json
from datetime import datetime

from liq_pipeline.bench.report import COMMON_FIELDS, render


def assert_report(report: dict, bench: str, params: dict) -> None:
    """The common fields, sane; the report survives a JSON round trip unchanged (no Path, no numpy scalar)."""
    for key in COMMON_FIELDS:
        assert key in report, key
    assert report["bench"] == bench
    assert report["params"] == params
    assert report["peak_rss_mb"] > 0 and report["elapsed_s"] >= 0
    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert all(machine[key] for key in ("python", "numpy", "polars", "platform"))
    assert datetime.fromisoformat(report["timestamp"]).tzinfo is not None
    assert json.loads(render(report)) == report
