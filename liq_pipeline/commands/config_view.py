"""`liq config`: the effective settings as an env file that reads back to the same settings (secrets masked).

Each line is NAME=value as config.py parses it: lists comma-separated, booleans true/false, empty for no value,
single quotes around a value with spaces or characters an env file reader would interpret (python-dotenv takes
single-quoted values literally). RPC_URL, REDIS_URL and ALERT_WEBHOOK_URL show scheme://host[:port] and *** for
what may carry a key; every other secret (EXECUTOR_PRIVATE_KEY, EXECUTOR_KEYSTORE_PASSWORD) shows *** when set.
`--json` prints the same values as one JSON object (lists as lists, numbers as numbers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ..config import Settings
from . import runtime
from .redaction import MASK, mask_url

_PLAIN = re.compile(r"[A-Za-z0-9_.,:/@+*=\-]*")
# Secrets whose scheme and host are worth showing; any other secret shows nothing of itself.
_URL_SECRETS = {"rpc_url", "rpc_ws_url", "redis_url", "alert_webhook_url"}


def _value(value: Any, name: str = "") -> Any:
    """The JSON form of a setting's value, secrets masked."""
    if isinstance(value, SecretStr):
        return mask_url(value.get_secret_value()) if name in _URL_SECRETS else MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def env_text(value: Any) -> str:
    """The env-file form of a JSON value: what config.py parses back to it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = ",".join(value) if isinstance(value, list) else str(value)
    if _PLAIN.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def settings_values(settings: Settings) -> dict[str, Any]:
    return {name.upper(): _value(getattr(settings, name), name) for name in Settings.model_fields}


def main(as_json: bool) -> None:
    values = settings_values(runtime.settings())
    if as_json:
        print(json.dumps(values, indent=2))
        return
    for name, value in values.items():
        print(f"{name}={env_text(value)}")
