"""Business metrics in CloudWatch Embedded Metric Format (aws-lambda-powertools Metrics).

Handlers call ``add("ItemsCreated")``; ``shared.http.handle`` flushes once per
request: one EMF JSON line on the log stream, which CloudWatch turns into
metrics. Namespace and the ``service`` dimension come from
``POWERTOOLS_METRICS_NAMESPACE`` / ``POWERTOOLS_SERVICE_NAME`` (set by the env
root, the same values its dashboard plots), read at flush time so a process
serving several functions (``deployctl local``) uses each one's environment.
The names are ``deployctl.naming.BUSINESS_METRICS``. powertools is imported on the
first metric, not at import (cold start: see shared.log).
"""

from __future__ import annotations

import os
from typing import Any

from shared import log

_state: dict[str, Any] = {"metrics": None}


def _metrics() -> Any:
    """The powertools Metrics, made (and powertools imported) on the first metric: a request that
    adds none (health checks, reads) never loads it."""
    if _state["metrics"] is None:
        from aws_lambda_powertools.metrics.metrics import Metrics

        _state["metrics"] = Metrics()
    return _state["metrics"]


def add(name: str, value: float = 1) -> None:
    """Count ``value`` of ``name`` in this request's metric set."""
    from aws_lambda_powertools.metrics.base import MetricUnit

    _metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)


def pending() -> bool:
    return _state["metrics"] is not None and bool(_state["metrics"].provider.metric_set)


def flush() -> None:
    """Write this request's metrics as one EMF line (nothing when there are none)."""
    if not pending():
        return
    metrics = _metrics()
    provider = metrics.provider
    provider.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or None
    provider.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or None
    try:
        if provider.namespace is None:
            log.warning("metrics.dropped", reason="POWERTOOLS_METRICS_NAMESPACE is not set",
                        metrics=sorted(provider.metric_set))
            return
        log.write_json(metrics.serialize_metric_set())
    finally:
        provider.clear_metrics()
