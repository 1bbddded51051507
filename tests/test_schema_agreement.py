"""The handlers accept exactly the request bodies API Gateway's validator accepts.

For each operation with a body, the same raw body goes to (a) what `deployctl local`
runs as API Gateway's request validator (``deployctl.local.gateway``: draft 4,
from api/openapi.json) and (b) the handler's own parsing and validation
(``shared.http.Request.json_object`` + ``shared.validation.check_object``).
Property: both accept or both reject. Bodies come from the schemas themselves
(valid ones, drawn from each property's length bounds and pattern), from
near-misses around every limit, and from odd raw bodies.
"""

from __future__ import annotations

import base64
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from deployctl.local import gateway

sys.path.insert(0, str(ROOT / "lambda_src"))

from items import create_item  # noqa: E402
from shared.http import ApiError, Request  # noqa: E402
from shared.validation import check_object  # noqa: E402
from users import handler as users  # noqa: E402

SPEC = json.loads((ROOT / "api" / "openapi.json").read_text())
OPS = gateway.compile_operations(SPEC)
CASES = {  # operation -> (schema name, handler field spec, at least one field required)
    ("/items", "POST"): ("NewItem", create_item.NEW_ITEM, False),
    ("/users", "POST"): ("NewUser", users.FIELDS, False),
    ("/users/{userId}", "PUT"): ("UserUpdate", users.UPDATABLE, True),
}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def gateway_accepts(op, raw: bytes) -> bool:
    try:
        gateway.check_body(op, "application/json", raw)
    except gateway.GatewayError:
        return False
    return True


def handler_accepts(spec, require_one: bool, raw: bytes) -> bool:
    try:  # the event as API Gateway (and deployctl local) builds it: non-UTF-8 bodies in base64
        event = {"httpMethod": "POST", "body": raw.decode("utf-8"), "isBase64Encoded": False}
    except UnicodeDecodeError:
        event = {"httpMethod": "POST", "body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    try:
        body = Request(event).json_object()
        check_object(body, spec, require_one=require_one)
    except (ApiError, UnicodeEncodeError):
        return False
    return True


def agree(key, raw: bytes) -> tuple[bool, bool]:
    _schema, spec, require_one = CASES[key]
    return gateway_accepts(OPS[key], raw), handler_accepts(spec, require_one, raw)


def from_schema(name: str) -> st.SearchStrategy[dict]:
    """Bodies valid for one of our (flat, string-only) object schemas."""
    sch = SPEC["components"]["schemas"][name]
    required = set(sch.get("required", []))

    def prop(p: dict) -> st.SearchStrategy[str]:
        lo, hi = p.get("minLength", 0), p.get("maxLength", 300)
        if "pattern" in p:
            return st.from_regex(p["pattern"]).filter(lambda v: lo <= len(v) <= hi)
        return st.text(min_size=lo, max_size=min(hi, 300)) | st.just("z" * hi)

    fields = {k: prop(p) for k, p in sch["properties"].items()}
    body = st.fixed_dictionaries({k: v for k, v in fields.items() if k in required},
                                 optional={k: v for k, v in fields.items() if k not in required})
    return body.filter(lambda b: len(b) >= sch.get("minProperties", 0))


tricky_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\u001e", " x", "x ", "\t", "\n", "a@b.co", "a@b.co\n", " a@b.co", "a b@c.de",
                     "+1 555 0100", "+", "12", "1", "+44 (20) 7946-0958", "\u2003", "é@b.co", "x@b.c-o",
                     "\ud83d\ude00"]),
    st.integers(min_value=0, max_value=2).flatmap(
        lambda extra: st.sampled_from([200, 254, 32, 500, 2000, 64]).map(lambda n: "x" * (n - 1 + extra))),
    st.builds(lambda n: "y" * n + "@example.com", st.integers(60, 70)),
    st.none() | st.integers() | st.booleans() | st.lists(st.text(max_size=3), max_size=2),
)


def near_miss(spec) -> st.SearchStrategy[dict]:
    names = st.sampled_from([*spec, "UserId", "id", "extra"])
    return st.dictionaries(names, tricky_text, max_size=5)


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[1]} {k[0]}")
def test_valid_bodies_from_the_schema_are_accepted_by_the_handler(key):
    @SETTINGS
    @given(body=from_schema(CASES[key][0]), ascii_only=st.booleans())
    def run(body, ascii_only):
        raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        assert agree(key, raw) == (True, True), body

    run()


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[1]} {k[0]}")
def test_near_misses_are_judged_alike(key):
    spec = CASES[key][1]

    @SETTINGS
    @given(body=near_miss(spec), ascii_only=st.booleans())
    def run(body, ascii_only):
        raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        gw, handler = agree(key, raw)
        assert gw == handler, (body, gw, handler)

    run()


@pytest.mark.parametrize("raw", [
    b"", b"null", b"[]", b'"x"', b"{", b'{"name": NaN}', b'{"name": 1e999}', b'{"name": "\\ud800"}',
    b'{"name": "\\udfff", "email": "a@b.co"}', b"\xff\xfe", b'{"name": "a", "name": "b"}',
])
def test_odd_bodies_are_judged_alike(raw):
    for key in CASES:
        gw, handler = agree(key, raw)
        assert gw == handler, (key, raw, gw, handler)


def test_the_cases_from_issue_11():
    key = ("/items", "POST")
    assert agree(key, json.dumps({"name": " " + "x" * 200}).encode()) == (False, False)
    assert agree(key, json.dumps({"name": "\u001e"}).encode()) == (True, True)
    assert agree(("/users", "POST"), json.dumps({"name": "a", "email": "a@b.co", "phone": ""}).encode()) == (False, False)
