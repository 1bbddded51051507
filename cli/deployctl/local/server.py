"""`deployctl local`: the API Gateway stage on localhost, in one process.

* Routes come from ``api/openapi.json`` (the document the rest_api Terraform
  module deploys); each operation's ``x-deployctl-function`` names the function
  and the env config gives its handler (``items.create_item.handler``).
* Each request becomes an API Gateway REST proxy event (v1) and is passed to
  the real handler function, imported from ``lambda_src/``, with exactly that
  function's environment (``naming.function_environment``). Invocations are
  serialised under a lock (a Lambda container serves one request at a time),
  so one function's environment never leaks into another's.
* DynamoDB and SSM are an embedded moto server on 127.0.0.1 and a free port;
  the tables are created from the env config's ``[tables]`` and the
  parameters seeded from ``[parameters]`` under the env's SSM prefix.
* Before a handler runs, the request goes through what API Gateway does
  (``gateway.py``): 403 ``Missing Authentication Token`` for a path or method
  the API does not have, the request validators (required parameters, the body
  against its draft-4 model), CORS preflight from ``api.cors_allowed_origins``.
* The HTTP front is werkzeug's threaded server with keep-alive and strict
  framing, a connection cap and a header deadline (``front.py``);
  GSI queries of the emulator take a sorted-index fast path (``dynamo_index.py``).

Nothing here imports click; werkzeug, jsonschema, moto and boto3 are imported
when serving starts.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from deployctl import naming
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, OperationFailed
from deployctl.local.layers import put_on_path

HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS")  # what API Gateway routes
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
CLIENT_TIMEOUT_S = 30.0  # a connection idle (or stalled mid-request) this long is closed
HEADER_TIMEOUT_S = 10.0  # a request line and headers not all received this long after their first byte: 408
MAX_CONNECTIONS = 64  # connections served at once (a thread each); more are answered 503
LAMBDA_DIR = "lambda_src"
CORS_ALLOW_HEADERS = "Content-Type,Authorization,X-Api-Key,X-Request-Id"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


# -- routes --------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    path: str  # OpenAPI template, e.g. /users/{userId}
    method: str  # GET, POST, ...
    function: str  # key in [functions]
    operation_id: str


@dataclass
class PathEntry:
    template: str
    regex: re.Pattern
    params: tuple[str, ...]
    methods: dict[str, Route] = field(default_factory=dict)


def openapi_path(cfg: EnvConfig) -> Path:
    return cfg.root.joinpath(*naming.OPENAPI_PATH)


def load_routes(cfg: EnvConfig, document: Path | None = None) -> list[Route]:
    """Every operation of the OpenAPI document, checked against the env's functions."""
    path = document or openapi_path(cfg)
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the OpenAPI document: {exc}", where=str(path)) from None
    routes = []
    for template, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method.upper() not in HTTP_METHODS or not isinstance(op, dict):
                continue
            fn = op.get("x-deployctl-function")
            where = f"{path}: paths.{template}.{method}"
            if fn not in cfg.functions:
                raise ConfigError(
                    f"x-deployctl-function {fn!r} is not a function of env '{cfg.name}'",
                    where=where,
                    hint=f"use one of: {', '.join(sorted(cfg.functions))}",
                )
            routes.append(Route(template, method.upper(), fn, op.get("operationId", "")))
    return routes


def path_table(routes: list[Route]) -> list[PathEntry]:
    """Paths to match, literal ones before templated ones (as API Gateway does)."""
    entries: dict[str, PathEntry] = {}
    for r in routes:
        entry = entries.get(r.path)
        if entry is None:
            params = tuple(re.findall(r"\{([^}/]+)\}", r.path))
            pattern = "".join(
                f"(?P<p{params.index(part[1:-1])}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}/]+\})", r.path)
            )
            entry = entries[r.path] = PathEntry(r.path, re.compile(pattern), params)
        entry.methods[r.method] = r
    return sorted(entries.values(), key=lambda e: (len(e.params), e.template))


def match(table: list[PathEntry], path: str) -> tuple[PathEntry, dict[str, str]] | None:
    for entry in table:
        m = entry.regex.fullmatch(path)
        if m:
            return entry, {name: unquote(m.group(f"p{i}"), errors="replace") for i, name in enumerate(entry.params)}
    return None


# -- the embedded AWS ------------------------------------------------------------


def table_definition(cfg: EnvConfig, name: str) -> dict[str, Any]:
    """CreateTable arguments for ``[tables.<name>]`` (on-demand locally)."""
    t = cfg.tables[name]
    attrs = {t["partition_key"]: t.get("partition_key_type", "S")}
    schema = [{"AttributeName": t["partition_key"], "KeyType": "HASH"}]
    if t.get("sort_key"):
        attrs[t["sort_key"]] = t.get("sort_key_type", "S")
        schema.append({"AttributeName": t["sort_key"], "KeyType": "RANGE"})
    gsis = []
    for gname, g in (t.get("gsis") or {}).items():
        attrs[g["partition_key"]] = g.get("partition_key_type", "S")
        gschema = [{"AttributeName": g["partition_key"], "KeyType": "HASH"}]
        if g.get("sort_key"):
            attrs[g["sort_key"]] = g.get("sort_key_type", "S")
            gschema.append({"AttributeName": g["sort_key"], "KeyType": "RANGE"})
        gsis.append({"IndexName": gname, "KeySchema": gschema,
                     "Projection": {"ProjectionType": g.get("projection_type", "ALL")}})
    args: dict[str, Any] = {
        "TableName": naming.table_name(cfg, name),
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": v} for k, v in attrs.items()],
        "KeySchema": schema,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if gsis:
        args["GlobalSecondaryIndexes"] = gsis
    return args


def create_tables(cfg: EnvConfig, dynamodb) -> list[str]:
    """Create every table of the env config (skipping ones that exist)."""
    names = []
    for name in cfg.tables:
        args = table_definition(cfg, name)
        try:
            dynamodb.create_table(**args)
        except dynamodb.exceptions.ResourceInUseException:
            pass
        names.append(args["TableName"])
    return names


def seed_parameters(cfg: EnvConfig, ssm) -> list[str]:
    """Put ``[parameters]`` under the env prefix; secure ones get a random local value."""
    prefix = naming.parameter_prefix(cfg)
    names = []
    for name, p in (cfg.data.get("parameters") or {}).items():
        secure = bool(p.get("secure"))
        value = p.get("value") or (secrets.token_urlsafe(32) if secure else "-")
        ssm.put_parameter(Name=prefix + name, Value=value, Type="SecureString" if secure else "String", Overwrite=True)
        names.append(prefix + name)
    return names


class Backend:
    """An in-process moto server on 127.0.0.1 holding the env's tables and parameters."""

    def __init__(self, cfg: EnvConfig):
        self.cfg = cfg
        self._server = None
        self.endpoint = ""
        self._seed_lock = threading.Lock()
        self._seeded = False

    def start(self) -> str:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # our front logs requests, not moto's
        from deployctl.local import dynamo_index

        dynamo_index.install()

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def provision(self) -> None:
        """Create the env's tables (uses boto3's default session, which the handlers share)."""
        import boto3

        create_tables(self.cfg, boto3.client("dynamodb", region_name=self.cfg.region, endpoint_url=self.endpoint))

    def ensure_parameters(self) -> None:
        """Seed SSM once, on the first call of a function that reads parameters: moto's
        SSM backend imports its EC2 backend (~1.5 s), a cost paid like a cold start
        rather than before the first request."""
        with self._seed_lock:
            if self._seeded:
                return
            import boto3

            seed_parameters(self.cfg, boto3.client("ssm", region_name=self.cfg.region, endpoint_url=self.endpoint))
            self._seeded = True

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


# -- invoking handlers ------------------------------------------------------------


class LambdaContext:
    """The parts of the Lambda context object handlers may use."""

    def __init__(self, cfg: EnvConfig, function: str, timeout_s: int, memory_mb: int):
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = naming.function_name(cfg, function)
        self.function_version = "$LATEST"
        account = cfg.account_id or "000000000000"
        self.invoked_function_arn = f"arn:aws:lambda:{cfg.region}:{account}:function:{self.function_name}"
        self.memory_limit_in_mb = str(memory_mb)
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    function: str = ""
    close: bool = False  # the front must close the connection after this reply


def json_reply(status: int, body: dict, headers: list[tuple[str, str]] | None = None) -> Reply:
    data = json.dumps(body).encode()
    return Reply(status, [("Content-Type", "application/json"), *(headers or [])], data)


def gateway_reply(exc, request_id: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    """One of API Gateway's own responses (``gateway.GatewayError``), with the request id."""
    from deployctl.local.gateway import error_body

    return json_reply(exc.status, error_body(exc, request_id), [("x-amzn-ErrorType", exc.error_type), *(headers or [])])


def put_lambda_src_on_path(lambda_dir: Path) -> None:
    """Make the handlers importable as Lambda does (the function's code at the root of sys.path).
    The one place the local server touches sys.path."""
    if str(lambda_dir) not in sys.path:
        sys.path.insert(0, str(lambda_dir))


class LocalApp:
    """Routes a request to a handler and back, like API Gateway's proxy integration."""

    def __init__(self, cfg: EnvConfig, routes: list[Route] | None = None, lambda_dir: Path | None = None):
        self.cfg = cfg
        self.routes = routes if routes is not None else load_routes(cfg)
        self.table = path_table(self.routes)
        from deployctl.local.gateway import compile_operations

        self.operations = compile_operations(json.loads(openapi_path(cfg).read_text()))
        self.lambda_dir = (lambda_dir or cfg.root / LAMBDA_DIR).resolve()
        self._handlers: dict[str, Callable] = {}
        self._envs = {fn: self._function_env(fn) for fn in {r.function for r in self.routes}}
        self._env_keys = set().union(*self._envs.values()) if self._envs else set()
        self._lock = threading.Lock()
        self.before_invoke: dict[str, Callable[[], None]] = {}  # function -> hook (e.g. seed SSM)
        self.runtime = None  # --artifacts: a local.runtime.Runtime running the built zips
        self.specs: dict = {}  # --artifacts: function -> local.runtime.FunctionSpec

    def _function_env(self, fn: str) -> dict[str, str]:
        env = naming.function_environment(self.cfg, fn)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": naming.function_name(self.cfg, fn),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self._memory(fn)),
        })
        return env

    def _memory(self, fn: str) -> int:
        return int(self.cfg.functions[fn].get("memory_mb") or self.cfg.get("lambda.memory_mb", 128))

    def _timeout(self, fn: str) -> int:
        return int(self.cfg.functions[fn].get("timeout_s") or self.cfg.get("lambda.timeout_s", 10))

    # handlers are imported from lambda_src/ as Lambda would (handler = module.attr)
    def load_handlers(self) -> None:
        if self.runtime is not None:
            return  # --artifacts: the built zips run in the runtime's workers, nothing is imported here
        if not self.lambda_dir.is_dir():
            raise ConfigError("the Lambda source folder is missing", where=str(self.lambda_dir))
        put_lambda_src_on_path(self.lambda_dir)
        put_on_path(self.cfg, self.lambda_dir)  # the functions' layers, right after their code (as /opt/python)
        for fn in sorted(self._envs):
            self._handlers[fn] = self._import(fn)
        log = sys.modules.get("shared.log")
        if log is not None and hasattr(log, "set_stream"):
            log.set_stream(sys.stderr)  # handler logs next to the request log, not on stdout

    def _import(self, fn: str) -> Callable:
        dotted = self.cfg.functions[fn]["handler"]
        module_name, _, attr = dotted.rpartition(".")
        where = f"functions.{fn}.handler"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import {module_name}: {exc}", where=where) from None
        source = Path(getattr(module, "__file__", "") or "").resolve()
        if not source.is_relative_to(self.lambda_dir):
            raise ConfigError(f"module {module_name} was imported from {source}, not {self.lambda_dir}",
                              where=where, hint="another installed package shadows it; rename one of them")
        handler = getattr(module, attr, None)
        if not callable(handler):
            raise ConfigError(f"{dotted} is not a function", where=where)
        return handler

    def event(self, route: Route, method: str, path: str, query: str, headers: list[tuple[str, str]],
              body: bytes, params: dict[str, str], source_ip: str, request_id: str = "") -> dict[str, Any]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for k, v in headers:
            single[k] = v
            multi.setdefault(k, []).append(v)
        q_single: dict[str, str] = {}
        q_multi: dict[str, list[str]] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            q_single[k] = v
            q_multi.setdefault(k, []).append(v)
        if not body:
            body_text, b64 = None, False
        else:
            try:
                body_text, b64 = body.decode("utf-8"), False
            except UnicodeDecodeError:
                body_text, b64 = base64.b64encode(body).decode("ascii"), True
        lower = {k.lower(): v for k, v in single.items()}
        now = time.time()
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": q_single or None,
            "multiValueQueryStringParameters": q_multi or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "body": body_text,
            "isBase64Encoded": b64,
            "requestContext": {
                "accountId": self.cfg.account_id or "000000000000",
                "apiId": "local",
                "resourceId": "local",
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{self.cfg.name}{path}",
                "stage": self.cfg.name,
                "protocol": "HTTP/1.1",
                "requestId": request_id or str(uuid.uuid4()),
                "extendedRequestId": uuid.uuid4().hex[:16],
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "domainName": lower.get("host", "localhost"),
                "identity": {"sourceIp": source_ip, "userAgent": lower.get("user-agent"), "accountId": None,
                             "caller": None, "user": None, "userArn": None, "apiKey": None},
            },
        }

    def cors(self, origin: str) -> list[tuple[str, str]]:
        allowed = self.cfg.get("api.cors_allowed_origins", []) or []
        if "*" in allowed:
            return [("Access-Control-Allow-Origin", "*")]
        if origin and origin in allowed:
            return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return []

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
               source_ip: str = "127.0.0.1", request_id: str = "") -> Reply:
        """Answer one HTTP request as the API Gateway stage would (``target``: path?query)."""
        request_id = request_id or str(uuid.uuid4())
        reply = self._handle(method, target, headers, body, source_ip, request_id)
        reply.headers.append(("x-amzn-RequestId", request_id))
        return reply

    def _handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                source_ip: str, request_id: str) -> Reply:
        from deployctl.local import gateway

        path, _, query = target.partition("?")
        path = path.partition("#")[0]
        lower = {k.lower(): v for k, v in headers}
        cors = self.cors(lower.get("origin", ""))
        found = match(self.table, path) if path.startswith("/") else None
        if method not in HTTP_METHODS:  # not a method API Gateway routes at all
            allow = ",".join([*sorted(found[0].methods), "OPTIONS"]) if found else ",".join(HTTP_METHODS)
            return json_reply(405, {"message": "Method Not Allowed", "requestId": request_id},
                              [("Allow", allow), *cors])
        if found is None:
            return gateway_reply(gateway.GatewayError(gateway.MISSING_AUTHENTICATION_TOKEN), request_id, cors)
        entry, params = found
        route = entry.methods.get(method)
        if route is None and method == "OPTIONS" and self.cfg.get("api.cors_allowed_origins"):
            allow = ",".join([*sorted(entry.methods), "OPTIONS"])
            return json_reply(200, {"requestId": request_id}, [*cors, ("Access-Control-Allow-Methods", allow),
                                                               ("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS),
                                                               ("Access-Control-Max-Age", "600")])
        invoke_as = method
        if route is None and method == "HEAD" and "GET" in entry.methods:
            route, invoke_as = entry.methods["GET"], "GET"  # the GET answer; the front drops the body
        if route is None:
            return gateway_reply(gateway.GatewayError(gateway.MISSING_AUTHENTICATION_TOKEN), request_id, cors)
        op = self.operations.get((route.path, route.method))
        if op is not None:
            try:
                gateway.check_parameters(op, params, _query_lists(query), lower)
                gateway.check_body(op, lower.get("content-type"), body)
            except gateway.GatewayError as exc:
                return gateway_reply(exc, request_id, cors)
        event = self.event(route, invoke_as, path, query, headers, body, params, source_ip, request_id)
        reply = self.invoke(route.function, event, request_id)
        reply.function = route.function
        return reply

    def wsgi(self, environ: dict, start_response) -> list[bytes]:
        """The WSGI application the front serves: read the body, answer, never raise for a bad request."""
        from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
        from werkzeug.wrappers import Request

        from deployctl.local import gateway

        request_id = str(uuid.uuid4())
        request = Request(environ)
        request.max_content_length = MAX_REQUEST_BYTES
        raw_length = environ.get("CONTENT_LENGTH")
        encodings = [e.strip().lower() for e in environ.get("HTTP_TRANSFER_ENCODING", "").split(",") if e.strip()]
        reply = None
        # the front (front.py) has checked the framing and read the body; these only repeat its rules
        if environ.get("deployctl.body_too_large"):  # not read by the front: over max_body
            reply = gateway_reply(gateway.GatewayError(gateway.REQUEST_TOO_LARGE), request_id)
        elif encodings and (encodings != ["chunked"] or raw_length):
            reply = json_reply(400, {"message": "unsupported Transfer-Encoding", "requestId": request_id})
        elif raw_length is not None and not encodings and not (raw_length.isascii() and raw_length.isdigit()):
            reply = json_reply(400, {"message": "invalid Content-Length", "requestId": request_id})
        else:
            try:
                body = request.get_data(cache=False)
            except RequestEntityTooLarge:
                reply = gateway_reply(gateway.GatewayError(gateway.REQUEST_TOO_LARGE), request_id)
            except ClientDisconnected as exc:  # werkzeug wraps every read error in this
                cause = exc.__context__
                if isinstance(cause, TimeoutError):
                    raise TimeoutError("client stalled mid-body") from None
                if cause is None or isinstance(cause, ConnectionError):
                    raise ConnectionAbortedError("client closed the connection mid-body") from None
                reply = json_reply(400, {"message": "malformed request body", "requestId": request_id})
            except (ConnectionError, TimeoutError):
                raise
            except (OSError, ValueError):  # e.g. a malformed chunk
                reply = json_reply(400, {"message": "malformed request body", "requestId": request_id})
        if reply is not None:
            reply.close = True  # the rest of the body was not read: the connection cannot be reused
            reply.headers.append(("x-amzn-RequestId", request_id))
        else:
            target = environ.get("deployctl.raw_uri") or environ.get("RAW_URI") or "/"
            headers = [(k, v) for k, v in request.headers.items()]
            reply = self.handle(environ["REQUEST_METHOD"].upper(), target, headers, body,
                                environ.get("REMOTE_ADDR", "127.0.0.1"), request_id)
        if reply.close:
            environ["deployctl.close"] = True
        environ["deployctl.function"] = reply.function
        start_response(f"{reply.status} {_status_phrase(reply.status)}", reply.headers)
        return [reply.body]

    def invoke(self, fn: str, event: dict, request_id: str = "") -> Reply:
        hook = self.before_invoke.get(fn)
        if self.runtime is not None:
            if hook is not None:
                hook()
            inv = self.runtime.invoke(self.specs[fn], event)
            sys.stderr.write(inv.log)
            if inv.function_error:  # what API Gateway answers for a failed Lambda proxy invocation
                return json_reply(502, {"message": "Internal server error", "requestId": request_id})
            return proxy_result(json.loads(inv.payload), request_id)
        handler = self._handlers.get(fn) or self._import(fn)
        if hook is not None:
            hook()
        context = LambdaContext(self.cfg, fn, self._timeout(fn), self._memory(fn))
        with self._lock:
            env = self._envs[fn]
            for key in self._env_keys - env.keys():
                os.environ.pop(key, None)
            os.environ.update(env)
            try:
                result = handler(event, context)
            except Exception as exc:  # noqa: BLE001 - API Gateway answers 502 for a failed invocation
                import traceback

                from deployctl.local.front import escape_lines

                # the message may carry what the client sent: escaped like every log line
                print(escape_lines("".join(traceback.format_exception(exc)).rstrip()), file=sys.stderr)
                return json_reply(502, {"message": "Internal server error", "requestId": request_id})
        return proxy_result(result, request_id)


def _query_lists(query: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


def _status_phrase(code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def proxy_result(result: Any, request_id: str = "") -> Reply:
    """Turn a Lambda proxy result into an HTTP reply (502 if malformed, like API Gateway)."""
    bad = json_reply(502, {"message": "Internal server error", "requestId": request_id})
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        print("local: malformed Lambda proxy response (statusCode missing)", file=sys.stderr)
        return bad
    headers: list[tuple[str, str]] = []
    for k, v in (result.get("headers") or {}).items():
        headers.append((str(k), str(v)))
    seen = {k.lower() for k, _ in headers}
    for k, values in (result.get("multiValueHeaders") or {}).items():
        if str(k).lower() not in seen:
            headers.extend((str(k), str(v)) for v in values)
    body = result.get("body") or ""
    if not isinstance(body, str):
        print("local: malformed Lambda proxy response (body is not a string)", file=sys.stderr)
        return bad
    try:
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    except ValueError:
        return bad
    return Reply(result["statusCode"], headers, data)


class _Stop(Exception):
    """Raised in the main thread by SIGTERM."""


# -- the whole thing ----------------------------------------------------------------


@dataclass
class ServerInfo:
    url: str
    host: str
    port: int
    env: str
    dynamodb_endpoint: str
    routes: list[dict[str, str]]
    tables: list[str]
    startup_s: float


class LocalServer:
    """Backend + handlers + HTTP front. ``start`` returns once it is serving."""

    def __init__(self, cfg: EnvConfig, host: str = "127.0.0.1", port: int = 3000,
                 on_request: Callable[[str, str, int, float, str], None] | None = None,
                 log: Callable[[str], None] | None = None, client_timeout_s: float = CLIENT_TIMEOUT_S,
                 header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS,
                 artifacts: bool = False):
        self.cfg = cfg
        self.artifacts = artifacts  # run the built zips in runtime-faithful workers (local.runtime)
        self.runtime = None
        self.host = host
        self.port = port
        self.on_request = on_request
        self.log = log or _log_stderr
        self.client_timeout_s = client_timeout_s
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.backend = Backend(cfg)
        self.app: LocalApp | None = None
        self.httpd = None

    def start(self) -> ServerInfo:
        started = time.perf_counter()
        app = LocalApp(self.cfg)  # reads and checks the routes first: fail before starting anything
        from deployctl.local import front

        try:
            sock = front.listen(self.host, self.port)
        except OSError as exc:
            raise OperationFailed(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                                  hint="pick another --port (0 = any free port)") from None
        self.httpd = front.Server(sock, app.wsgi, timeout=self.client_timeout_s, log=self.log,
                                  on_request=self.on_request, header_timeout=self.header_timeout_s,
                                  max_connections=self.max_connections, max_body=MAX_REQUEST_BYTES)
        try:
            endpoint = self.backend.start()
            _point_aws_at(endpoint, self.cfg.region)
            for fn, spec in self.cfg.functions.items():
                if spec.get("reads_parameters"):
                    app.before_invoke[fn] = self.backend.ensure_parameters
            self.backend.provision()
            if self.artifacts:
                self._use_artifacts(app, endpoint)
            app.load_handlers()
        except BaseException:
            self.close()
            raise
        self.app = app
        host, port = self.httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return ServerInfo(
            url=f"http://{shown}:{port}",
            host=str(host),
            port=int(port),
            env=self.cfg.name,
            dynamodb_endpoint=endpoint,
            routes=[{"method": r.method, "path": r.path, "function": r.function} for r in app.routes],
            tables=[naming.table_name(self.cfg, t) for t in self.cfg.tables],
            startup_s=round(time.perf_counter() - started, 3),
        )

    def serve_forever(self) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM, then shut everything down.

        SIGINT's handler is installed explicitly: a shell starts background jobs
        (``deployctl local &``) with SIGINT ignored, and Python keeps it ignored."""
        assert self.httpd is not None
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_stop)
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_stop)
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def _use_artifacts(self, app: LocalApp, endpoint: str) -> None:
        from deployctl.local import runtime

        name = str(self.cfg.get("lambda.runtime", "python3.12"))
        interpreter = runtime.find_interpreter(name, cfg=self.cfg)
        functions = sorted({r.function for r in app.routes})
        code = runtime.built_code(self.cfg, functions)
        self.runtime = app.runtime = runtime.Runtime(name, runtime.cache_for(self.cfg), interpreter)
        app.specs = {fn: runtime.spec_for(self.cfg, fn, code[fn], {**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
                     for fn in functions}

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.server_close()
            self.httpd = None
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        self.backend.stop()


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _raise_stop(_signum, _frame) -> None:
    raise _Stop()


def _point_aws_at(endpoint: str, region: str) -> None:
    """Every AWS call of this process goes to the embedded moto server, with fake
    credentials: a developer's real profile is never used by `deployctl local`."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        os.environ.pop(key, None)
    os.environ.update(FAKE_AWS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_REGION"] = region
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def curl_example(url: str) -> str:
    return (f"curl -s {url}/health\n"
            f"curl -s -X POST {url}/items -H 'Content-Type: application/json' -d '{{\"name\": \"first item\"}}'\n"
            f"curl -s {url}/items")
