"""Property-based: arbitrary methods, paths, query strings and bodies thrown at
`deployctl local` (a subprocess) never produce a 5xx, and every response that
has a body has a JSON object body."""

from __future__ import annotations

import json
import string
import uuid
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_local_http import start_local, stop_local

pytestmark = pytest.mark.slow

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def local():
    server = start_local()
    yield server
    assert stop_local(server) == 0
    assert "Traceback" not in server.log(), server.log()[-3000:]
    server.stderr.unlink()


def check(server, method, target, body=None, headers=None):
    status, resp_headers, data = server.request(method, target, body, headers)
    assert status < 500, (method, target, status, data[:500])
    assert resp_headers.get("x-amzn-requestid"), resp_headers  # every answer carries API Gateway's request id
    if status == 204 or method == "HEAD":
        assert data == b""
    else:
        parsed = json.loads(data)
        assert isinstance(parsed, dict) and parsed, data[:200]
        if status >= 400:
            assert isinstance(parsed.get("message"), str)
            assert parsed.get("requestId") == resp_headers["x-amzn-requestid"]
    return status, data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["name", "email", "phone", "address", "description", "UserId", "id", "pk"]) | st.text(max_size=8)
plausible_objects = st.dictionaries(field_names, json_values | st.text(max_size=300), max_size=6)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.text(max_size=300),
    json_values.map(json.dumps),
    plausible_objects.map(json.dumps),
    plausible_objects.map(lambda o: json.dumps(o, ensure_ascii=False)),
    st.sampled_from(['{"name": "\\ud800"}', '{"name": "ok", "email": "\\udfff@x.io"}', '{"name": 1e999}',
                     '{"name": NaN}', "[" * 5000, '{"name": "a"' + ', "name": "b"' * 50 + "}"]),
)
segments = st.text(max_size=12)
templates = st.sampled_from(["/", "/health", "/items", "/users", "/users/{id}", "/users/{id}/x", "/{seg}", "/items/{seg}"])
paths = st.builds(
    lambda tpl, seg, uid: tpl.replace("{seg}", quote(seg, safe="")).replace("{id}", uid),
    templates,
    segments,
    st.one_of(st.uuids().map(str), segments.map(lambda s: quote(s, safe="") or "x")),
)
query_keys = st.sampled_from(["limit", "nextToken", "x"]) | st.text(max_size=6)
query_values = st.one_of(st.integers(-5, 200).map(str), st.text(max_size=60),
                         st.text(string.ascii_letters + string.digits + "-_.=", max_size=120))
queries = st.lists(st.tuples(query_keys, query_values), max_size=3).map(lambda kv: urlencode(kv))
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"])
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])


@SETTINGS
@given(method=methods, path=paths, query=queries, body=bodies, ctype=content_types)
def test_arbitrary_requests_never_5xx(local, method, path, query, body, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    check(local, method, path + (f"?{query}" if query else ""), body, headers)


@SETTINGS
@given(body=plausible_objects, method=st.sampled_from(["POST", "PUT"]))
def test_arbitrary_user_bodies_never_5xx(local, body, method):
    target = "/users" if method == "POST" else f"/users/{uuid.uuid4()}"
    status, _ = check(local, method, target, json.dumps(body))
    assert status in (201, 400, 404)


names = st.text(min_size=1, max_size=200)  # JSON Schema lengths: nothing is trimmed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, description=st.text(max_size=2000))
def test_valid_items_round_trip(local, name, description):
    status, data = check(local, "POST", "/items", json.dumps({"name": name, "description": description}))
    assert status == 201
    item = json.loads(data)
    assert item["name"] == name and item["description"] == description


@SETTINGS
@given(token=st.text(max_size=200) | st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=300))
def test_arbitrary_next_tokens_are_4xx_not_5xx(local, token):
    for target in ("/users", "/items"):
        status, _ = check(local, "GET", f"{target}?{urlencode({'nextToken': token})}")
        assert status in (200, 400)
