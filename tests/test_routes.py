"""One route set: the OpenAPI document, the handlers' routing tables and
`deployctl local` agree (the Terraform rest_api module reads the same document)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from deployctl.config import load_env
from deployctl.local.server import load_routes, match, path_table

sys.path.insert(0, str(ROOT / "lambda_src"))

OPENAPI = json.loads((ROOT / "api" / "openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def openapi_operations() -> set[tuple[str, str, str]]:
    return {
        (method.upper(), path, op["x-deployctl-function"])
        for path, item in OPENAPI["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_openapi_and_handler_routing_tables_agree(env):
    cfg = load_env(env, ROOT)
    from_handlers = set()
    for fn, spec in cfg.functions.items():
        module_name, _, attr = spec["handler"].rpartition(".")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attr)), spec["handler"]
        assert (ROOT / "lambda_src").resolve() in Path(module.__file__).resolve().parents
        for method, resource in module.ROUTES:
            from_handlers.add((method, resource, fn))
    assert from_handlers == openapi_operations()


def test_every_operation_is_well_formed():
    ids = []
    for method, path, _fn in openapi_operations():
        op = OPENAPI["paths"][path][method.lower()]
        assert op.get("operationId"), (method, path)
        ids.append(op["operationId"])
        assert not any(k.startswith("x-amazon") for k in op), "AWS integration blocks belong to the Terraform module"
        declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
        assert declared == set(path.replace("}", "{").split("{")[1::2]), (method, path)
    assert len(ids) == len(set(ids))


def test_local_server_serves_exactly_the_openapi_routes():
    cfg = load_env("dev", ROOT)
    routes = load_routes(cfg)
    assert {(r.method, r.path, r.function) for r in routes} == openapi_operations()
    table = path_table(routes)
    entry, params = match(table, "/users/0b5c1b9e-1111-4a4a-8a8a-123456789abc")
    assert entry.template == "/users/{userId}" and params == {"userId": "0b5c1b9e-1111-4a4a-8a8a-123456789abc"}
    assert match(table, "/users")[0].template == "/users"
    assert match(table, "/")[0].template == "/"
    assert match(table, "/users/a/b") is None and match(table, "/nope") is None


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_terraform_roots_give_the_api_module_this_document_and_every_function(env):
    """The rest_api module renders integrations from the body the root passes it
    (tests/test_terraform_logic.py checks that rendering against this document);
    here: each root passes exactly api/openapi.json and all of its functions."""
    import hcl2

    env_dir = ROOT / "terraform" / "envs" / env
    with (env_dir / "main.tf").open() as fh:
        main = hcl2.load(fh)
    locals_ = {k: v for block in main.get("locals", []) for k, v in block.items()}
    api = next(body for block in main["module"] for name, body in block.items() if name.strip('"') == "api")
    assert api["source"].strip('"').endswith("modules/rest_api")
    assert "local.openapi_body" in api["openapi_body"]
    doc_expr = locals_["openapi_body"]
    relative = doc_expr.split('"')[1].replace("${path.root}/", "")
    assert relative.endswith("api/openapi.json"), doc_expr
    assert (env_dir / relative).resolve() == (ROOT / "api" / "openapi.json").resolve()
    # the functions map is every deployed function (for_each over var.functions), and the
    # config declares every function the document names
    assert "module.functions" in api["functions"]
    cfg = load_env(env, ROOT)
    assert {fn for _m, _p, fn in openapi_operations()} <= set(cfg.functions)
