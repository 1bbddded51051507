"""The pure-locals Terraform files, evaluated by the real terraform binary.

`rest_api/openapi.tf` (OpenAPI -> API Gateway body), `monitoring/dashboard.tf`
and the env roots' `naming.tf` use no provider, so they are copied verbatim
into a throwaway root that declares their inputs as plain variables, applied
(locals only, no resources) and their outputs compared with what the rest of
the project expects (api/openapi.json, deployctl.naming).

The test-only binary is Terraform 1.0.3, so the harness declares untyped
variables (optional() needs >= 1.3) and passes complete values.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "terraform"
TERRAFORM = ROOT / ".venv" / "bin" / "terraform"
OPENAPI = json.loads((ROOT / "api" / "openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head"}

pytestmark = pytest.mark.skipif(
    not TERRAFORM.exists(), reason="test-only terraform binary missing (scripts/setup --test)"
)


def evaluate(workdir: Path, source: Path, variables: dict, outputs: dict[str, str], extra: str = "") -> dict:
    """Copy ``source`` into a fresh root with ``variables`` and ``outputs``; apply; return outputs."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(source, workdir / source.name)
    lines = [f'variable "{name}" {{}}' for name in variables]
    lines += [f'output "{name}" {{\n  value = {expr}\n}}' for name, expr in outputs.items()]
    (workdir / "harness.tf").write_text("\n".join(lines) + "\n" + extra)
    (workdir / "values.auto.tfvars.json").write_text(json.dumps(variables))
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_ARGS": "-no-color"}
    env.pop("TF_CLI_CONFIG_FILE", None)
    for args in (["init", "-input=false", "-backend=false"], ["apply", "-input=false", "-auto-approve"]):
        done = subprocess.run(
            [str(TERRAFORM), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(TERRAFORM), "output", "-json"], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return {name: value["value"] for name, value in json.loads(done.stdout).items()}


def invoke_arn(fn: str) -> str:
    function_arn = f"arn:aws:lambda:eu-west-1:111111111111:function:demo-dev-{fn}:live"
    return f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def api_inputs(functions: list[str], origins: list[str]) -> dict:
    return {
        "openapi_body": json.dumps(OPENAPI),
        "functions": {
            fn: {"function_name": f"demo-dev-{fn}", "invoke_arn": invoke_arn(fn)} for fn in functions
        },
        "cors_allowed_origins": origins,
        "name": "demo-dev",
        "integration_timeout_ms": 29000,
    }


API_OUTPUTS = {
    "body": "local.body",
    "sha": "local.body_sha256",
    "missing": "local.missing_functions",
    "operations": "local.operations",
}
SPEC_FUNCTIONS = sorted(
    {
        op["x-deployctl-function"]
        for item in OPENAPI["paths"].values()
        for m, op in item.items()
        if m in METHODS
    }
)


@pytest.fixture(scope="module")
def rendered_api(tmp_path_factory):
    origins = ["http://localhost:3000", "http://127.0.0.1:3000"]
    out = evaluate(
        tmp_path_factory.mktemp("api"),
        TF / "modules" / "rest_api" / "openapi.tf",
        api_inputs(SPEC_FUNCTIONS, origins),
        API_OUTPUTS,
    )
    return out, json.loads(out["body"]), origins


def test_every_operation_is_a_proxy_integration_to_its_functions_live_alias(rendered_api):
    out, body, _ = rendered_api
    assert out["missing"] == []
    count = 0
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            count += 1
            rendered = body["paths"][path][method]
            integration = rendered["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["httpMethod"] == "POST"
            assert integration["uri"] == invoke_arn(op["x-deployctl-function"])
            assert integration["uri"].endswith(":live/invocations")
            assert "x-deployctl-function" not in rendered
            # everything else of the operation passes through untouched
            source = {k: v for k, v in op.items() if k != "x-deployctl-function"}
            assert {k: v for k, v in rendered.items() if not k.startswith("x-amazon-apigateway")} == source
            assert out["operations"][f"{method.upper()} {path}"] == op["x-deployctl-function"]
    assert count == len(out["operations"]) == 9
    assert body["components"] == OPENAPI["components"]
    assert body["info"]["title"] == "demo-dev"


def test_request_validators_cover_bodies_and_parameters(rendered_api):
    _, body, _ = rendered_api
    validators = body["x-amazon-apigateway-request-validators"]
    assert validators["body-and-params"] == {"validateRequestBody": True, "validateRequestParameters": True}
    assert validators["params-only"] == {"validateRequestBody": False, "validateRequestParameters": True}
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                expected = "body-and-params" if "requestBody" in op else "params-only"
                assert body["paths"][path][method]["x-amazon-apigateway-request-validator"] == expected
    assert body["paths"]["/items"]["post"]["x-amazon-apigateway-request-validator"] == "body-and-params"


def test_cors_preflight_per_path_lists_its_methods_and_allowed_origins(rendered_api):
    _, body, origins = rendered_api
    for path, item in OPENAPI["paths"].items():
        options = body["paths"][path]["options"]
        integration = options["x-amazon-apigateway-integration"]
        assert integration["type"] == "mock"
        params = integration["responses"]["default"]["responseParameters"]
        methods = sorted(m.upper() for m in item if m in METHODS) + ["OPTIONS"]
        assert params["method.response.header.Access-Control-Allow-Methods"] == "'" + ",".join(methods) + "'"
        assert params["method.response.header.Access-Control-Allow-Origin"] == f"'{origins[0]}'"
        template = integration["responses"]["default"]["responseTemplates"]["application/json"]
        assert f"#set($allowed = {json.dumps(origins, separators=(',', ':'))})" in template
        assert "*" not in params["method.response.header.Access-Control-Allow-Origin"]
        for header in (
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
        ):
            assert header in options["responses"]["200"]["headers"]
    ids = [item["options"]["operationId"] for item in body["paths"].values()]
    assert len(ids) == len(set(ids))


def test_redeployment_hash_is_the_sha256_of_the_rendered_body(rendered_api, tmp_path):
    out, _, _ = rendered_api
    assert out["sha"] == hashlib.sha256(out["body"].encode()).hexdigest()
    # a different origin list is a different body, hence a redeployment
    other = evaluate(
        tmp_path / "other",
        TF / "modules" / "rest_api" / "openapi.tf",
        api_inputs(SPEC_FUNCTIONS, ["https://app.example.com"]),
        API_OUTPUTS,
    )
    assert other["sha"] != out["sha"]


def test_no_origins_means_no_preflight_and_unknown_functions_are_reported(tmp_path):
    out = evaluate(
        tmp_path / "api",
        TF / "modules" / "rest_api" / "openapi.tf",
        api_inputs([f for f in SPEC_FUNCTIONS if f != "users"], []),
        API_OUTPUTS,
    )
    body = json.loads(out["body"])
    assert all("options" not in item for item in body["paths"].values())
    assert out["missing"] == sorted(
        f"{m.upper()} {p} -> users"
        for p, item in OPENAPI["paths"].items()
        for m, op in item.items()
        if op.get("x-deployctl-function") == "users"
    )


def test_dashboard_covers_every_function_table_and_gsi(tmp_path):
    functions = {
        "a": {"function_name": "demo-a", "dlq_name": "demo-a-dlq"},
        "b-c": {"function_name": "demo-b-c", "dlq_name": "demo-b-c-dlq"},
    }
    tables = {
        "items": {"table_name": "demo-items", "index_names": ["GSI1", "GSI2"]},
        "users": {"table_name": "demo-users", "index_names": []},
    }
    inputs = {
        "functions": functions,
        "tables": tables,
        "api_name": "demo",
        "api_stage": "dev",
        "period_s": 300,
        "business_metrics": {"namespace": "demo-dev", "dimensions": {"service": "demo"},
                             "metrics": ["ItemsCreated", "UsersCreated", "UsersDeleted"]},
    }
    out = evaluate(
        tmp_path / "dash",
        TF / "modules" / "monitoring" / "dashboard.tf",
        inputs,
        {"body": "jsonencode(local.dashboard)"},
        'locals {\n  region = "eu-west-1"\n}\n',
    )
    widgets = json.loads(out["body"])["widgets"]
    by_title = {w["properties"]["title"]: w["properties"] for w in widgets}
    for metric in ("Invocations", "Errors", "Duration", "Throttles", "ConcurrentExecutions"):
        (props,) = [p for t, p in by_title.items() if t.startswith(f"Lambda {metric} ")]
        assert sorted(m[3] for m in props["metrics"]) == ["demo-a", "demo-b-c"]
    expected = {("demo-items", ""), ("demo-items", "GSI1"), ("demo-items", "GSI2"), ("demo-users", "")}
    for metric in (
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    ):
        (props,) = [p for p in by_title.values() if p["metrics"] and p["metrics"][0][1] == metric]
        seen = {(m[3], m[5] if len(m) == 7 else "") for m in props["metrics"]}
        assert seen == expected
    latency = by_title["API latency (ms)"]["metrics"]
    assert [m[-1]["stat"] for m in latency] == ["p50", "p90", "p99"]
    assert any(p.get("view") == "singleValue" for p in by_title.values())
    assert {"API requests", "API 4XX", "API 5XX"} <= set(by_title)
    # the business metrics, under exactly the namespace and dimensions the handlers emit
    business = by_title["Business metrics (demo-dev)"]["metrics"]
    assert [m[:4] for m in business] == [["demo-dev", name, "service", "demo"]
                                         for name in ("ItemsCreated", "UsersCreated", "UsersDeleted")]
    assert all(m[4]["stat"] == "Sum" for m in business)


def test_dashboard_without_functions_or_tables_has_no_empty_metric_widgets(tmp_path):
    """PutDashboard rejects a metric widget whose metrics array is empty."""
    inputs = {"functions": {}, "tables": {}, "api_name": "demo", "api_stage": "dev", "period_s": 60,
              "business_metrics": {"namespace": "", "dimensions": {}, "metrics": []}}
    out = evaluate(
        tmp_path / "dash",
        TF / "modules" / "monitoring" / "dashboard.tf",
        inputs,
        {"body": "jsonencode(local.dashboard)"},
        'locals {\n  region = "eu-west-1"\n}\n',
    )
    widgets = json.loads(out["body"])["widgets"]
    assert widgets, "the API widgets remain"
    assert all(w["properties"]["metrics"] for w in widgets)
    titles = [w["properties"]["title"] for w in widgets]
    assert not any(t.startswith(("Lambda ", "DynamoDB ", "Business ")) for t in titles)


def gsi(partition_key: str, sort_key: str = "", partition_key_type: str = "S", sort_key_type: str = "S") -> dict:
    return {
        "partition_key": partition_key,
        "partition_key_type": partition_key_type,
        "sort_key": sort_key,
        "sort_key_type": sort_key_type,
        "projection_type": "ALL",
    }


def table_keys(tmp_path: Path, gsis: dict, sort_key: str = "sk") -> dict:
    inputs = {
        "partition_key": "pk",
        "partition_key_type": "S",
        "sort_key": sort_key,
        "sort_key_type": "S",
        "global_secondary_indexes": gsis,
    }
    return evaluate(
        tmp_path,
        TF / "modules" / "dynamodb_table" / "keys.tf",
        inputs,
        {"attributes": "local.key_attributes", "conflicts": "local.conflicting_key_attributes"},
    )


def test_table_key_attributes_are_declared_once_when_keys_share_an_attribute(tmp_path):
    # Two GSIs sorting on createdAt and a GSI keyed on the table's own keys: with a
    # plain `{ for }` this was "Duplicate object key" at plan time.
    out = table_keys(
        tmp_path / "shared",
        {
            "byStatus": gsi("status", "createdAt", sort_key_type="N"),
            "byOwner": gsi("owner", "createdAt", sort_key_type="N"),
            "bySk": gsi("sk", "pk"),
        },
    )
    assert out["attributes"] == {"pk": "S", "sk": "S", "status": "S", "owner": "S", "createdAt": "N"}
    assert out["conflicts"] == []
    only_table = table_keys(tmp_path / "plain", {}, sort_key="")
    assert only_table["attributes"] == {"pk": "S"}


def test_table_key_attribute_with_two_types_is_reported(tmp_path):
    out = table_keys(tmp_path / "conflict", {"GSI1": gsi("sk", partition_key_type="N")})
    assert out["conflicts"] == ["sk"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_terraform_names_and_environment_equal_deployctl_naming(env, tmp_path):
    from deployctl import naming
    from deployctl.config import load_env
    from deployctl.infra import render

    cfg = load_env(env, ROOT)
    _, tfvars, _, _ = render.render_tfvars_text(cfg, {"functions": {}}, allow_missing_artifacts=True)
    # what the root variable's optional() defaults add (Terraform 1.0.3 has no optional())
    fn_defaults = {"tables_read": [], "tables_write": [], "reads_parameters": False, "environment": {}}
    functions = {name: {**fn_defaults, **fn} for name, fn in tfvars["functions"].items()}
    functions["users"]["environment"] = {"FEATURE_FLAG": "on"}  # the per-function map wins, as in naming
    cfg.data["functions"]["users"]["environment"] = {"FEATURE_FLAG": "on"}
    inputs = {k: tfvars[k] for k in ("app", "aws", "artifacts", "lambda", "api", "environment", "tables")}
    inputs["functions"] = functions
    out = evaluate(
        tmp_path / env,
        TF / "envs" / env / "naming.tf",
        inputs,
        {
            "env": "local.function_environment",
            "prefix": "local.prefix",
            "params": "local.parameter_prefix",
            "bucket": "local.artifact_bucket",
            "kms_alias": "local.kms_alias_name",
            "business": "local.business_metrics",
            "sids": "local.table_sid_suffix",
        },
    )
    assert out["prefix"] == cfg.prefix
    assert out["sids"] == {t: naming.table_sid_suffix(t) for t in cfg.tables}
    assert out["params"] == naming.parameter_prefix(cfg)
    assert out["bucket"] == cfg.artifact_bucket()
    assert "alias/" + out["kms_alias"] == naming.kms_alias(cfg)
    assert set(out["env"]) == set(cfg.functions)
    for name in cfg.functions:
        assert out["env"][name] == naming.function_environment(cfg, name), name
    assert out["env"]["users"]["PARAMETER_PREFIX"] == f"/{env}/{cfg.app}/"
    # one source of truth for the business metrics: what the functions emit is what the dashboard plots
    assert out["business"] == {"namespace": naming.metrics_namespace(cfg), "dimensions": {"service": cfg.app},
                               "metrics": list(naming.BUSINESS_METRICS)}
    for name in cfg.functions:
        assert out["env"][name]["POWERTOOLS_METRICS_NAMESPACE"] == out["business"]["namespace"]
        assert out["env"][name]["POWERTOOLS_SERVICE_NAME"] == out["business"]["dimensions"]["service"]
    assert "PARAMETER_PREFIX" not in out["env"]["get-items"]


def test_terraform_table_statement_ids_equal_deployctl_naming(tmp_path):
    """IAM statement ids made from table names: naming.tf and deployctl.naming normalise alike, also
    where the normalisation collides (which deployctl.limits refuses before Terraform sees it)."""
    from deployctl import naming
    from deployctl.config import load_env
    from deployctl.infra import render

    cfg = load_env("dev", ROOT)
    _, tfvars, _, _ = render.render_tfvars_text(cfg, {"functions": {}}, allow_missing_artifacts=True)
    inputs = {k: tfvars[k] for k in ("app", "aws", "artifacts", "lambda", "api", "environment")}
    inputs["functions"] = {}
    names = ["items", "user-events", "a-b", "a--b", "ab", "a-1b", "a1b", "x-y-z9", "q-"]
    inputs["tables"] = {name: {} for name in names}
    out = evaluate(tmp_path / "sids", TF / "envs" / "dev" / "naming.tf", inputs, {"sids": "local.table_sid_suffix"})
    assert out["sids"] == {name: naming.table_sid_suffix(name) for name in names}
    assert out["sids"]["a-b"] == out["sids"]["a--b"] == "AB"  # the collision limits.check refuses
