"""Structured JSON logs, one object per line, carrying the request id.

Backed by aws-lambda-powertools' Logger (the shared layer): its JSON formatter
(``level``, ``location``, ``message``, ``timestamp``, ``service`` from
``POWERTOOLS_SERVICE_NAME``, the X-Ray trace id when traced) plus the keys bound
per request (``requestId``, ``function``) and the fields of each call. This
module keeps the interface the handlers use (``configure``, ``bind``,
``info``/``warning``/``error``/``debug``, ``exception``, ``set_stream``).

Rules: never log request bodies or personal data (names, emails, phone
numbers, addresses) at INFO; log identifiers, routes, statuses and timings.

Cold start: powertools is imported on the first log line, not when a handler
module is imported. Its package root (``aws_lambda_powertools/__init__.py``)
imports Logger, Metrics and Tracer together, and importing a submodule
(``aws_lambda_powertools.logging.logger``) runs that root first, so the only
lever we hold is *when*: the level and the per-request keys are kept here until
the Logger exists, then handed to it (README, "Cold start budget").
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, TextIO

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}

# stream: set_stream's; logger: the powertools Logger once made; level and bound: what configure and
# bind were given before it existed
_state: dict[str, Any] = {"stream": None, "logger": None, "level": "INFO", "bound": None}


class _Stream:
    """Resolves the destination at write time: ``set_stream``'s, else the current stdout
    (which Lambda ships to CloudWatch)."""

    def write(self, text: str) -> int:
        return (_state["stream"] or sys.stdout).write(text)

    def flush(self) -> None:
        (_state["stream"] or sys.stdout).flush()


_stream = _Stream()


def _logger() -> Any:
    """The powertools Logger, made (and powertools imported) on first use."""
    logger = _state["logger"]
    if logger is None:
        from aws_lambda_powertools.logging.logger import Logger

        logger = Logger(level=_state["level"], stream=_stream, log_uncaught_exceptions=False)
        _state["logger"] = logger
        if _state["bound"] is not None:
            bind(*_state["bound"])
    return logger


def configure(level: str) -> None:
    level = level.upper() if level.upper() in LEVELS else "INFO"
    _state["level"] = level
    if _state["logger"] is not None:
        _state["logger"].setLevel(level)


def set_stream(stream: TextIO | None) -> None:
    """Where log lines go (default: stdout, which Lambda ships to CloudWatch)."""
    _state["stream"] = stream


def bind(request_id: str, function: str = "") -> None:
    _state["bound"] = (request_id, function)
    logger = _state["logger"]
    if logger is None:  # handed to the Logger when the first line makes it
        return
    # service read per request: a process serving several functions (deployctl local) sets each one's environment
    logger.append_keys(requestId=request_id, function=function or None,
                       service=os.environ.get("POWERTOOLS_SERVICE_NAME") or logger.service)


def enabled(level: str) -> bool:
    return _logger().isEnabledFor(LEVELS[level])


def _emit(level: str, message: str, depth: int, fields: dict[str, Any]) -> None:
    logger = _logger()
    if logger.isEnabledFor(LEVELS[level]):
        # depth: how far up the stack the caller is, for the record's "location"
        getattr(logger, level.lower())(message, stacklevel=depth, **fields)


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
