"""Structured JSON logs, one object per line, carrying the request id.

Rules: never log request bodies or personal data (names, emails, phone
numbers, addresses) at INFO; log identifiers, routes, statuses and timings.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any, TextIO

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}

_state: dict[str, Any] = {"level": 20, "request_id": "", "function": "", "stream": None}


def configure(level: str) -> None:
    _state["level"] = LEVELS.get(level.upper(), 20)


def set_stream(stream: TextIO | None) -> None:
    """Where log lines go (default: stdout, which Lambda ships to CloudWatch)."""
    _state["stream"] = stream


def bind(request_id: str, function: str = "") -> None:
    _state["request_id"] = request_id
    _state["function"] = function


def enabled(level: str) -> bool:
    return LEVELS[level] >= _state["level"]


def emit(level: str, message: str, **fields: Any) -> None:
    if not enabled(level):
        return
    record = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": level,
        "message": message,
        "requestId": _state["request_id"],
    }
    if _state["function"]:
        record["function"] = _state["function"]
    record.update(fields)
    stream = _state["stream"] or sys.stdout
    stream.write(json.dumps(record, default=str, ensure_ascii=True) + "\n")
    stream.flush()


def debug(message: str, **fields: Any) -> None:
    emit("DEBUG", message, **fields)


def info(message: str, **fields: Any) -> None:
    emit("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    emit("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    emit("ERROR", message, **fields)


def exception(message: str, exc: BaseException, **fields: Any) -> None:
    """An unexpected error with its traceback (the client only sees a generic message)."""
    emit("ERROR", message, error=type(exc).__name__,
         traceback="".join(traceback.format_exception(exc)), **fields)
