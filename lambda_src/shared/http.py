"""API Gateway (REST, proxy integration v1) requests and responses.

``handle`` is the one entry every handler goes through: it parses the event,
routes on (httpMethod, resource) with the handler's ``ROUTES`` table, turns
``ApiError`` into a 4xx JSON body, anything unexpected into a generic 500
(details only in the log), adds CORS and request-id headers, and logs one
line per request without the body.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared import config, log, metrics

MAX_BODY_BYTES = 256 * 1024
CORS_ALLOW_HEADERS = "Content-Type,Authorization,X-Api-Key,X-Request-Id"
CORS_MAX_AGE = "600"


class ApiError(Exception):
    """A client error: becomes ``status`` with ``{"message", "requestId", "details"?}``."""

    def __init__(self, status: int, message: str, *, details: list | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}


class Request:
    """The parts of a proxy event a handler uses, validated for shape."""

    def __init__(self, event: Mapping[str, Any], context: Any = None):
        if not isinstance(event, Mapping):
            raise ApiError(400, "malformed event")
        ctx = event.get("requestContext")
        ctx = ctx if isinstance(ctx, Mapping) else {}
        self.method = str(event.get("httpMethod") or ctx.get("httpMethod") or "").upper()
        self.resource = str(event.get("resource") or ctx.get("resourcePath") or "")
        self.path = str(event.get("path") or "")
        self.request_id = (
            str(ctx.get("requestId") or "") or str(getattr(context, "aws_request_id", "") or "") or str(uuid.uuid4())
        )
        self.headers = {str(k).lower(): str(v) for k, v in _mapping(event.get("headers")).items() if v is not None}
        self.query = {str(k): str(v) for k, v in _mapping(event.get("queryStringParameters")).items() if v is not None}
        self.path_params = {str(k): str(v) for k, v in _mapping(event.get("pathParameters")).items() if v is not None}
        body = event.get("body")
        self._body = body if isinstance(body, str) else None
        self._b64 = bool(event.get("isBase64Encoded"))

    @property
    def origin(self) -> str:
        return self.headers.get("origin", "")

    def raw_body(self) -> bytes:
        if not self._body:
            return b""
        if self._b64:
            if len(self._body) > (MAX_BODY_BYTES * 4) // 3 + 8:
                raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
            try:
                data = base64.b64decode(self._body, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "request body is not valid base64") from None
        else:
            if len(self._body) > MAX_BODY_BYTES:  # cheap check before encoding
                raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
            try:
                data = self._body.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(400, "request body is not valid UTF-8") from None
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        return data

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or a 400/413 ApiError."""
        data = self.raw_body()
        if not data.strip():
            raise ApiError(400, "request body is required (a JSON object)")
        try:
            text = data.decode("utf-8")
            value = json.loads(text, parse_constant=_reject_constant)
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # unpaired surrogates ("\ud800") fail
        except (UnicodeError, ValueError, RecursionError):
            raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "request body must be a JSON object")
        return value

    def query_int(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        raw = raw.strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not lo <= int(raw) <= hi:
            raise ApiError(400, f"query parameter '{name}' must be an integer from {lo} to {hi}")
        return int(raw)

    def query_str(self, name: str, max_len: int) -> str | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        if len(raw) > max_len:
            raise ApiError(400, f"query parameter '{name}' is too long (max {max_len})")
        return raw


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def cors_headers(cfg: config.Config, origin: str) -> dict[str, str]:
    """CORS response headers for ``origin`` under the configured allow-list."""
    allowed = cfg.cors_origins
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    if origin and origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"} if allowed else {}


def preflight_headers(cfg: config.Config, origin: str, methods: list[str]) -> dict[str, str]:
    headers = cors_headers(cfg, origin)
    headers.update({
        "Access-Control-Allow-Methods": ",".join(sorted({*methods, "OPTIONS"})),
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Max-Age": CORS_MAX_AGE,
    })
    return headers


def response(status: int, body: Any, *, request_id: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    out_headers = {"X-Request-Id": request_id}
    if body is not None:
        out_headers["Content-Type"] = "application/json"
    if headers:
        out_headers.update(headers)
    return {
        "statusCode": status,
        "headers": out_headers,
        "body": "" if body is None else json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_body(status: int, message: str, request_id: str, details: list | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "requestId": request_id}
    if details:
        body["details"] = details
    return body


Handler = Callable[[Request, config.Config], tuple[int, Any]]
Routes = Mapping[tuple[str, str], Handler]


def allowed_methods(routes: Routes, resource: str) -> list[str]:
    return sorted(m for (m, r) in routes if r == resource)


def handle(event: Any, context: Any, routes: Routes, function: str) -> dict[str, Any]:
    """Parse, route, run and answer one API Gateway proxy event."""
    started = time.perf_counter()
    request_id = str(uuid.uuid4())
    method = resource = ""
    status = 500
    cfg = None
    extra: dict[str, str] = {}
    origin = ""
    try:
        cfg = config.get()
        request = Request(event, context)
        request_id, method, resource, origin = request.request_id, request.method, request.resource, request.origin
        log.bind(request_id, function)
        fn = routes.get((method, resource))
        if fn is None:
            methods = allowed_methods(routes, resource)
            if not methods:
                raise ApiError(404, "not found")
            if method == "OPTIONS":
                status, body = 204, None
                extra = preflight_headers(cfg, origin, methods)
            else:
                raise ApiError(405, "method not allowed", headers={"Allow": ",".join([*methods, "OPTIONS"])})
        else:
            status, body = fn(request, cfg)
    except ApiError as exc:
        status, body = exc.status, error_body(exc.status, exc.message, request_id, exc.details)
        extra = dict(exc.headers)
    except Exception as exc:  # noqa: BLE001 - the client gets a generic 500, the log the details
        log.bind(request_id, function)
        log.exception("unhandled error", exc, method=method, resource=resource)
        status, body = 500, error_body(500, "internal error", request_id)
    headers = cors_headers(cfg, origin) if cfg is not None else {}
    headers.update(extra)
    log.info("request", method=method, resource=resource, status=status,
             durationMs=round((time.perf_counter() - started) * 1000, 2))
    metrics.flush()
    return response(status, body, request_id=request_id, headers=headers)
