"""What the server logs, and how: an access line per request, an audit line per security event.

Loggers:

- ``authkestra.server.access``: one line per request -- method, path (never the
  query string), status, client id, latency, request id, address.
- ``authkestra.server.audit``: tokens issued, authentication refused (and why),
  throttling, revocations, every change to a client or a key and the door it came
  through (``cli``, ``admin``, ``registration``, ``server``).
- ``authkestra.server``: the rest (start, store trouble, unexpected errors).

``--log-format json`` writes one JSON object per line, ``text`` (the default) a
readable line with ``name=value`` fields. Nothing secret is ever passed to a log
call: no secret, assertion, certificate, DPoP proof or whole token -- a token is
named by its ``jti``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import re
import secrets
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ACCESS",
    "AUDIT",
    "LOG_FORMATS",
    "JsonFormatter",
    "RequestLog",
    "TextFormatter",
    "audit",
    "authenticated_client",
    "current_request",
    "logging_config",
    "new_request_id",
    "skip_what_no_line_shows",
]

ACCESS = logging.getLogger("authkestra.server.access")
AUDIT = logging.getLogger("authkestra.server.audit")
LOG_FORMATS = ("text", "json")

#: The longest client-supplied value (a client id as claimed, a request id) a line holds.
_MAX_VALUE = 128
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclasses.dataclass
class RequestLog:
    """What the access line of the request being answered says, filled in as it is served.

    Held in a context variable that worker threads inherit, so the client id found in
    a thread reaches the line written when the response goes out.
    """

    request_id: str
    client_id: str | None = None
    #: True once the client proved who it is (its id may then label metrics).
    authenticated: bool = False


_current: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar(
    "authkestra_request", default=None
)


def current_request() -> RequestLog | None:
    """The request being answered in this context, if any."""
    return _current.get()


def begin_request(request_id: str) -> contextvars.Token[RequestLog | None]:
    return _current.set(RequestLog(request_id))


def end_request(token: contextvars.Token[RequestLog | None]) -> None:
    _current.reset(token)


def new_request_id(given: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane one, else a new random id."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return secrets.token_hex(8)


def note_client(client_id: str | None, *, authenticated: bool = False) -> None:
    """The client the current request claimed to be, or (``authenticated``) proved it is."""
    request = _current.get()
    if request is not None and client_id is not None:
        request.client_id = client_id[:_MAX_VALUE]
        request.authenticated = authenticated


def authenticated_client() -> str | None:
    """The id of the client the current request authenticated as, if it did."""
    request = _current.get()
    return request.client_id if request is not None and request.authenticated else None


def audit(event: str, **fields: Any) -> None:
    """One audit line: ``event`` and its fields (the current request id added)."""
    if not AUDIT.isEnabledFor(logging.INFO):
        return  # nothing would be written: build nothing (this is on the token path)
    request = _current.get()
    if request is not None:
        fields.setdefault("request_id", request.request_id)
    AUDIT.info(event, extra={"fields": _bounded(fields)})


def _bounded(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value[:_MAX_VALUE] if isinstance(value, str) else value
        for name, value in fields.items()
    }


#: Level names as lines write them (a dict: ``levelname.lower()`` on every line adds up).
_LEVELS: dict[int, str] = {
    logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
    logging.ERROR: "error", logging.CRITICAL: "critical", 5: "trace",
}  # fmt: skip


def _level(record: logging.LogRecord) -> str:
    return _LEVELS.get(record.levelno) or record.levelname.lower()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _timestamp(record),
            "level": _level(record),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(getattr(record, "fields", {}))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """``time level logger message name=value ...``; values with spaces or quotes quoted."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), _level(record), record.name, record.getMessage()]
        parts += [f"{name}={_text(value)}" for name, value in getattr(record, "fields", {}).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


#: A value written as it is: printable ASCII without space, quote, equals sign or backslash.
_PLAIN = re.compile(r"[!#-<>-\[\]-~]+")


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=True)  # quoted: it cannot forge a field or a line


_second_text: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-12-06T07:58:50.123Z``; the part up to the second made once a second."""
    global _second_text  # noqa: PLW0603 - a one-entry cache, replaced whole (thread-safe)
    second = int(record.created)
    cached = _second_text
    if cached[0] != second:
        moment = datetime.fromtimestamp(second, timezone.utc)
        cached = _second_text = (second, moment.strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((record.created - second) * 1000):03d}Z"


def skip_what_no_line_shows() -> None:
    """Stop the logging module from collecting, per line, what no line of ours shows:
    the caller's source file and line, thread, process (the logging HOWTO's
    "Optimization": a quarter of a logged token request's time goes there otherwise)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the server and uvicorn: every line to stderr
    in ``log_format``, at ``level`` (``trace`` is uvicorn's level below debug)."""
    formatter = "json" if log_format == "json" else "text"
    python_level = "DEBUG" if level == "trace" else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": python_level, "propagate": False}
            for name in ("authkestra", "uvicorn", "uvicorn.error")
        },
    }
