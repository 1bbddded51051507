"""What API Gateway (REST) checks before a Lambda proxy integration runs.

The rest_api Terraform module gives every operation of ``api/openapi.json`` a
request validator: ``body-and-params`` when it has a ``requestBody``, else
``params-only``. API Gateway then (AWS docs, "Request validation for REST APIs"):

* checks that the *required* request parameters (path, query string, headers)
  are present and not blank -- it does not check their type or format;
* validates the body against the operation's model for the request's content
  type with JSON Schema draft 4 (no model for that content type: no
  validation; no ``Content-Type`` header: ``application/json``).

Failures are API Gateway's default gateway responses: ``BAD_REQUEST_PARAMETERS``
(400 ``Missing required request parameters: [a, b]``), ``BAD_REQUEST_BODY``
(400 ``Invalid request body``), and for a path or method the API does not have,
``MISSING_AUTHENTICATION_TOKEN`` (403 ``Missing Authentication Token``).

Draft 4 as API Gateway applies it: ``jsonschema.Draft4Validator`` without a
format checker (``format`` is an annotation there, as in API Gateway; the
schemas spell out with ``pattern`` what must be enforced).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# API Gateway's default gateway responses: (status, message, x-amzn-ErrorType)
MISSING_AUTHENTICATION_TOKEN = (403, "Missing Authentication Token", "MissingAuthenticationTokenException")
BAD_REQUEST_BODY = (400, "Invalid request body", "BadRequestException")
BAD_REQUEST_PARAMETERS = (400, "Missing required request parameters: [{}]", "BadRequestException")
REQUEST_TOO_LARGE = (413, "Request Too Long", "RequestTooLongException")
DEFAULT_CONTENT_TYPE = "application/json"


class GatewayError(Exception):
    def __init__(self, kind: tuple[int, str, str], *args: str):
        self.status, template, self.error_type = kind
        self.message = template.format(*args) if args else template
        super().__init__(self.message)


@dataclass
class Operation:
    """The validation API Gateway applies to one (path, method)."""

    validate_body: bool
    models: dict[str, Any] = field(default_factory=dict)  # media type -> Draft4Validator
    required: list[tuple[str, str]] = field(default_factory=list)  # (in, name)


def compile_operations(spec: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    """``(path template, METHOD) -> Operation`` for every operation of the document."""
    from jsonschema import Draft4Validator

    components = spec.get("components") or {}
    ops: dict[tuple[str, str], Operation] = {}
    for template, item in (spec.get("paths") or {}).items():
        shared = [p for p in item.get("parameters", []) if isinstance(p, dict)]
        for method, op in item.items():
            if not isinstance(op, dict) or method == "parameters":
                continue
            params = {(p.get("in"), p.get("name")): p for p in [*shared, *op.get("parameters", [])]}
            required = [(where, name) for (where, name), p in params.items()
                        if p.get("required") and where in ("path", "query", "header")]
            body = op.get("requestBody")
            models = {}
            if isinstance(body, dict):
                for media, content in (body.get("content") or {}).items():
                    schema = (content or {}).get("schema")
                    if isinstance(schema, dict):
                        # the document's components travel with the schema so that $ref resolves
                        models[media.lower()] = Draft4Validator({**schema, "components": components})
            ops[(template, method.upper())] = Operation(isinstance(body, dict), models, required)
    return ops


def check_parameters(op: Operation, path_params: dict[str, str], query: dict[str, list[str]],
                     headers: dict[str, str]) -> None:
    """BAD_REQUEST_PARAMETERS unless every required parameter is present and not blank."""
    missing = []
    for where, name in op.required:
        if where == "path":
            value = path_params.get(name)
        elif where == "query":
            value = next((v for v in query.get(name, []) if v.strip()), None)
        else:
            value = headers.get(name.lower())
        if value is None or not str(value).strip():
            missing.append(name)
    if missing:
        raise GatewayError(BAD_REQUEST_PARAMETERS, ", ".join(missing))


def check_body(op: Operation, content_type: str | None, body: bytes) -> None:
    """BAD_REQUEST_BODY unless the body satisfies the model for its content type."""
    if not op.validate_body:
        return
    media = (content_type or DEFAULT_CONTENT_TYPE).split(";", 1)[0].strip().lower() or DEFAULT_CONTENT_TYPE
    validator = op.models.get(media) or op.models.get("$default")
    if validator is None:
        return  # no model for this content type: API Gateway does not validate
    value = parse_json(body)
    if not validator.is_valid(value):
        raise GatewayError(BAD_REQUEST_BODY)


def parse_json(body: bytes) -> Any:
    """The body as a JSON value, or BAD_REQUEST_BODY (not UTF-8, not JSON, NaN/Infinity,
    or a string with an unpaired surrogate escape such as ``"\\ud800"``)."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # unpaired surrogates fail here
    except (UnicodeError, ValueError, RecursionError):
        raise GatewayError(BAD_REQUEST_BODY) from None
    return value


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def error_body(exc: GatewayError, request_id: str) -> dict[str, str]:
    return {"message": exc.message, "requestId": request_id}
