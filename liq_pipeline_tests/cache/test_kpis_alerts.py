"""KPI hash for the exporter and the alerts stream."""

from __future__ import annotations

import pytest

from liq_pipeline.cache import Alert, append_alert, get_kpis, read_alerts, set_kpis


def test_kpis_keep_value_and_update_time(make_cache):
    cache = make_cache(max_pipeline=2)
    cache.clock = lambda: 1_700_000_000.5
    set_kpis(cache, {"candidates": 12, "eval_ms": 41.5, "chain": "base", "ok": True, "missing": None})
    set_kpis(cache, {"candidates": 13}, updated_at=1_700_000_002.0)
    values = get_kpis(cache)
    assert values["candidates"].value == 13 and values["candidates"].updated_at == 1_700_000_002.0
    assert values["eval_ms"].value == 41.5 and values["eval_ms"].updated_at == 1_700_000_000.5
    assert values["ok"].value is True and values["missing"].value is None
    assert set(get_kpis(cache, ["chain", "nope"])) == {"chain"}


def test_alerts_page_forward(cache):
    first = append_alert(cache, Alert("miss_rate", "miss rate 12 % over 100 blocks", "critical", details={"n": 12}))
    append_alert(cache, Alert("latency", "p95 over budget"))
    alerts = read_alerts(cache)
    assert [(a.kind, a.severity, a.details) for a in alerts] == [
        ("miss_rate", "critical", {"n": 12}),
        ("latency", "warning", {}),
    ]
    assert alerts[0].id == first and alerts[0].at > 0
    assert [a.kind for a in read_alerts(cache, after_id=first)] == ["latency"]
    with pytest.raises(ValueError, match="severity"):
        append_alert(cache, Alert("x", "y", "loud"))
