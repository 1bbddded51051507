"""What a rollout watches: the CloudWatch alarms covering a function and the new version's error rate.

Covering alarms (names as ``terraform/modules/monitoring`` creates them, ``<app>-<env>-...``):
the function's ``lambda-<fn>-errors``, ``lambda-<fn>-throttles`` and ``lambda-<fn>-dlq-depth``,
and, when the function serves a route of ``api/openapi.json``, the stage's ``api-5xx`` and
``api-p99-latency``. One ``DescribeAlarms`` call reads them all.

The new version's own signal: ``Errors`` and ``Invocations`` of namespace ``AWS/Lambda`` with
the dimensions Lambda gives alias invocations (``FunctionName``, ``Resource`` =
``<function>:live``, ``ExecutedVersion`` = the new version), summed since the rollout started,
in one ``GetMetricData`` call. A breach: errors / invocations at or above
``error_rate_percent`` (with at least one error).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from deployctl import aws, naming
from deployctl.config import EnvConfig

ALARM = "ALARM"


def functions_serving_routes(cfg: EnvConfig) -> dict[str, list[str]]:
    """``{function: ["GET /items", ...]}`` from ``api/openapi.json`` (``x-deployctl-function``)."""
    path = cfg.root.joinpath(*naming.OPENAPI_PATH)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, list[str]] = {}
    for route, methods in (doc.get("paths") or {}).items():
        for method, op in (methods or {}).items():
            if isinstance(op, dict) and op.get("x-deployctl-function"):
                out.setdefault(op["x-deployctl-function"], []).append(f"{method.upper()} {route}")
    return out


def covering_alarms(cfg: EnvConfig, function: str) -> list[str]:
    names = [f"{cfg.prefix}-lambda-{function}-{kind}" for kind in ("errors", "throttles", "dlq-depth")]
    if function in functions_serving_routes(cfg):
        names += [f"{cfg.prefix}-api-5xx", f"{cfg.prefix}-api-p99-latency"]
    return names


@dataclass
class Breach:
    signal: str  # an alarm name, or "error-rate"
    value: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict:
        return {"signal": self.signal, "value": self.value, "threshold": self.threshold, "detail": self.detail}

    def line(self) -> str:
        value = "?" if self.value is None else f"{self.value:g}"
        threshold = "?" if self.threshold is None else f"{self.threshold:g}"
        return f"{self.signal} fired (value {value}, threshold {threshold}): {self.detail}"


@dataclass
class Reading:
    at: str
    alarms: dict[str, str] = field(default_factory=dict)  # name -> state (MISSING when not found)
    errors: float = 0.0
    invocations: float = 0.0
    error_rate_percent: float = 0.0
    breaches: list[Breach] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"at": self.at, "alarms": dict(self.alarms), "errors": self.errors, "invocations": self.invocations,
                "error_rate_percent": self.error_rate_percent, "breaches": [b.to_dict() for b in self.breaches]}


def _alarm_value(alarm: dict) -> float | None:
    try:
        data = json.loads(alarm.get("StateReasonData") or "{}")
    except ValueError:
        return None
    points = data.get("recentDatapoints") if isinstance(data, dict) else None
    if isinstance(points, list) and points and isinstance(points[-1], int | float):
        return float(points[-1])
    return None


class Watcher:
    """Reads the signals of one function's rollout; ``calls`` counts the AWS requests made."""

    def __init__(self, cfg: EnvConfig, function: str, new_version: str, since: datetime,
                 threshold_percent: float, ignored: set[str] | None = None, cw: Any | None = None):
        self.cfg = cfg
        self.function = function
        self.physical = naming.function_name(cfg, function)
        self.version = new_version
        self.since = since
        self.threshold = threshold_percent
        self.ignored = set(ignored or ())
        self.alarm_names = covering_alarms(cfg, function)
        self.cw = cw or aws.client("cloudwatch", cfg.region)
        self.calls = 0

    def alarms(self) -> dict[str, dict]:
        self.calls += 1
        with aws.errors("read the covering alarms", self.physical):
            resp = self.cw.describe_alarms(AlarmNames=self.alarm_names, AlarmTypes=["MetricAlarm"])
        return {a["AlarmName"]: a for a in resp.get("MetricAlarms", [])}

    def firing(self) -> list[Breach]:
        """Covering alarms in ALARM now (ignored ones too: the caller decides)."""
        return [self._alarm_breach(a) for a in self.alarms().values() if a.get("StateValue") == ALARM]

    @staticmethod
    def _alarm_breach(alarm: dict) -> Breach:
        return Breach(alarm["AlarmName"], _alarm_value(alarm), alarm.get("Threshold"),
                      (alarm.get("StateReason") or "in ALARM")[:300])

    def version_metrics(self) -> tuple[float, float]:
        dims = [{"Name": "FunctionName", "Value": self.physical},
                {"Name": "Resource", "Value": f"{self.physical}:{naming.LIVE_ALIAS}"},
                {"Name": "ExecutedVersion", "Value": str(self.version)}]

        def query(qid: str, metric: str) -> dict:
            return {"Id": qid, "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dims},
                "Period": 60, "Stat": "Sum"}}

        now = datetime.now(UTC)
        self.calls += 1
        with aws.errors("read the new version's metrics", f"{self.physical}:{self.version}"):
            resp = self.cw.get_metric_data(MetricDataQueries=[query("errors", "Errors"),
                                                              query("invocations", "Invocations")],
                                           StartTime=self.since - timedelta(seconds=60),
                                           EndTime=now + timedelta(seconds=60))
        sums = {r["Id"]: float(sum(r.get("Values") or [])) for r in resp.get("MetricDataResults", [])}
        return sums.get("errors", 0.0), sums.get("invocations", 0.0)

    def read(self) -> Reading:
        reading = Reading(at=datetime.now(UTC).isoformat(timespec="seconds"))
        found = self.alarms()
        for name in self.alarm_names:
            alarm = found.get(name)
            reading.alarms[name] = alarm.get("StateValue", "?") if alarm else "MISSING"
            if alarm and alarm.get("StateValue") == ALARM and name not in self.ignored:
                reading.breaches.append(self._alarm_breach(alarm))
        errors, invocations = self.version_metrics()
        rate = 100.0 * errors / max(invocations, errors) if errors else 0.0
        reading.errors, reading.invocations, reading.error_rate_percent = errors, invocations, round(rate, 3)
        if errors and rate >= self.threshold:
            reading.breaches.append(Breach(
                "error-rate", round(rate, 3), self.threshold,
                f"version {self.version}: {errors:g} errors in {invocations:g} invocations "
                f"(ExecutedVersion, since the rollout started)"))
        return reading
