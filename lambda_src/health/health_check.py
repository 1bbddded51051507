"""GET /health and GET /: ``healthy``, ``degraded`` or ``unhealthy`` (503), with the checks that decided.

Each check is ``{"name", "status": pass|warn|fail, "detail"?, "durationMs"?}``:

* ``config``       the items table is configured (TABLE_ITEMS) -- fail if not;
* ``table:items``  DescribeTable answers: ACTIVE passes, UPDATING warns (it serves, but
                   is changing), anything else or an error fails; an answer slower than
                   SLOW_MS warns.

Any fail makes the function ``unhealthy`` (HTTP 503), else any warn ``degraded``
(HTTP 200: it still serves), else ``healthy``.
"""

from __future__ import annotations

import time

from shared import aws, http, log
from shared.config import Config

FUNCTION = "health-check"
TABLE = "items"
SLOW_MS = 1000.0
STATUS_HTTP = {"healthy": 200, "degraded": 200, "unhealthy": 503}


def _table_check(cfg: Config) -> list[dict]:
    try:
        name = cfg.table(TABLE)
    except RuntimeError as exc:
        return [{"name": "config", "status": "fail", "detail": str(exc)}]
    checks = [{"name": "config", "status": "pass"}]
    started = time.perf_counter()
    check: dict = {"name": f"table:{TABLE}"}
    try:
        table_status = aws.client("dynamodb").describe_table(TableName=name)["Table"]["TableStatus"]
    except Exception as exc:  # noqa: BLE001 - a failed check, not an error of this request
        check.update(status="fail", detail=f"DescribeTable failed: {aws.error_code(exc) or type(exc).__name__}")
    else:
        ms = (time.perf_counter() - started) * 1000
        if table_status == "ACTIVE":
            check.update(status="pass" if ms <= SLOW_MS else "warn",
                         detail="ACTIVE" if ms <= SLOW_MS else f"ACTIVE, but DescribeTable took {ms:.0f} ms")
        elif table_status == "UPDATING":
            check.update(status="warn", detail="table status is UPDATING")
        else:
            check.update(status="fail", detail=f"table status is {table_status}")
    check["durationMs"] = round((time.perf_counter() - started) * 1000, 1)
    return [*checks, check]


def overall(checks: list[dict]) -> str:
    states = {c["status"] for c in checks}
    return "unhealthy" if "fail" in states else "degraded" if "warn" in states else "healthy"


def health(request: http.Request, cfg: Config) -> tuple[int, dict]:
    checks = _table_check(cfg)
    status = overall(checks)
    if status != "healthy":
        log.warning(f"health.{status}", checks=[c for c in checks if c["status"] != "pass"])
    body = {"status": status, "environment": cfg.environment, "version": cfg.function_version, "checks": checks}
    return STATUS_HTTP[status], body


ROUTES: http.Routes = {("GET", "/health"): health, ("GET", "/"): health}


def handler(event, context):
    return http.handle(event, context, ROUTES, FUNCTION)
