"""Business metrics in CloudWatch Embedded Metric Format (aws-lambda-powertools Metrics).

Handlers call ``add("ItemsCreated")``; ``shared.http.handle`` flushes once per
request: one EMF JSON line on the log stream, which CloudWatch turns into
metrics. Namespace and the ``service`` dimension come from
``POWERTOOLS_METRICS_NAMESPACE`` / ``POWERTOOLS_SERVICE_NAME`` (set by the env
root, the same values its dashboard plots), read at flush time so a process
serving several functions (``deployctl local``) uses each one's environment.
The names are ``deployctl.naming.BUSINESS_METRICS``.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import log

_metrics = Metrics()


def add(name: str, value: float = 1) -> None:
    """Count ``value`` of ``name`` in this request's metric set."""
    _metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def pending() -> bool:
    return bool(_metrics.provider.metric_set)


def flush() -> None:
    """Write this request's metrics as one EMF line (nothing when there are none)."""
    if not pending():
        return
    provider = _metrics.provider
    provider.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or None
    provider.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or None
    try:
        if provider.namespace is None:
            log.warning("metrics.dropped", reason="POWERTOOLS_METRICS_NAMESPACE is not set",
                        metrics=sorted(provider.metric_set))
            return
        log.write_json(_metrics.serialize_metric_set())
    finally:
        _metrics.provider.clear_metrics()
