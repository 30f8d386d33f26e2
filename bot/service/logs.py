"""Structured logs for ``cartif-bot run``: text or JSON lines, every record with its run id, secrets redacted.

Where it sits: ``bot.service.serving`` calls ``configure_logging`` once at start; the runner sets
``run_id_var`` while a cycle runs, so every log line of that cycle — from the bot, the connectors
or the SDKs — carries its ``run_id`` (a contextvar follows ``asyncio`` tasks and ``to_thread``).

Log fields (JSON): ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, ``run_id`` (or
null outside a cycle), and ``exc`` for a traceback. Redaction runs on the formatted line, last:
the configured secrets (client secret, API token, clientState, webhook URLs, database password)
and anything shaped like a JWT or a ``Bearer`` credential become ``[redacted]``, whatever logger
produced them.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

__all__ = ["REDACTED", "RedactingFormatter", "configure_logging", "redact", "run_id_var"]

run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("cartif_run_id", default=None)

REDACTED = "[redacted]"
#: A JWT: three base64url segments, the first two starting with '{"' encoded (eyJ).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
#: Shortest secret worth searching for: shorter values would redact ordinary words.
_MIN_SECRET = 6


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, JWT and bearer credential replaced by ``[redacted]``."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, REDACTED)
    text = _JWT.sub(REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingFormatter(logging.Formatter):
    """Formats as text or JSON, adds the run id, and redacts (see the module docstring)."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.json = fmt == "json"
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        run_id = getattr(record, "run_id", None) or run_id_var.get()
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        exc = self.formatException(record.exc_info) if record.exc_info else None
        if self.json:
            data = {"time": when, "level": record.levelname, "logger": record.name, "message": message,
                    "run_id": run_id}
            if exc:
                data["exc"] = exc
            line = json.dumps(data, ensure_ascii=False)
        else:
            line = f"{when} {record.levelname:<7} {record.name}" + (f" [{run_id}]" if run_id else "") + f": {message}"
            if exc:
                line += "\n" + exc
        return redact(line, self.secrets)


def configure_logging(fmt: str, level: str, secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Route every logger to one handler on ``stream`` (stderr) with the redacting formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request lines of the HTTP libraries would drown the cycle's own lines; uvicorn's access
    # log is replaced by the API's request counter (/metrics).
    for noisy in ("httpx", "httpcore", "uvicorn.access", "azure", "msal", "urllib3", "office365"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
