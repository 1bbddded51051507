"""GET /health and GET /: is the items table reachable and ACTIVE?"""

from __future__ import annotations

from shared import aws, http, log
from shared.config import Config

FUNCTION = "health-check"
TABLE = "items"


def health(request: http.Request, cfg: Config) -> tuple[int, dict]:
    body = {"status": "ok", "environment": cfg.environment, "version": cfg.function_version}
    try:
        status = aws.client("dynamodb").describe_table(TableName=cfg.table(TABLE))["Table"]["TableStatus"]
    except Exception as exc:  # noqa: BLE001 - unhealthy, not an error of this request
        reason = f"table check failed: {aws.error_code(exc) or type(exc).__name__}"
        log.warning("health.unhealthy", reason=reason)
        return 503, {**body, "status": "unhealthy", "reason": reason}
    if status not in ("ACTIVE", "UPDATING"):
        return 503, {**body, "status": "unhealthy", "reason": f"table status is {status}"}
    return 200, body


ROUTES: http.Routes = {("GET", "/health"): health, ("GET", "/"): health}


def handler(event, context):
    return http.handle(event, context, ROUTES, FUNCTION)
