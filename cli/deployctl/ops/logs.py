"""deployctl logs: the functions' and the API's CloudWatch logs, readable.

Log groups (as the Terraform modules name them):

* a function: ``/aws/lambda/<app>-<env>-<function>`` (``modules/lambda_function``);
* the API's access log: ``/aws/apigateway/<app>-<env>/<env>/access`` (``modules/rest_api``; the stage
  is the env name).

Lines are read with FilterLogEvents (paginated, optionally with a CloudWatch filter pattern).
A powertools JSON line becomes ``time LEVEL function request-id message key=value ...``; an access log
line ``time API request-id METHOD path status latency``; anything else (START/END/REPORT, prints)
is shown as it is. ``follow`` polls: each poll asks again from a little before the newest event
seen (CloudWatch may ingest late), drops events already printed (by eventId), waits longer while
nothing comes (bounded) and again briefly once something does.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployctl import aws, naming
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, UsageError

API_SOURCE = "api"
POLL_MIN_S = 1.0
POLL_MAX_S = 5.0
LOOKBACK_MS = 10_000  # re-ask this far behind the newest event seen: late-ingested events still show up
SEEN_LIMIT = 50_000

# powertools' own keys: shown in the fixed columns or left out (noise on one line)
_POWERTOOLS_KEYS = {"level", "message", "timestamp", "requestId", "function", "function_request_id", "service",
                    "location", "cold_start", "function_name", "function_memory_size", "function_arn",
                    "xray_trace_id", "sampling_rate"}
_LEVEL_STYLE = {"ERROR": ("red", "bold"), "CRITICAL": ("red", "bold"), "WARNING": ("yellow",), "DEBUG": ("dim",)}


def api_log_group(cfg: EnvConfig) -> str:
    return f"/aws/apigateway/{cfg.prefix}/{cfg.name}/access"


def function_log_group(cfg: EnvConfig, function: str) -> str:
    return f"/aws/lambda/{naming.function_name(cfg, function)}"


def log_groups(cfg: EnvConfig, functions: Sequence[str] = (), api: bool = False) -> dict[str, str]:
    """``{source: log group}``: the named functions, or the API; neither = every function and the API."""
    if functions and api:
        raise UsageError("--function and --api cannot be combined", hint="pick functions, or the API's access log")
    unknown = [f for f in functions if f not in cfg.functions]
    if unknown:
        raise ConfigError(f"unknown function(s): {', '.join(unknown)}", where="--function",
                          hint=f"known: {', '.join(sorted(cfg.functions))}")
    if api:
        return {API_SOURCE: api_log_group(cfg)}
    names = list(dict.fromkeys(functions)) or list(cfg.functions)
    groups = {fn: function_log_group(cfg, fn) for fn in names}
    if not functions:
        groups[API_SOURCE] = api_log_group(cfg)
    return groups


_SINCE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> int:
    """``10m``/``2h``/``1d`` ago, or an ISO 8601 time, as epoch milliseconds."""
    now = time.time() if now is None else now
    m = _SINCE.match(text or "")
    if m:
        return int((now - int(m.group(1)) * _UNITS[m.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not a duration or a time: {text!r}", where="--since",
                         hint="e.g. --since 10m, 2h, 1d, or 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- records --------------------------------------------------------------------------------------------


@dataclass
class LogEvent:
    source: str
    group: str
    stream: str
    timestamp: int
    event_id: str
    message: str
    ingestion_time: int | None = None
    record: dict | None = field(default=None)

    @classmethod
    def of(cls, source: str, group: str, raw: dict) -> LogEvent:
        message = (raw.get("message") or "").rstrip("\n")
        return cls(source, group, raw.get("logStreamName", ""), int(raw.get("timestamp") or 0),
                   str(raw.get("eventId") or ""), message, raw.get("ingestionTime"), parse_record(message))

    def to_dict(self) -> dict:
        return {"source": self.source, "group": self.group, "stream": self.stream, "timestamp": self.timestamp,
                "time": iso_ms(self.timestamp), "eventId": self.event_id, "ingestionTime": self.ingestion_time,
                "message": self.message, "record": self.record}


def parse_record(message: str) -> dict | None:
    text = message.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def format_event(ev: LogEvent, style: Callable[..., str] = lambda text, *s: text) -> str:
    """One readable line for a log event."""
    when = style(iso_ms(ev.timestamp), "dim")
    rec = ev.record
    if rec is not None and ev.source == API_SOURCE:
        parts = [when, style("API", "blue"), str(rec.get("requestId", "-")),
                 f"{rec.get('httpMethod', '-')} {rec.get('path') or rec.get('resourcePath') or '-'}",
                 str(rec.get("status", "-")), f"{rec.get('responseLatency', '-')}ms"]
        status = str(rec.get("status", ""))
        if status.startswith("5"):
            parts[4] = style(status, "red", "bold")
        elif status.startswith("4"):
            parts[4] = style(status, "yellow")
        for key in ("errorMessage", "validationError"):
            if rec.get(key) and rec.get(key) != "-":
                parts.append(f"{key}={_value(rec[key])}")
        return " ".join(parts)
    if rec is not None and ("level" in rec or "message" in rec):
        level = str(rec.get("level", "-")).upper()
        function = rec.get("function") or ev.source
        request = rec.get("requestId") or rec.get("function_request_id") or "-"
        extra = " ".join(f"{k}={_value(v)}" for k, v in rec.items() if k not in _POWERTOOLS_KEYS and v is not None)
        parts = [when, style(f"{level:<5}", *_LEVEL_STYLE.get(level, ())), style(str(function), "blue"),
                 str(request), _value(rec.get("message", ""))]
        if extra:
            parts.append(style(extra, "dim"))
        return " ".join(parts)
    return f"{when} {style(ev.source, 'blue')} {ev.message}"


# -- reading ----------------------------------------------------------------------------------------------


def logs_client(cfg: EnvConfig) -> Any:
    return aws.client("logs", cfg.region)


def _is_missing_group(exc: BaseException) -> bool:
    return aws.error_code(exc) == "ResourceNotFoundException"


def fetch(client: Any, groups: dict[str, str], start_ms: int, end_ms: int | None = None,
          pattern: str | None = None, missing: set[str] | None = None) -> list[LogEvent]:
    """Every event of ``groups`` from ``start_ms`` (to ``end_ms``), oldest first. A group that does not
    exist (the function never ran) is skipped and named in ``missing``."""
    from botocore.exceptions import ClientError

    events: list[LogEvent] = []
    for source, group in groups.items():
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "interleaved": True}
        if end_ms is not None:
            kwargs["endTime"] = end_ms
        if pattern:
            kwargs["filterPattern"] = pattern
        with aws.errors("read CloudWatch logs (FilterLogEvents)", group):
            try:
                while True:
                    page = client.filter_log_events(**kwargs)
                    events += [LogEvent.of(source, group, raw) for raw in page.get("events") or []]
                    token = page.get("nextToken")
                    if not token or token == kwargs.get("nextToken"):
                        break
                    kwargs["nextToken"] = token
            except ClientError as exc:
                if not _is_missing_group(exc):
                    raise
                if missing is not None:
                    missing.add(group)
    events.sort(key=lambda e: (e.timestamp, e.source, e.event_id))
    return events


def poll_interval() -> tuple[float, float]:
    """(shortest, longest) wait between polls; ``DEPLOYCTL_LOGS_POLL_S`` sets the shortest (the longest is 5x)."""
    raw = os.environ.get("DEPLOYCTL_LOGS_POLL_S", "").strip()
    if not raw:
        return POLL_MIN_S, POLL_MAX_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"must be a number of seconds, found {raw!r}", where="DEPLOYCTL_LOGS_POLL_S") from None
    if not 0.05 <= value <= 60:
        raise ConfigError(f"must be between 0.05 and 60 seconds, found {value:g}", where="DEPLOYCTL_LOGS_POLL_S")
    return value, value * 5


class Follower:
    """Polls FilterLogEvents and hands each new event to ``emit`` once, in time order."""

    def __init__(self, client: Any, groups: dict[str, str], start_ms: int, pattern: str | None = None,
                 interval: tuple[float, float] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.groups = groups
        self.pattern = pattern
        self.cursor = start_ms
        self.shortest, self.longest = interval or poll_interval()
        self.wait = self.shortest
        self.sleep = sleep
        self.seen: dict[str, int] = {}
        self.missing: set[str] = set()

    def poll(self) -> list[LogEvent]:
        start = max(0, self.cursor - LOOKBACK_MS) if self.seen else self.cursor
        new = [ev for ev in fetch(self.client, self.groups, start, None, self.pattern, self.missing)
               if ev.event_id not in self.seen]
        for ev in new:
            self.seen[ev.event_id] = ev.timestamp
            self.cursor = max(self.cursor, ev.timestamp)
        if len(self.seen) > SEEN_LIMIT:  # forget ids far behind the window asked for
            floor = self.cursor - LOOKBACK_MS
            self.seen = {k: ts for k, ts in self.seen.items() if ts >= floor}
        # bounded backoff: wait longer while nothing comes, briefly again once something does
        self.wait = self.shortest if new else min(self.longest, self.wait * 1.5)
        return new

    def run(self, emit: Callable[[LogEvent], None], polls: int | None = None,
            after_poll: Callable[[], None] | None = None) -> None:
        """Poll until interrupted (KeyboardInterrupt propagates to the caller) or ``polls`` polls."""
        done = 0
        while polls is None or done < polls:
            for ev in self.poll():
                emit(ev)
            if after_poll is not None:
                after_poll()
            done += 1
            if polls is None or done < polls:
                self.sleep(self.wait)


def open_groups(cfg: EnvConfig, functions: Iterable[str] = (), api: bool = False) -> tuple[Any, dict[str, str]]:
    """The logs client and the chosen groups, once the credentials' account is the env's (the same log
    group names exist in every account: dev credentials would show dev's logs as prod's)."""
    groups = log_groups(cfg, list(functions), api)
    aws.check_account(cfg)
    return logs_client(cfg), groups


def read(cfg: EnvConfig, functions: Iterable[str] = (), api: bool = False, since: str = "10m",
         pattern: str | None = None) -> dict:
    """The events of the chosen log groups since ``since``: ``{"groups", "missing", "events"}``."""
    start = parse_since(since)
    client, groups = open_groups(cfg, functions, api)
    missing: set[str] = set()
    events = fetch(client, groups, start, None, pattern, missing)
    return {"groups": groups, "since": iso_ms(start), "filter": pattern, "missing": sorted(missing),
            "events": events}
