"""API Gateway REST proxy events for a route of ``api/openapi.json`` (``deployctl event``, ``invoke --route``).

One source of truth with ``deployctl local``: the route is matched against the same path
table (:func:`deployctl.local.server.match`), checked by the same request validation
(:mod:`deployctl.local.gateway`: 403 ``Missing Authentication Token`` for a route the API
does not have, 400 for missing required parameters or a body its model rejects) and turned
into an event by the same builder (:meth:`deployctl.local.server.LocalApp.event`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from urllib.parse import quote, urlencode

from deployctl.config import EnvConfig
from deployctl.errors import UsageError

API_ID = "local"


def _pairs(items: Sequence[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{item!r} is not KEY=VALUE", where=flag, hint=f"e.g. {flag} limit=10")
        out.append((key, value))
    return out


def route_event(cfg: EnvConfig, route: str, *, body: str | None = None, query: Sequence[str] = (),
                path: Sequence[str] = (), source_ip: str = "127.0.0.1") -> tuple[str, dict]:
    """``(function, event)`` for ``route`` (``"POST /items"`` or ``"GET /users/{userId}"`` with
    ``path=["userId=u1"]``), validated as API Gateway validates the request."""
    from deployctl.local import gateway
    from deployctl.local.server import HTTP_METHODS, LocalApp, _query_lists, match

    method, _, target = route.strip().partition(" ")
    method, target = method.upper(), target.strip()
    if method not in HTTP_METHODS or not target.startswith("/"):
        raise UsageError(f"{route!r} is not METHOD /path", where="--route", hint='e.g. --route "POST /items"')
    params = dict(_pairs(path, "--path"))
    missing = [name for name in re.findall(r"\{([^}/]+)\}", target) if name not in params]
    if missing:
        raise UsageError(f"no value for the path parameter(s) {', '.join(missing)} of {target}", where="--path",
                         hint=" ".join(f"--path {m}=VALUE" for m in missing))
    concrete = re.sub(r"\{([^}/]+)\}", lambda m: quote(params[m.group(1)], safe=""), target)
    query_pairs = _pairs(query, "--query")
    query_string = urlencode(query_pairs)
    data = (body or "").encode("utf-8")
    headers = [("Accept", "application/json")]
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    app = LocalApp(cfg)
    where = f"--route {method} {target}"
    found = match(app.table, concrete)
    chosen = found[0].methods.get(method) if found else None
    try:
        if chosen is None:
            raise gateway.GatewayError(gateway.MISSING_AUTHENTICATION_TOKEN)
        entry, matched = found
        op = app.operations.get((chosen.path, chosen.method))
        if op is not None:
            gateway.check_parameters(op, matched, _query_lists(query_string), {k.lower(): v for k, v in headers})
            gateway.check_body(op, "application/json" if body is not None else None, data)
    except gateway.GatewayError as exc:
        known = ", ".join(f"{r.method} {r.path}" for r in app.routes)
        hint = (f"routes of api/openapi.json: {known}" if exc.status == 403
                else "the request does not satisfy the route's parameters or body schema in api/openapi.json")
        raise UsageError(f"API Gateway would answer {exc.status} {exc.message}", where=where, hint=hint) from None
    event = app.event(chosen, method, concrete, query_string, headers, data, matched, source_ip,
                      str(uuid.uuid4()))
    event["requestContext"]["apiId"] = API_ID
    return chosen.function, event


def read_event(text: str, where: str) -> str:
    """An event file's JSON text, checked to be JSON (what Lambda's Invoke accepts as a payload)."""
    try:
        json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the event is not JSON: {exc}", where=where, hint="give a JSON document") from None
    return text
