"""A moto server with the fixes the deploy path needs, for the end-to-end suite only.

moto 5.2.6 (the release requirements/ pins; tests/test_lock.py keeps this line
in step with the lock) has gaps on the path the real Terraform AWS provider takes
through our roots. Each fix below is small, names the moto source it works
around, and should be deleted when moto fixes it (the suite then shows whether it
still passes without it). Nothing here changes the product: these are the
emulator's bugs, not ours.

Run: python tests/e2e/moto_compat.py PORT   (serves on 127.0.0.1:PORT)
"""

from __future__ import annotations

import fnmatch
import json
import sys
from typing import Any

APPLIED: list[str] = []


def _fix(name: str):
    def register(fn):
        fn()
        APPLIED.append(name)
        return fn

    return register


# -- (1) bucket-policy conditions ------------------------------------------------------------
# moto/iam/policy_conditions.py evaluates only StringEquals (any other operator
# "holds"), and moto/iam/access_control.py IAMPolicyStatement.is_action_permitted
# returns DENIED when a statement's condition does not hold, instead of leaving the
# statement out. So the state bucket's TLS-only Deny (Bool aws:SecureTransport =
# false) denies every object request, the state file included. Here a statement
# whose condition does not hold does not apply, the usual operators are evaluated,
# and requests count as made over TLS (the emulator stands in for AWS's endpoint).

_REQUEST_CONTEXT = {"aws:securetransport": ["true"]}


def _values(v: Any) -> list[str]:
    items = v if isinstance(v, list) else [v]
    return [str(x).lower() if isinstance(x, bool) else str(x) for x in items]


def _condition_holds(condition: dict, context: dict[str, list[str]]) -> bool:
    for operator, pairs in condition.items():
        op = operator
        if_exists = op.endswith("IfExists")
        op = op.removesuffix("IfExists")
        for key, expected in pairs.items():
            actual = context.get(key.lower())
            expected_values = _values(expected)
            if op == "Null":
                if (actual is None) != (expected_values[0].lower() == "true"):
                    return False
                continue
            if actual is None:
                if if_exists:
                    continue
                return False
            negate = "Not" in op
            base = op.replace("Not", "")
            if base in ("StringEquals", "ArnEquals"):
                match = any(a == e for a in actual for e in expected_values)
            elif base == "StringEqualsIgnoreCase":
                match = any(a.lower() == e.lower() for a in actual for e in expected_values)
            elif base in ("StringLike", "ArnLike"):
                match = any(fnmatch.fnmatchcase(a, e) for a in actual for e in expected_values)
            elif base == "Bool":
                match = any(a.lower() == e.lower() for a in actual for e in expected_values)
            else:  # an operator we do not model: the statement is assumed to apply
                match = True
                negate = False
            if match == negate:
                return False
    return True


@_fix("iam/s3 policy conditions")
def _policy_conditions() -> None:
    from moto.iam import access_control

    original = access_control.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        statement = self._statement
        condition = statement.get("Condition") if isinstance(statement, dict) else None
        if not condition:
            return original(self, action, resource, principal, incoming_condition_values)
        context = dict(_REQUEST_CONTEXT)
        for key, value in (incoming_condition_values or {}).items():
            context[key.lower()] = _values(value)
        if not _condition_holds(condition, context):
            return access_control.PermissionResult.NEUTRAL
        unconditioned = access_control.IAMPolicyStatement({k: v for k, v in statement.items() if k != "Condition"})
        return original(unconditioned, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = is_action_permitted


# -- (2) PutBucketLogging with a "Principal": "*" statement ------------------------------------
# moto/s3/models.py FakeBucket._log_permissions_enabled_policy calls
# stmt.get("Principal", {}).get("Service"), which raises (500) when a statement of
# the target bucket's policy has "Principal": "*" (our TLS-only Deny). Statements
# whose principal is not a map are skipped here, as they grant the log service nothing.

@_fix("s3 PutBucketLogging with Principal '*'")
def _bucket_logging() -> None:
    from moto.s3 import models

    original = models.FakeBucket._log_permissions_enabled_policy

    def log_permissions_enabled_policy(target_bucket, target_prefix):
        policy = target_bucket.policy
        if not policy:
            return original(target_bucket, target_prefix)
        doc = json.loads(policy.decode() if isinstance(policy, bytes) else policy)
        statements = doc.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        kept = [s for s in statements if isinstance(s.get("Principal"), dict)]
        saved = target_bucket.policy
        try:
            target_bucket.policy = json.dumps({**doc, "Statement": kept}).encode()
            return original(target_bucket, target_prefix)
        finally:
            target_bucket.policy = saved

    models.FakeBucket._log_permissions_enabled_policy = staticmethod(log_permissions_enabled_policy)


# -- (3) DynamoDB Contributor Insights ------------------------------------------------------------
# moto/dynamodb/responses.py DynamoHandler has no UpdateContributorInsights /
# DescribeContributorInsights (500 "not implemented"); the tables module enables
# them for the table and each GSI. Kept here as a status per table and index.

@_fix("dynamodb contributor insights")
def _contributor_insights() -> None:
    from moto.dynamodb.responses import DynamoHandler

    status: dict[tuple[str, str, str, str], str] = {}

    def _key(self) -> tuple[str, str, str, str]:
        return (self.current_account, self.region, self._get_param("TableName"), self._get_param("IndexName") or "")

    def _table_exists(self) -> None:
        self.dynamodb_backend.get_table(self._get_param("TableName"))  # raises ResourceNotFound like AWS

    def update_contributor_insights(self) -> str:
        _table_exists(self)
        action = self._get_param("ContributorInsightsAction")
        status[_key(self)] = "ENABLED" if action == "ENABLE" else "DISABLED"
        doc = {"TableName": self._get_param("TableName"), "ContributorInsightsStatus": status[_key(self)]}
        if self._get_param("IndexName"):
            doc["IndexName"] = self._get_param("IndexName")
        return json.dumps(doc)

    def describe_contributor_insights(self) -> str:
        _table_exists(self)
        doc = {"TableName": self._get_param("TableName"), "ContributorInsightsStatus": status.get(_key(self), "DISABLED"),
               "ContributorInsightsRuleList": []}
        if self._get_param("IndexName"):
            doc["IndexName"] = self._get_param("IndexName")
        return json.dumps(doc)

    DynamoHandler.update_contributor_insights = update_contributor_insights
    DynamoHandler.describe_contributor_insights = describe_contributor_insights


# -- (4) PutRestApi with mock integrations, and the root path ----------------------------------
# moto/apigateway/models.py APIGatewayBackend.put_rest_api drops None values before
# calling put_integration, whose uri and integration_method have no default: a
# `mock` integration (our CORS preflight) has neither and the call raises (500).
# In overwrite mode it also re-creates "/" with add_child("/"), and then makes an
# extra child with an empty path part for the document's "/" path.

@_fix("apigateway put_rest_api mock integrations and root")
def _put_rest_api() -> None:
    from moto.apigateway import models

    backend = models.APIGatewayBackend
    original_put_integration = backend.put_integration

    def put_integration(self, function_id, resource_id, method_type, integration_type, uri=None,
                        integration_method=None, **kwargs):
        return original_put_integration(self, function_id, resource_id, method_type, integration_type,
                                        uri, integration_method, **kwargs)

    backend.put_integration = put_integration

    original_put_rest_api = backend.put_rest_api

    def put_rest_api(self, function_id, api_doc, fail_on_warnings, mode="merge"):
        api = self.get_rest_api(function_id)
        root = api.get_resource_for_path("/")
        result = original_put_rest_api(self, function_id, api_doc, fail_on_warnings, mode)
        # one root: keep the resource whose path is "/", fold children and methods of duplicates into it
        roots = [r for r in api.resources.values() if r.get_path() == "/"]
        keep = next((r for r in roots if root is not None and r.id == root.id), roots[0] if roots else None)
        for extra in roots:
            if extra is keep:
                continue
            keep.resource_methods.update(extra.resource_methods)
            for child in api.resources.values():
                if child.parent_id == extra.id:
                    child.parent_id = keep.id
            api.resources.pop(extra.id, None)
        if keep is not None:
            api.default = keep
        return result

    backend.put_rest_api = put_rest_api


# -- (5) Lambda DeadLetterConfig and LoggingConfig -----------------------------------------------
# moto/awslambda/models.py LambdaFunction neither stores nor returns DeadLetterConfig
# and LoggingConfig (CreateFunction, UpdateFunctionConfiguration, GetFunction), so
# the provider sees a diff on every function after each apply.

@_fix("lambda DeadLetterConfig and LoggingConfig")
def _lambda_config() -> None:
    from moto.awslambda.models import LambdaFunction

    original_init = LambdaFunction.__init__
    original_get = LambdaFunction.get_configuration
    original_update = LambdaFunction.update_configuration

    def __init__(self, account_id, spec, region, version="1"):
        original_init(self, account_id, spec, region, version)
        self.compat_dead_letter_config = spec.get("DeadLetterConfig")
        self.compat_logging_config = spec.get("LoggingConfig") or {
            "LogFormat": "Text", "LogGroup": f"/aws/lambda/{spec.get('FunctionName')}"}

    def get_configuration(self, on_create=False):
        config = original_get(self, on_create)
        if getattr(self, "compat_dead_letter_config", None):
            config["DeadLetterConfig"] = self.compat_dead_letter_config
        if getattr(self, "compat_logging_config", None):
            config["LoggingConfig"] = self.compat_logging_config
        return config

    def update_configuration(self, config_updates):
        if "DeadLetterConfig" in config_updates:
            self.compat_dead_letter_config = config_updates["DeadLetterConfig"]
        if "LoggingConfig" in config_updates:
            self.compat_logging_config = {**(getattr(self, "compat_logging_config", None) or {}),
                                          **config_updates["LoggingConfig"]}
        return original_update(self, config_updates)

    LambdaFunction.__init__ = __init__
    LambdaFunction.get_configuration = get_configuration
    LambdaFunction.update_configuration = update_configuration


# -- (6) KMS rotation period ----------------------------------------------------------------------
# moto/kms/models.py KmsBackend.enable_key_rotation ignores RotationPeriodInDays and
# moto/kms/responses.py get_key_rotation_status omits it, so the provider plans an
# update of every key with a rotation period after each apply.

@_fix("kms rotation period")
def _kms_rotation() -> None:
    from moto.kms.responses import KmsResponse

    original_enable = KmsResponse.enable_key_rotation
    original_status = KmsResponse.get_key_rotation_status

    def enable_key_rotation(self):
        result = original_enable(self)
        key = self.kms_backend.keys[self.kms_backend.get_key_id(self._get_param("KeyId"))]
        key.compat_rotation_period_in_days = self._get_param("RotationPeriodInDays") or 365
        return result

    def get_key_rotation_status(self):
        doc = json.loads(original_status(self))
        key = self.kms_backend.keys[self.kms_backend.get_key_id(self._get_param("KeyId"))]
        if doc.get("KeyRotationEnabled"):
            doc["RotationPeriodInDays"] = getattr(key, "compat_rotation_period_in_days", 365)
            doc["KeyId"] = key.id
        return json.dumps(doc)

    KmsResponse.enable_key_rotation = enable_key_rotation
    KmsResponse.get_key_rotation_status = get_key_rotation_status



# -- (7) managed policies in GetAccountAuthorizationDetails ---------------------------------------
# moto/iam/responses.py get_account_authorization_details serializes moto/iam/models.py Policy
# objects against botocore's ManagedPolicyDetail shape, which reads PolicyName and PolicyId from
# attributes policy_name / policy_id; Policy has only name / id, so both are missing (AWS always
# returns them, and cloudsplaining, which the suite runs on that document, requires them).

@_fix("managed policy names in authorization details")
def _authorization_details_policy_names() -> None:
    from moto.iam.models import Policy

    if not hasattr(Policy, "policy_name"):
        Policy.policy_name = property(lambda self: self.name)
    if not hasattr(Policy, "policy_id"):
        Policy.policy_id = property(lambda self: self.id)


# -- (8) Lambda Invoke without Docker, and API Gateway's Lambda proxy at moto's URL -----------------
# moto/awslambda/models.py LambdaFunction._invoke_lambda runs the code in a Docker container
# (lambci / shogo82148 images); without Docker every Invoke answers "error running docker".
# moto/apigateway/models.py serves a stage's URL only in decorator mode (responses callbacks,
# "This only works when using the decorators, not in ServerMode"), and its integration parsers
# know HTTP and AWS but not AWS_PROXY (TypeUnknownParser raises NotImplementedError).
# Here (the emulator standing in for Lambda and API Gateway, so test-side: the product never
# runs code inside moto):
# * Invoke runs the function's code as moto holds it -- the zip fetched from moto's S3 by the
#   version's Code (S3Bucket/S3Key/S3ObjectVersion), and its layer versions' zips, in order --
#   in deployctl's runtime-faithful worker (deployctl/local/runtime.py: the runtime's own
#   python3.12, /var/task + /opt, the bundled SDK, a warm worker per function version),
#   pointed back at this moto server; the log is saved to the function's log group as moto does;
# * a request to LocalStack's URL form, /restapis/{api}/{stage}/_user_request_/{path} (also what
#   `deployctl up`'s smoke test calls on an emulator), or with Host {api}.execute-api.*, is routed
#   by the deployed API's resources and methods; an AWS_PROXY integration's Lambda (alias or
#   version from its URI) gets the REST proxy event (v1) and its proxy result is the response.
#   Not emulated: request validators, authorizers, mapping templates, MOCK integrations (500).

ENDPOINT: list[str] = []
_RUNTIME: list = []
_CACHE: list[str] = []


def _runtime(name: str):
    import atexit
    import tempfile
    from pathlib import Path

    from deployctl.local import runtime

    if not _RUNTIME:
        import shutil

        _CACHE.append(tempfile.mkdtemp(prefix="moto-lambda-"))
        _RUNTIME.append(runtime.Runtime(name, Path(_CACHE[0])))
        atexit.register(shutil.rmtree, _CACHE[0], True)
        atexit.register(_RUNTIME[0].close)  # runs first: the workers end, then their unpacked code goes
    return _RUNTIME[0]


def _s3_bytes(account_id: str, partition: str, code: dict) -> bytes | None:
    from moto.s3.models import s3_backends

    if not code.get("S3Bucket"):
        return None
    backend = s3_backends[account_id][partition]
    try:
        key = backend.get_object(code["S3Bucket"], code["S3Key"], version_id=code.get("S3ObjectVersion"))
    except Exception:  # noqa: BLE001 - moto stores versions as the bucket's versioning allows
        key = backend.get_object(code["S3Bucket"], code["S3Key"])
    return key.value if key is not None else None


def _lambda_code(fn):
    from moto.awslambda.models import lambda_backends

    from deployctl.local.runtime import Code

    code = _s3_bytes(fn.account_id, fn.partition, fn.code) or fn.code_bytes
    layers = []
    backend = lambda_backends[fn.account_id][fn.region]
    for layer in fn.layers or []:
        lv = backend._layers.get_layer_version_by_arn(layer["Arn"])
        layers.append(_s3_bytes(fn.account_id, fn.partition, lv.content) or lv.code_bytes)
    return Code(code, layers)


def run_lambda(fn, event):
    """Invoke moto's function version ``fn`` with ``event`` in the worker: a local.runtime.Invocation."""
    from deployctl.local.runtime import FunctionSpec

    spec = FunctionSpec(name=fn.function_name, handler=fn.handler, runtime=fn.run_time, code=_lambda_code(fn),
                        memory_mb=int(fn.memory_size), timeout_s=float(fn.timeout), region=fn.region,
                        account_id=fn.account_id, version=str(fn.version),
                        environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
                        aws={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                             "AWS_SESSION_TOKEN": "testing", "AWS_ENDPOINT_URL": ENDPOINT[0]})
    return _runtime(fn.run_time).invoke(spec, event, arn=fn.function_arn)


@_fix("lambda invoke without docker (runtime-faithful worker)")
def _lambda_executor() -> None:
    from moto.awslambda.models import LambdaFunction

    def _invoke_lambda(self, event=None):
        self.logs_backend.ensure_log_group(self.logs_group_name)
        inv = run_lambda(self, event if event is not None else {})
        self.save_logs(inv.log)
        tail = inv.log.encode()[-4096:].decode("utf-8", "replace")  # LogType=Tail: the last 4 KB
        return inv.payload, inv.function_error is not None, tail

    LambdaFunction._invoke_lambda = _invoke_lambda

    # moto/awslambda/responses.py LambdaResponse.invoke reads the lower-case "qualifier" parameter, but
    # the SDKs send ?Qualifier=...: every Invoke of an alias or version ran $LATEST. Read it as sent.
    from moto.awslambda.responses import LambdaResponse

    original_invoke = LambdaResponse.invoke

    def invoke(self):
        if "Qualifier" in self.querystring and "qualifier" not in self.querystring:
            self.querystring["qualifier"] = self.querystring["Qualifier"]
        return original_invoke(self)

    LambdaResponse.invoke = invoke


def _find_api(api_id: str):
    from moto.apigateway.models import apigateway_backends

    for account_id, regions in list(apigateway_backends.items()):
        for region, backend in list(regions.items()):
            if api_id in backend.apis:
                return account_id, region, backend.apis[api_id]
    return None


def _match(api, path: str):
    import re

    candidates = []
    for resource in api.resources.values():
        template = resource.get_path()
        names = re.findall(r"\{([^}/]+)\}", template)
        pattern = "".join(f"(?P<p{names.index(part[1:-1])}>[^/]+)" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}/]+\})", template))
        m = re.fullmatch(pattern, path)
        if m:
            candidates.append((len(names), resource, {n: m.group(f"p{i}") for i, n in enumerate(names)}))
    candidates.sort(key=lambda c: c[0])  # literal paths before templated ones
    return (candidates[0][1], candidates[0][2]) if candidates else (None, {})


def _gateway_json(start_response, status: str, doc: dict, extra=()):
    body = json.dumps(doc).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra])
    return [body]


def serve_api(environ, start_response, api_id: str, stage: str, path: str):
    """One request to a deployed REST API stage, as API Gateway's Lambda proxy integration serves it."""
    import base64
    import time
    import uuid
    from urllib.parse import parse_qsl, unquote

    from moto.awslambda.models import lambda_backends

    request_id = str(uuid.uuid4())
    found = _find_api(api_id)
    if found is None or stage not in found[2].stages:
        return _gateway_json(start_response, "403 Forbidden", {"message": "Forbidden"})
    account_id, region, api = found
    method = environ["REQUEST_METHOD"].upper()
    resource, params = _match(api, path)
    api_method = resource.resource_methods.get(method) or resource.resource_methods.get("ANY") if resource else None
    if api_method is None or api_method.method_integration is None:
        return _gateway_json(start_response, "403 Forbidden", {"message": "Missing Authentication Token"},
                             [("x-amzn-ErrorType", "MissingAuthenticationTokenException")])
    integration = api_method.method_integration
    if str(integration.integration_type).upper() != "AWS_PROXY":
        return _gateway_json(start_response, "500 Internal Server Error",
                             {"message": f"moto_compat: {integration.integration_type} integrations are not emulated"})
    function_arn = integration.uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
    parts = function_arn.split(":")
    name, qualifier = parts[6], (parts[7] if len(parts) > 7 else None)
    fn = lambda_backends[account_id][region].get_function(name, qualifier)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    headers, multi = {}, {}
    for key, value in environ.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            header = key.removeprefix("HTTP_").replace("_", "-").title()
            if value:
                headers[header] = value
                multi.setdefault(header, []).append(value)
    query, mquery = {}, {}
    for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        query[key] = value
        mquery.setdefault(key, []).append(value)
    try:
        body, b64 = (raw.decode("utf-8"), False) if raw else (None, False)
    except UnicodeDecodeError:
        body, b64 = base64.b64encode(raw).decode(), True
    now = time.time()
    event = {
        "resource": resource.get_path(), "path": path, "httpMethod": method,
        "headers": headers or None, "multiValueHeaders": multi or None,
        "queryStringParameters": query or None, "multiValueQueryStringParameters": mquery or None,
        "pathParameters": {k: unquote(v) for k, v in params.items()} or None, "stageVariables": None,
        "requestContext": {
            "accountId": account_id, "apiId": api_id, "resourceId": resource.id, "resourcePath": resource.get_path(),
            "httpMethod": method, "path": f"/{stage}{path}", "stage": stage, "protocol": "HTTP/1.1",
            "requestId": request_id, "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000), "domainName": f"{api_id}.execute-api.{region}.amazonaws.com",
            "identity": {"sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                         "userAgent": headers.get("User-Agent")},
        },
        "body": body, "isBase64Encoded": b64,
    }
    inv = run_lambda(fn, event)
    fn.logs_backend.ensure_log_group(fn.logs_group_name)
    fn.save_logs(inv.log)
    bad = ("502 Bad Gateway", {"message": "Internal server error"})
    try:
        result = json.loads(inv.payload)
    except ValueError:
        result = None
    if inv.function_error or not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return _gateway_json(start_response, bad[0], bad[1], [("x-amzn-RequestId", request_id)])
    out_headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for key, values in (result.get("multiValueHeaders") or {}).items():
        out_headers += [(str(key), str(v)) for v in values]
    data = result.get("body") or ""
    data = base64.b64decode(data) if result.get("isBase64Encoded") else data.encode("utf-8")
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(result["statusCode"]).phrase
    except ValueError:
        phrase = "Unknown"
    out_headers = [(k, v) for k, v in out_headers if k.lower() not in ("content-length", "connection")]
    start_response(f"{result['statusCode']} {phrase}",
                   [*out_headers, ("Content-Length", str(len(data))), ("x-amzn-RequestId", request_id)])
    return [data]


@_fix("apigateway lambda proxy at moto's URL")
def _api_proxy() -> None:
    import re

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    user_request = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
    host = re.compile(r"^(?P<api>[a-z0-9]+)\.execute-api\.")
    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        m = user_request.match(path)
        if m:
            return serve_api(environ, start_response, m["api"], m["stage"], m["path"] or "/")
        h = host.match(environ.get("HTTP_HOST", ""))
        if h:
            stage, _, rest = path.lstrip("/").partition("/")
            return serve_api(environ, start_response, h["api"], stage, "/" + rest)
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 5000
    from moto.server import main as moto_main

    ENDPOINT.append(f"http://127.0.0.1:{port}")
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # terminate() runs atexit: workers end, caches go

    print(f"moto_compat: fixes applied: {', '.join(APPLIED)}", file=sys.stderr, flush=True)
    moto_main(["-H", "127.0.0.1", "-p", str(port)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
