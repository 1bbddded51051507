"""Structured JSON logs, one object per line, carrying the request id.

Backed by aws-lambda-powertools' Logger (the shared layer): its JSON formatter
(``level``, ``location``, ``message``, ``timestamp``, ``service`` from
``POWERTOOLS_SERVICE_NAME``, the X-Ray trace id when traced) plus the keys bound
per request (``requestId``, ``function``) and the fields of each call. This
module keeps the interface the handlers use (``configure``, ``bind``,
``info``/``warning``/``error``/``debug``, ``exception``, ``set_stream``).

Rules: never log request bodies or personal data (names, emails, phone
numbers, addresses) at INFO; log identifiers, routes, statuses and timings.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, TextIO

from aws_lambda_powertools import Logger

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}

_state: dict[str, Any] = {"stream": None}


class _Stream:
    """Resolves the destination at write time: ``set_stream``'s, else the current stdout
    (which Lambda ships to CloudWatch)."""

    def write(self, text: str) -> int:
        return (_state["stream"] or sys.stdout).write(text)

    def flush(self) -> None:
        (_state["stream"] or sys.stdout).flush()


_stream = _Stream()
_logger = Logger(level="INFO", stream=_stream, log_uncaught_exceptions=False)


def configure(level: str) -> None:
    _logger.setLevel(level.upper() if level.upper() in LEVELS else "INFO")


def set_stream(stream: TextIO | None) -> None:
    """Where log lines go (default: stdout, which Lambda ships to CloudWatch)."""
    _state["stream"] = stream


def bind(request_id: str, function: str = "") -> None:
    # service read per request: a process serving several functions (deployctl local) sets each one's environment
    _logger.append_keys(requestId=request_id, function=function or None,
                        service=os.environ.get("POWERTOOLS_SERVICE_NAME") or _logger.service)


def enabled(level: str) -> bool:
    return _logger.isEnabledFor(LEVELS[level])


def _emit(level: str, message: str, depth: int, fields: dict[str, Any]) -> None:
    if enabled(level):
        # depth: how far up the stack the caller is, for the record's "location"
        getattr(_logger, level.lower())(message, stacklevel=depth, **fields)


def emit(level: str, message: str, **fields: Any) -> None:
    _emit(level, message, 4, fields)


def debug(message: str, **fields: Any) -> None:
    _emit("DEBUG", message, 4, fields)


def info(message: str, **fields: Any) -> None:
    _emit("INFO", message, 4, fields)


def warning(message: str, **fields: Any) -> None:
    _emit("WARNING", message, 4, fields)


def error(message: str, **fields: Any) -> None:
    _emit("ERROR", message, 4, fields)


def exception(message: str, exc: BaseException, **fields: Any) -> None:
    """An unexpected error with its traceback (the client only sees a generic message)."""
    _emit("ERROR", message, 4, {"error": type(exc).__name__,
                                "traceback": "".join(traceback.format_exception(exc)), **fields})


def write_json(record: dict[str, Any]) -> None:
    """One raw JSON line on the log stream (an Embedded Metric Format blob: shared.metrics)."""
    _stream.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
    _stream.flush()
