"""No secret in anything the `liq` command writes, at any log level.

RPC_URL usually carries an API key (in the path, the query or user:password@), REDIS_URL a password,
ALERT_WEBHOOK_URL a token; EXECUTOR_PRIVATE_KEY and EXECUTOR_KEYSTORE_PASSWORD are secrets whole. What could show
them:
- log records of any logger, ours or a library's (urllib3 logs each request line, path and query included, at
  DEBUG): a log record factory cuts the secret pieces out of every message when the record is made, whichever
  handler then writes it, and the command's own handler cuts them out of the formatted line again (tracebacks);
- error lines and crash tracebacks: printed through `redact`;
- `liq config`: shows each URL as `mask_url` does, scheme://host[:port]/*** (***@ for user info).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..chain.rpc import url_secrets
from ..config import Settings

MASK = "***"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# user info of any URL in any text (the embedded Redis's TCP URL carries a password there)
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def mask_url(url: str | None) -> str:
    """scheme://host[:port], with ***@ for user info and /*** for any path, query or fragment ("" for no URL).

    unix:// keeps its socket path (not a secret) and masks its query (where a password may be).
    """
    if not url:
        return ""
    parts = urlsplit(url)
    userinfo = f"{MASK}@" if "@" in parts.netloc else ""
    if parts.scheme == "unix":
        return f"unix://{userinfo}{parts.path}{f'?{MASK}' if parts.query else ''}"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = f"/{MASK}" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{userinfo}{host}{port}{rest}"


class Redactor:
    """Cuts the given secret pieces, and the user info of any URL, out of a text."""

    def __init__(self, pieces: Iterable[str] = ()):
        self.pieces = sorted({piece for piece in pieces if len(piece) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _USERINFO.sub(rf"\1{MASK}@", text)
        for piece in self.pieces:
            text = text.replace(piece, MASK)
        return text


def redactor_for(settings: Settings) -> Redactor:
    pieces: list[str] = []
    for secret in (settings.rpc_url, settings.rpc_ws_url, settings.redis_url, settings.alert_webhook_url):
        if secret is None:
            continue
        url = secret.get_secret_value()
        parts = urlsplit(url)
        if parts.scheme == "unix":  # the socket path is not a secret, a password in the query is
            url = f"unix://{parts.netloc}/?{parts.query}"
        pieces += url_secrets(url)
    if settings.executor_private_key is not None:  # with or without 0x, in either case
        key = settings.executor_private_key.get_secret_value().removeprefix("0x")
        pieces += [key, key.lower(), key.upper()]
    if settings.executor_keystore_password is not None:
        pieces.append(settings.executor_keystore_password.get_secret_value())
    return Redactor(pieces)


_redactor = Redactor()  # until the settings are read: user info only


def redact(text: str) -> str:
    """`text` without the secrets of the settings read by `install` (before that: without URLs' user info)."""
    return _redactor(text)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_make_record = logging.getLogRecordFactory()


def _redacted_record(*args, **kwargs) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed call of a library's: left for logging to report
        return record
    cleaned = redact(message)
    if cleaned != message or record.args:
        record.msg, record.args = cleaned, None
    return record


def install(settings: Settings) -> None:
    """Redact with the secrets of `settings` from now on; log to stderr at LOG_LEVEL through the redactor."""
    global _redactor
    _redactor = redactor_for(settings)
    logging.setLogRecordFactory(_redacted_record)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(LOG_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
