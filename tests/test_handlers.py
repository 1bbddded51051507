"""The Lambda handlers, called directly with API Gateway proxy events, against a real
moto server over HTTP (tables and parameters made from the dev env config)."""

from __future__ import annotations

import base64
import io
import json
import sys
import uuid

import pytest

from conftest import ROOT
from deployctl import naming
from deployctl.config import load_env
from deployctl.local.server import create_tables, seed_parameters

sys.path.insert(0, str(ROOT / "lambda_src"))

from health import health_check  # noqa: E402
from items import create_item, get_items  # noqa: E402
from shared import config as app_config  # noqa: E402
from shared import log as app_log  # noqa: E402
from users import handler as users  # noqa: E402

CFG = load_env("dev", ROOT)
ALL_KEYS = set().union(*(naming.function_environment(CFG, fn) for fn in CFG.functions))


class Context:
    aws_request_id = "lambda-req-1"


def event(method, resource, *, path=None, body=None, query=None, params=None, headers=None, b64=False):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return {
        "resource": resource,
        "path": path or resource,
        "httpMethod": method,
        "headers": headers or {"Content-Type": "application/json"},
        "multiValueHeaders": None,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "body": body,
        "isBase64Encoded": b64,
        "requestContext": {"requestId": f"req-{uuid.uuid4()}", "stage": "dev", "identity": {"sourceIp": "127.0.0.1"}},
    }


def call(module, *args, **kwargs):
    out = module.handler(event(*args, **kwargs), Context())
    assert isinstance(out["body"], str)
    return out["statusCode"], (json.loads(out["body"]) if out["body"] else None), out["headers"]


@pytest.fixture
def app(aws_env, monkeypatch):
    """Tables and parameters in moto; ``app.use(fn)`` sets exactly that function's environment."""
    import boto3

    ddb = boto3.client("dynamodb", region_name=CFG.region)
    ssm = boto3.client("ssm", region_name=CFG.region)
    create_tables(CFG, ddb)
    seed_parameters(CFG, ssm)
    app_config.clear()
    logs = io.StringIO()
    app_log.set_stream(logs)

    class App:
        cfg = CFG
        dynamodb = ddb
        log = logs

        @staticmethod
        def use(fn: str) -> None:
            for key in ALL_KEYS:
                monkeypatch.delenv(key, raising=False)
            for key, value in naming.function_environment(CFG, fn).items():
                monkeypatch.setenv(key, value)

    yield App
    app_log.set_stream(None)
    app_config.clear()


# -- items -------------------------------------------------------------------------


def test_create_item_stores_the_key_design(app):
    app.use("create-item")
    status, body, headers = call(create_item, "POST", "/items", body={"name": "  lamp ", "description": "red"})
    assert status == 201
    assert set(body) == {"id", "name", "description", "created_at", "updated_at"}
    assert body["name"] == "  lamp " and body["description"] == "red"  # stored as given: nothing trimmed
    assert uuid.UUID(body["id"]).version == 4
    assert body["created_at"] == body["updated_at"] and body["created_at"].endswith("Z")
    assert headers["Content-Type"] == "application/json" and headers["X-Request-Id"].startswith("req-")
    stored = app.dynamodb.get_item(
        TableName=naming.table_name(CFG, "items"), Key={"pk": {"S": f"ITEM#{body['id']}"}, "sk": {"S": "METADATA"}}
    )["Item"]
    assert stored["gsi1pk"] == {"S": "ITEM"}
    assert stored["gsi1sk"] == {"S": f"{body['created_at']}#{body['id']}"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": " " + "x" * 200}, "name"),  # 201 characters: counted as given, not trimmed
        ({"name": "x" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": "ok", "description": "d" * 2001}, "description"),
        ({"name": "ok", "description": ["no"]}, "description"),
        ({"name": "ok", "pk": "ITEM#x"}, "pk"),
    ],
)
def test_create_item_validation(app, body, field):
    app.use("create-item")
    status, out, _ = call(create_item, "POST", "/items", body=body)
    assert status == 400
    assert out["message"] == "validation failed"
    assert field in {d["field"] for d in out["details"]}
    assert out["requestId"].startswith("req-")


def test_create_item_bounds_are_inclusive(app):
    app.use("create-item")
    assert call(create_item, "POST", "/items", body={"name": "x" * 200, "description": "d" * 2000})[0] == 201
    assert call(create_item, "POST", "/items", body={"name": "x"})[0] == 201


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('"text"', 400),
        ("", 400),
        (None, 400),
        ('{"name": NaN}', 400),
        ('{"name": "\\ud800"}', 400),
        ("[" * 100000, 400),
        (json.dumps({"name": "x", "description": "y" * (256 * 1024)}), 413),
    ],
)
def test_bad_bodies_are_4xx(app, raw, status):
    app.use("create-item")
    code, out, _ = call(create_item, "POST", "/items", body=raw)
    assert code == status, out
    assert "message" in out


def test_base64_bodies_are_decoded(app):
    app.use("create-item")
    raw = base64.b64encode(json.dumps({"name": "b64"}).encode()).decode()
    assert call(create_item, "POST", "/items", body=raw, b64=True)[0] == 201
    assert call(create_item, "POST", "/items", body="***", b64=True)[0] == 400
    bad_utf8 = base64.b64encode(b'{"name": "\xff"}').decode()
    assert call(create_item, "POST", "/items", body=bad_utf8, b64=True)[0] == 400


def test_list_items_newest_first_across_pages(app):
    app.use("create-item")
    ids = [call(create_item, "POST", "/items", body={"name": f"n{i}"})[1]["id"] for i in range(5)]
    app.use("get-items")
    seen, token, pages = [], None, 0
    while True:
        status, body, _ = call(get_items, "GET", "/items", query={"limit": "2", **({"nextToken": token} if token else {})})
        assert status == 200 and body["count"] == len(body["items"]) <= 2
        seen += [i["id"] for i in body["items"]]
        assert all("pk" not in i and "gsi1sk" not in i for i in body["items"])
        pages += 1
        token = body.get("nextToken")
        if not token:
            break
    assert seen == list(reversed(ids))
    assert pages == 3
    status, body, _ = call(get_items, "GET", "/items")
    assert status == 200 and body["count"] == 5 and "nextToken" not in body


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", " ", "1e2", "99999999999"])
def test_list_items_rejects_bad_limits(app, limit):
    app.use("get-items")
    status, body, _ = call(get_items, "GET", "/items", query={"limit": limit})
    assert status == 400 and "limit" in body["message"]


@pytest.mark.parametrize(
    "token", ["garbage", "e30", "a.b", "%%%", "x" * 3000, base64.urlsafe_b64encode(b'{"pk":"ITEM#1"}').decode()]
)
def test_list_items_rejects_bad_tokens(app, token):
    app.use("get-items")
    status, body, _ = call(get_items, "GET", "/items", query={"nextToken": token})
    assert status == 400 and "nextToken" in body["message"]


# -- health --------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["/health", "/"])
def test_health_healthy(app, monkeypatch, resource):
    app.use("health-check")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    status, body, _ = call(health_check, "GET", resource)
    assert status == 200
    assert (body["status"], body["environment"], body["version"]) == ("healthy", "dev", "7")
    assert [(c["name"], c["status"]) for c in body["checks"]] == [("config", "pass"), ("table:items", "pass")]


def test_health_unhealthy_when_table_is_gone(app):
    app.use("health-check")
    app.dynamodb.delete_table(TableName=naming.table_name(CFG, "items"))
    status, body, _ = call(health_check, "GET", "/health")
    assert status == 503
    assert body["status"] == "unhealthy" and body["environment"] == "dev"
    table = next(c for c in body["checks"] if c["name"] == "table:items")
    assert table["status"] == "fail" and "ResourceNotFoundException" in table["detail"]


def test_health_unhealthy_without_table_config(app, monkeypatch):
    app.use("health-check")
    monkeypatch.delenv("TABLE_ITEMS")
    status, body, _ = call(health_check, "GET", "/health")
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"] == [{"name": "config", "status": "fail", "detail": "TABLE_ITEMS is not set"}]


def test_health_degraded_when_the_table_answers_slowly(app, monkeypatch):
    app.use("health-check")
    monkeypatch.setattr(health_check, "SLOW_MS", -1.0)  # every real DescribeTable is now "slow"
    status, body, _ = call(health_check, "GET", "/health")
    assert status == 200 and body["status"] == "degraded"
    table = body["checks"][-1]
    assert table["status"] == "warn" and "took" in table["detail"]


# -- users ---------------------------------------------------------------------------


def new_user(**extra):
    return {"name": "Ada Lovelace", "email": "ada@example.com", **extra}


def test_users_crud(app):
    app.use("users")
    status, user, _ = call(users, "POST", "/users", body=new_user(phone="+44 20 7946 0958", address="1 Main St"))
    assert status == 201
    uid = user["UserId"]
    assert uuid.UUID(uid).version == 4 and user["email"] == "ada@example.com" and user["phone"].startswith("+44")
    p = {"userId": uid}
    status, got, _ = call(users, "GET", "/users/{userId}", path=f"/users/{uid}", params=p)
    assert status == 200 and got == user
    status, upd, _ = call(users, "PUT", "/users/{userId}", params=p, body={"email": "ada@lovelace.org"})
    assert status == 200
    assert upd["email"] == "ada@lovelace.org" and upd["name"] == "Ada Lovelace" and upd["UserId"] == uid
    assert upd["updated_at"] >= user["updated_at"] and upd["created_at"] == user["created_at"]
    status, body, _ = call(users, "DELETE", "/users/{userId}", params=p)
    assert status == 204 and body is None
    assert call(users, "GET", "/users/{userId}", params=p)[0] == 404
    assert call(users, "DELETE", "/users/{userId}", params=p)[0] == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_user_is_404(app, method):
    app.use("users")
    body = {"name": "x"} if method == "PUT" else None
    status, out, _ = call(users, method, "/users/{userId}", params={"userId": str(uuid.uuid4())}, body=body)
    assert status == 404 and out["message"] == "user not found"
    # a 404 from the condition expression must not have created anything
    assert app.dynamodb.scan(TableName=naming.table_name(CFG, "users"))["Count"] == 0


@pytest.mark.parametrize("uid", ["nope", "", "1234", str(uuid.uuid4()).upper() + "x"])
def test_malformed_user_id_is_400(app, uid):
    app.use("users")
    assert call(users, "GET", "/users/{userId}", params={"userId": uid})[0] == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A"}, "email"),
        ({"email": "a@b.co"}, "name"),
        (new_user(email="not-an-email"), "email"),
        (new_user(email="a@b"), "email"),
        (new_user(email="a b@c.de"), "email"),
        (new_user(email="x" * 250 + "@b.co"), "email"),
        (new_user(phone="call me"), "phone"),
        (new_user(phone=""), "phone"),  # the schema's pattern needs 2+ characters
        (new_user(address="a" * 501), "address"),
        (new_user(UserId=str(uuid.uuid4())), "UserId"),
        (new_user(admin=True), "admin"),
    ],
)
def test_create_user_validation(app, body, field):
    app.use("users")
    status, out, _ = call(users, "POST", "/users", body=body)
    assert status == 400
    assert field in {d["field"] for d in out["details"]}


def test_update_user_rules(app):
    app.use("users")
    uid = call(users, "POST", "/users", body=new_user())[1]["UserId"]
    p = {"userId": uid}
    for body in ({}, {"UserId": str(uuid.uuid4())}, {"created_at": "x"}, {"email": "bad"}, {"name": ""}):
        status, out, _ = call(users, "PUT", "/users/{userId}", params=p, body=body)
        assert status == 400, body
    status, got, _ = call(users, "GET", "/users/{userId}", params=p)
    assert got["UserId"] == uid and got["email"] == "ada@example.com"


def test_users_pagination_and_tamper_evident_tokens(app):
    app.use("users")
    created = {call(users, "POST", "/users", body=new_user(email=f"u{i}@example.com"))[1]["UserId"] for i in range(5)}
    seen, token = [], None
    while True:
        q = {"limit": "2", **({"nextToken": token} if token else {})}
        status, body, _ = call(users, "GET", "/users", query=q)
        assert status == 200 and body["count"] <= 2
        seen += [u["UserId"] for u in body["users"]]
        token = body.get("nextToken")
        if not token:
            break
        last_token = token
    assert sorted(seen) == sorted(created)
    payload, mac = last_token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps({"UserId": str(uuid.uuid4())}).encode()).decode().rstrip("=")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (payload, f"{forged_payload}.{mac}", f"{payload}.{flipped}", last_token + "x", "...", "a" * 2049):
        status, body, _ = call(users, "GET", "/users", query={"nextToken": bad})
        assert status == 400, bad
        assert "nextToken" in body["message"]
    assert call(users, "GET", "/users", query={"nextToken": last_token})[0] == 200


def test_config_is_read_once_per_cold_start(app):
    """page-size comes from SSM at cold start; a later change is seen only after a new cold start."""
    import boto3

    app.use("users")
    for i in range(3):
        call(users, "POST", "/users", body=new_user(email=f"c{i}@example.com"))
    assert call(users, "GET", "/users")[1]["count"] == 3
    boto3.client("ssm", region_name=CFG.region).put_parameter(
        Name=naming.parameter_prefix(CFG) + "page-size", Value="2", Type="String", Overwrite=True)
    assert call(users, "GET", "/users")[1]["count"] == 3  # cached
    app_config.clear()  # a new cold start
    assert call(users, "GET", "/users")[1]["count"] == 2


# -- shared behaviour ------------------------------------------------------------------


def test_unknown_route_and_method(app):
    app.use("users")
    status, body, _ = call(users, "GET", "/nope")
    assert status == 404 and body["message"] == "not found"
    status, body, headers = call(users, "PATCH", "/users")
    assert status == 405 and headers["Allow"] == "GET,POST,OPTIONS"


def test_cors_and_preflight(app):
    app.use("users")
    origin = "http://localhost:3000"
    _, _, headers = call(users, "GET", "/users", headers={"origin": origin})
    assert headers["Access-Control-Allow-Origin"] == origin
    _, _, headers = call(users, "GET", "/users", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers
    status, _, headers = call(users, "OPTIONS", "/users/{userId}", headers={"Origin": origin})
    assert status == 204
    assert headers["Access-Control-Allow-Methods"] == "DELETE,GET,OPTIONS,PUT"


def test_unexpected_errors_are_generic_500_with_details_only_in_the_log(app, monkeypatch):
    app.use("users")
    monkeypatch.delenv("TABLE_USERS")
    app_config.clear()
    status, body, _ = call(users, "GET", "/users")
    assert status == 500
    assert body["message"] == "internal error" and "TABLE_USERS" not in json.dumps(body)
    records = [json.loads(line) for line in app.log.getvalue().splitlines()]
    errors = [r for r in records if r.get("level") == "ERROR"]
    assert errors and "TABLE_USERS" in errors[0]["traceback"]


def test_info_logs_carry_request_ids_but_no_bodies_or_personal_data(app, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    app.use("users")
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    status, user, _ = call(users, "POST", "/users", body=new_user(phone="+1 555 0100", address="42 Secret Lane"))
    assert status == 201
    call(users, "PUT", "/users/{userId}", params={"userId": user["UserId"]}, body={"name": "Grace Hopper"})
    text = app.log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    records = [r for r in lines if "_aws" not in r]  # EMF metric blobs share the stream
    assert records and all(r["requestId"].startswith("req-") for r in records)
    assert all(r["service"] == CFG.app and r["function"] == "users" for r in records)
    assert any(r["message"] == "request" and r["status"] == 201 for r in records)
    for secret in ("Ada", "ada@example.com", "555 0100", "Secret Lane", "Grace"):
        assert secret not in text


def emf_blobs(text: str) -> list[dict]:
    return [r for r in map(json.loads, text.splitlines()) if "_aws" in r]


def test_business_metrics_are_emitted_in_embedded_metric_format(app):
    """One EMF line per request that counted something, under the namespace and dimension the
    env root gives the functions (and its dashboard plots); nothing for requests that did not."""
    app.use("create-item")
    assert call(create_item, "POST", "/items", body={"name": "lamp"})[0] == 201
    app.use("users")
    status, user, _ = call(users, "POST", "/users", body=new_user())
    assert status == 201
    assert call(users, "GET", "/users/{userId}", params={"userId": user["UserId"]})[0] == 200
    assert call(users, "DELETE", "/users/{userId}", params={"userId": user["UserId"]})[0] == 204
    assert call(users, "DELETE", "/users/{userId}", params={"userId": user["UserId"]})[0] == 404
    blobs = emf_blobs(app.log.getvalue())
    names = [m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    assert names == ["ItemsCreated", "UsersCreated", "UsersDeleted"]
    assert set(names) == set(naming.BUSINESS_METRICS)
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == naming.metrics_namespace(CFG)
        assert directive["Dimensions"] == [["service"]] and blob["service"] == CFG.app
        assert blob[directive["Metrics"][0]["Name"]] in (1, [1.0], 1.0)


def test_parameters_come_through_the_powertools_utility_and_failures_log_the_aws_code(app, monkeypatch):
    """The users function reads its SSM parameters (moto, real paginator) via the powertools
    parameters utility; a failed read degrades to defaults and logs only the AWS error code."""
    app.use("users")
    cfg = app_config.get()
    assert cfg.param("page-size") == "20" and len(cfg.param("pagination-key")) >= 16
    assert "aws_lambda_powertools.utilities.parameters" in sys.modules

    from botocore.exceptions import ClientError

    class Denied:
        def get_paginator(self, operation):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, operation)

    from shared import aws as app_aws

    app_aws.set_factory(lambda service: Denied())
    try:
        app_config.clear()
        degraded = app_config.get()
    finally:
        app_aws.set_factory(None)
    assert degraded.parameters == {}
    errors = [r for r in map(json.loads, app.log.getvalue().splitlines()) if r.get("message") == "config.ssm_failed"]
    assert errors and errors[-1]["error"] == "AccessDeniedException"
