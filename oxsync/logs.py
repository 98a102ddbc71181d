"""Structured logging: one JSON object per line, `extra=` fields included, secrets never written.

Code logs through stdlib `logging` with `extra={...}` fields. The formatter also redacts any field whose
name looks like a secret, as a second line of defence: callers must not pass passwords in the first place.
Twisted's own log events are bridged into the same stdlib loggers by `configure_logging`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from oxsync.config import LogSettings

if TYPE_CHECKING:
    from twisted.python.failure import Failure

_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}
SECRET_FIELDS = frozenset({"password", "passwd", "authorization", "secret", "token", "credentials", "cookie"})
REDACTED = "[redacted]"


def failure_exc_info(failure: Failure) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    """`exc_info=` for a Twisted Failure, so the log line carries the failure's own traceback."""
    value = failure.value
    assert value is not None, "Failure() is never built without an exception (Twisted types it Optional)"
    return type(value), value, failure.getTracebackObject()


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields..., "exc"}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_FIELDS or key.startswith("_"):
                continue
            entry[key] = REDACTED if key.lower() in SECRET_FIELDS else _plain(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`ts level logger: msg key=value ...` on one line; the same redaction as the JSON format."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [f"{ts} {record.levelname.lower()} {record.name}: {record.getMessage()}"]
        for key, value in vars(record).items():
            if key in _RECORD_FIELDS or key.startswith("_"):
                continue
            shown = REDACTED if key.lower() in SECRET_FIELDS else _plain(value)
            parts.append(f"{key}={json.dumps(shown, ensure_ascii=False) if not isinstance(shown, int) else shown}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class PrivateWatchedFileHandler(logging.handlers.WatchedFileHandler):
    """A log file that is reopened when logrotate moves it away, and always created 0600."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def log_handler(destination: str = "stderr", fmt: str = "json", stream: IO[str] | None = None) -> logging.Handler:
    """The handler for a `[log]` destination and format."""
    handler: logging.Handler
    if stream is not None or destination == "stderr":
        handler = logging.StreamHandler(stream or sys.stderr)
    else:
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        handler = PrivateWatchedFileHandler(destination, encoding="utf-8")
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    return handler


def configure_from_settings(settings: LogSettings) -> logging.Handler:
    """`oxsync serve`'s logging from its `[log]` settings."""
    return configure_logging(settings.level.upper(), handler=log_handler(settings.destination, settings.format))


def configure_logging(level: int | str = logging.INFO, stream: IO[str] | None = None,
                      bridge_twisted: bool = True, handler: logging.Handler | None = None) -> logging.Handler:
    """Send all records of the root logger to `handler` (default: JSON lines on `stream`, else stderr)."""
    if handler is None:
        handler = log_handler(stream=stream or sys.stderr)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if bridge_twisted:
        from twisted.logger import STDLibLogObserver, globalLogBeginner

        globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
    return handler


def safe_uri(uri: bytes | str) -> str:
    """The request target for logs: the query string is dropped when it mentions a password."""
    text = uri.decode("latin-1") if isinstance(uri, bytes) else uri
    path, sep, query = text.partition("?")
    if sep and ("password" in query.lower() or "passwd" in query.lower()):
        return f"{path}?{REDACTED}"
    return text


def access_log_fields(request: Any, duration_ms: float | None = None) -> dict[str, Any]:
    """Fields of one access-log line for a twisted.web request. Headers are never copied wholesale:
    only the user agent is kept, so `Authorization` (and cookies) cannot leak."""
    address = request.getClientAddress()
    principal = getattr(request, "principal", None)
    fields: dict[str, Any] = {
        "event": "http.access",
        "address": getattr(address, "host", str(address)),
        "method": _plain(request.method),
        "uri": safe_uri(request.uri),
        "status": request.code,
        "bytes": request.sentLength,
        "user_agent": _plain(request.getHeader(b"user-agent") or ""),
    }
    if principal is not None:
        fields["login"] = principal.login
        fields["tenant"] = principal.tenant_id
    if duration_ms is not None:
        fields["duration_ms"] = round(duration_ms, 2)
    return fields
