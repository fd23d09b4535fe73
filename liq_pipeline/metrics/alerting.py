"""Alerts: a log line, the market's Redis Stream `alerts`, and an optional webhook (ALERT_WEBHOOK_URL).

Each sink is tried independently: Redis being down must not stop the log line or the webhook, and a webhook that
does not answer must not stop anything (2 s timeout). The webhook URL may carry a token: it is never logged.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from ..cache.alerts import Alert
from ..config import Settings

log = logging.getLogger("liq_pipeline.alerts")


@dataclass
class AlertEvent:
    kind: str  # e.g. check_failed, run_failed
    message: str
    severity: str = "WARN"  # WARN or ERROR
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


def raise_alert(settings: Settings, alert: AlertEvent, cache=None) -> dict[str, str]:
    """Send the alert to every sink; returns what happened per sink (for run logs and tests)."""
    outcome: dict[str, str] = {}
    level = logging.ERROR if alert.severity == "ERROR" else logging.WARNING
    log.log(level, "ALERT %s [%s] %s %s", alert.kind, alert.severity, alert.message, json.dumps(alert.details))
    outcome["log"] = "written"
    if cache is not None:
        stream_severity = {"ERROR": "critical", "WARN": "warning"}.get(alert.severity, "info")
        try:
            result = cache.append_alert(Alert(alert.kind, alert.message, stream_severity, alert.at, alert.details))
            outcome["redis"] = str(result)
        except Exception as error:  # a sink failing must not stop the others
            outcome["redis"] = f"failed: {type(error).__name__}"
    if settings.alert_webhook_url is not None:
        try:
            response = requests.post(settings.alert_webhook_url.get_secret_value(), json=asdict(alert), timeout=2)
            outcome["webhook"] = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            outcome["webhook"] = f"failed: {type(error).__name__}"
            log.warning("alert webhook did not answer (%s)", type(error).__name__)
    return outcome
