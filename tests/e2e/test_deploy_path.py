"""The README's deploy path, end to end, with the real CLI, Terraform and AWS provider against moto.

One environment (dev, in a copy of the project) goes through the whole life cycle, in
order: bootstrap, plan --foundation, apply, secret ensure, publish-lambda, plan, apply, outputs, a second
plan that must change nothing, publish-lambda --deploy after a code change, promote
--weight 10, promote, rollback, destroy. The tests share that environment and run in file
order; each step asserts what it must leave behind, from the CLI's JSON envelope, the
plan JSON and what boto3 reads back from the emulator, never from human text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployctl.config import load_env
from security.iam_eval import (
    Stack,
    apply_role_findings,
    boundary_findings,
    cloudsplaining_findings,
    document,
    plan_role_findings,
    role_findings,
)

from . import api_checks, rollout_checks
from .conftest import CI_REPOSITORY, MOTO_ACCOUNT, REGION
from .drift_checks import check_drift_finds_memory_and_pitr_and_nothing_else

pytestmark = pytest.mark.e2e

STATE: dict = {}


def _cfg(deployctl):
    return load_env("dev", deployctl.root)


def _plan_json(deployctl) -> dict:
    return json.loads((deployctl.root / ".deployctl/dev/plan/plan.json").read_text(encoding="utf-8"))


def _changes(plan: dict) -> list[tuple[str, list[str]]]:
    return [(rc["address"], rc["change"]["actions"]) for rc in plan.get("resource_changes") or []
            if rc["change"]["actions"] not in (["no-op"], ["read"])]


def _plan_gate(deployctl) -> dict:
    return json.loads((deployctl.root / ".deployctl/dev/plan/policy.json").read_text(encoding="utf-8"))["plan"]


def test_bootstrap_creates_the_state_bucket(deployctl):
    res = deployctl("bootstrap", "--env", "dev")
    bucket = res.result["bucket"]
    assert res.doc["ok"] and res.doc["command"] == "bootstrap"
    s3 = deployctl.client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    STATE["state_bucket"] = bucket


def test_foundation_plan_and_apply(deployctl):
    res = deployctl("plan", "--env", "dev", "--foundation")
    assert res.result["foundation"] is True and res.result["gates"]["plan"]["passed"]
    created = {c["address"] for c in res.result["summary"]["changes"] if c["action"] == "create"}
    assert {"module.kms.aws_kms_key.this", "module.artifact_bucket.aws_s3_bucket.this"} <= created
    assert "module.iam_boundary.aws_iam_policy.this" in created
    assert all(a.startswith(("module.kms.", "module.iam_boundary.", "module.artifact_bucket.", "module.ci_identity"))
               for a in created)
    # reached through a host name (localhost): path-style S3 in the backend, the provider and boto3
    backend = (deployctl.root / "terraform/envs/dev/backend.hcl").read_text(encoding="utf-8")
    assert "use_path_style = true" in backend
    tfvars = json.loads((deployctl.root / "terraform/envs/dev/deployctl.auto.tfvars.json").read_text(encoding="utf-8"))
    assert tfvars["aws"]["s3_use_path_style"] is True and "localhost" in deployctl.env["AWS_ENDPOINT_URL"]
    res = deployctl("apply", "--env", "dev")
    assert res.result["applied"] is True
    outputs = res.result["outputs"]
    STATE["kms_key_arn"] = outputs["kms_key_arn"]["value"]
    STATE["artifact_bucket"] = outputs["artifact_bucket"]["value"]


def test_secret_ensure_generates_each_secure_parameter_once(deployctl):
    res = deployctl("secret", "ensure", "--env", "dev")
    cfg = _cfg(deployctl)
    secure = sorted(n for n, p in cfg.data["parameters"].items() if p.get("secure"))
    assert sorted(res.result["created"]) == secure and secure
    again = deployctl("secret", "ensure", "--env", "dev")
    assert sorted(again.result["kept"]) == secure and again.result["created"] == []


def test_publish_uploads_every_function(deployctl):
    res = deployctl("publish-lambda", "--env", "dev")
    cfg = _cfg(deployctl)
    assert sorted(res.result["functions"]) == sorted(cfg.functions)
    manifest = json.loads((deployctl.root / "terraform/envs/dev/artifacts.json").read_text(encoding="utf-8"))
    assert sorted(manifest["functions"]) == sorted(cfg.functions)
    s3 = deployctl.client("s3")
    for name, entry in manifest["functions"].items():
        head = s3.head_object(Bucket=entry["bucket"], Key=entry["key"], VersionId=entry["version_id"])
        assert head["ServerSideEncryption"] == "aws:kms" and head["ContentLength"] == entry["size"], name


def test_full_plan_passes_both_gates_with_no_foreign_skips(deployctl):
    res = deployctl("plan", "--env", "dev")
    STATE["full_plan_creates"] = res.result["summary"]["counts"]["create"]
    gates = res.result["gates"]
    assert gates["source"]["passed"] and gates["plan"]["passed"]
    plan_gate = _plan_gate(deployctl)
    assert plan_gate["counts"]["failed"] == 0
    # every skip the plan gate honoured comes from our own Terraform, never from a test fixture
    for finding in plan_gate["findings"]:
        assert finding["file"].startswith("terraform/") and finding["file"].endswith(".tf"), finding


def test_full_apply_and_outputs(deployctl):
    res = deployctl("apply", "--env", "dev")
    assert res.result["applied"] is True
    counts = res.result["summary"]
    assert counts["create"] == STATE["full_plan_creates"] and counts["delete"] == 0
    out = deployctl("outputs", "--env", "dev").result
    assert out["health_url"].endswith("/dev/health")
    assert set(out["function_names"]) == set(_cfg(deployctl).functions)
    STATE["outputs"] = out


def test_aws_holds_what_the_modules_declare(deployctl):
    cfg = _cfg(deployctl)
    out = STATE["outputs"]
    key_arn = out["kms_key_arn"]

    kms = deployctl.client("kms")
    key_id = kms.describe_key(KeyId=f"alias/{cfg.app}-{cfg.name}")["KeyMetadata"]["KeyId"]
    assert key_arn.endswith(key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True

    ddb = deployctl.client("dynamodb")
    for table_key, spec in cfg.data["tables"].items():
        table = ddb.describe_table(TableName=out["table_names"][table_key])["Table"]
        assert table["SSEDescription"]["SSEType"] == "KMS" and table["SSEDescription"]["KMSMasterKeyArn"] == key_arn
        pitr = ddb.describe_continuous_backups(TableName=table["TableName"])["ContinuousBackupsDescription"]
        assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        assert sorted(g["IndexName"] for g in table.get("GlobalSecondaryIndexes", [])) == sorted(spec.get("gsis", {}))
        assert bool(table.get("StreamSpecification", {}).get("StreamEnabled")) == bool(spec.get("stream")), table_key

    lam = deployctl.client("lambda")
    assert len(cfg.functions) == 4
    for name, spec in cfg.functions.items():
        physical = out["function_names"][name]
        aliases = {a["Name"]: a for a in lam.list_aliases(FunctionName=physical)["Aliases"]}
        assert set(aliases) >= {"live", "staging"}, name
        conf = lam.get_function(FunctionName=physical)
        reserved = conf.get("Concurrency", {}).get("ReservedConcurrentExecutions")
        assert reserved == (spec.get("reserved_concurrency") or None), name
        assert conf["Configuration"]["TracingConfig"]["Mode"] == "Active", name
        assert conf["Configuration"]["KMSKeyArn"] == key_arn, name
    users = lam.get_function(FunctionName=out["function_names"]["users"])
    assert users["Concurrency"]["ReservedConcurrentExecutions"] == 5

    # the shared layer: one version from the published zip, attached to every function that lists it
    manifest = json.loads((deployctl.root / "terraform/envs/dev/artifacts.json").read_text(encoding="utf-8"))
    layers = cfg.data.get("layers", {})
    assert layers and set(manifest.get("layers", {})) == set(layers)
    layer_arns = {}
    for name in layers:
        versions = lam.list_layer_versions(LayerName=f"{cfg.app}-{cfg.name}-{name}")["LayerVersions"]
        assert len(versions) == 1, name
        layer_arns[name] = versions[0]["LayerVersionArn"]
    for name, spec in cfg.functions.items():
        attached = {layer["Arn"] for layer in
                    lam.get_function(FunctionName=out["function_names"][name])["Configuration"].get("Layers", [])}
        assert attached == {layer_arns[n] for n in spec.get("layers", [])}, name

    apigw = deployctl.client("apigateway")
    openapi = json.loads((deployctl.root / "api/openapi.json").read_text(encoding="utf-8"))
    resources = {r["path"]: r for r in apigw.get_resources(restApiId=out["api_id"], embed=["methods"], limit=500)["items"]}
    checked = 0
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            function = op.get("x-deployctl-function")
            if not function:
                continue
            integration = apigw.get_integration(restApiId=out["api_id"], resourceId=resources[path]["id"],
                                                httpMethod=method.upper())
            # AWS reports the type in upper case; moto echoes the OpenAPI document's spelling
            assert integration["type"].upper() == "AWS_PROXY", (path, method)
            assert out["live_alias_arns"][function] in integration["uri"], (path, method)
            checked += 1
    assert checked >= 5

    ssm = deployctl.client("ssm")
    prefix = out["parameter_prefix"]
    names = {p["Name"] for p in ssm.get_parameters_by_path(Path=prefix, Recursive=True)["Parameters"]}
    assert names == {f"{prefix}{n}" for n in cfg.data["parameters"]}

    plan_alarms = {r["values"]["alarm_name"] for r in _resources(deployctl) if r["type"] == "aws_cloudwatch_metric_alarm"}
    cw = deployctl.client("cloudwatch")
    alarms = {a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix=f"{cfg.app}-{cfg.name}-",
                                                         MaxRecords=100)["MetricAlarms"]}
    assert alarms == plan_alarms and len(alarms) >= 10
    _check_ci_roles(deployctl, cfg, out)
    _check_deployed_iam(deployctl, cfg, out)
    dashboard = json.loads(cw.get_dashboard(DashboardName=f"{cfg.app}-{cfg.name}")["DashboardBody"])
    assert dashboard["widgets"]


def _check_ci_roles(deployctl, cfg, out) -> None:
    """The GitHub OIDC roles: trust scoped to one repository, audience sts, plan for PRs, apply for the env."""
    iam = deployctl.client("iam")
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    assert out["ci_oidc_provider_arn"] in providers and providers[0].endswith("token.actions.githubusercontent.com")
    expected = {"plan": f"repo:{CI_REPOSITORY}:pull_request", "apply": f"repo:{CI_REPOSITORY}:environment:{cfg.name}"}
    for kind, subject in expected.items():
        arn = out[f"ci_{kind}_role_arn"]
        role = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]
        doc = role["AssumeRolePolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        (statement,) = doc["Statement"]
        assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"] == out["ci_oidc_provider_arn"]
        cond = statement["Condition"]
        assert set(cond) == {"StringEquals"}, cond  # no wildcard subject
        assert cond["StringEquals"]["token.actions.githubusercontent.com:aud"] in ("sts.amazonaws.com", ["sts.amazonaws.com"])
        sub = cond["StringEquals"]["token.actions.githubusercontent.com:sub"]
        subs = sub if isinstance(sub, list) else [sub]
        assert subject in subs and all(x.startswith(f"repo:{CI_REPOSITORY}:") for x in subs), (kind, subs)
        assert not any(x.endswith(":pull_request") for x in subs) if kind == "apply" else True


def _inline(iam, role_name: str) -> list[dict]:
    names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    return [document(iam.get_role_policy(RoleName=role_name, PolicyName=n)["PolicyDocument"]) for n in names]


def _check_deployed_iam(deployctl, cfg, out) -> None:
    """Issue 15 (1-3) on what the emulator holds: the policies as deployed, read back over HTTP."""
    iam, kms = deployctl.client("iam"), deployctl.client("kms")
    prefix, path = f"{cfg.app}-{cfg.name}", f"/{cfg.app}/{cfg.name}/"
    (boundary_policy,) = [p for p in iam.list_policies(Scope="Local", PathPrefix=path)["Policies"]
                          if p["PolicyName"] == f"{prefix}-boundary"]
    boundary_arn = boundary_policy["Arn"]
    boundary = document(iam.get_policy_version(PolicyArn=boundary_arn, VersionId=boundary_policy["DefaultVersionId"])
                        ["PolicyVersion"]["Document"])
    assert boundary_findings(boundary) == []
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=out["kms_key_arn"])["Tags"]}
    assert tags.get("DeployctlStack") == prefix, tags
    secure = [f"{out['parameter_prefix']}{n}" for n, p in cfg.data["parameters"].items() if p.get("secure")]
    stack = Stack(MOTO_ACCOUNT, REGION, cfg.app, cfg.name, boundary_arn, ("DeployctlStack", prefix), secure)

    roles = [r for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]]
    ci = {out["ci_plan_role_arn"], out["ci_apply_role_arn"]}
    stack_roles = [r for r in roles if r["RoleName"].startswith(f"{prefix}-") and r["Arn"] not in ci]
    assert len(stack_roles) == len(cfg.functions) + 1, [r["Arn"] for r in stack_roles]  # + API Gateway logs role
    findings = []
    for listed in stack_roles:
        role = iam.get_role(RoleName=listed["RoleName"])["Role"]
        carried = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if carried != boundary_arn or role["Path"] != path:
            findings.append(f"{role['Arn']}: boundary {carried!r}, path {role['Path']!r}")
        if iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]:
            findings.append(f"{role['Arn']} has attached policies")
        findings += role_findings(role["RoleName"], _inline(iam, role["RoleName"]),
                                  boundary if carried == boundary_arn else None, stack)
    apply_name, plan_name = (out[f"ci_{k}_role_arn"].rsplit("/", 1)[1] for k in ("apply", "plan"))
    for name in (apply_name, plan_name):
        assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    findings += apply_role_findings(_inline(iam, apply_name), stack)
    findings += plan_role_findings(_inline(iam, plan_name), stack, out["kms_key_arn"])
    assert findings == []

    # the same documents through a maintained analyzer (cloudsplaining, offline): no privilege
    # escalation, resource exposure or credentials exposure without resource constraints
    details = iam.get_account_authorization_details(Filter=["Role", "LocalManagedPolicy"])
    flagged = cloudsplaining_findings(details)
    STATE["cloudsplaining"] = flagged
    serious = {name: {k: v for k, v in risks.items() if k in ("PrivilegeEscalation", "ResourceExposure",
                                                              "CredentialsExposure")}
               for name, risks in flagged.items()}
    assert {k: v for k, v in serious.items() if v} == {}, flagged


def _resources(deployctl) -> list[dict]:
    """Every managed resource in the state (terraform show -json of the current state)."""
    proc = deployctl.terraform_cmd("show", "-json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)

    def walk(module):
        yield from module.get("resources", [])
        for child in module.get("child_modules", []):
            yield from walk(child)

    return [r for r in walk(doc.get("values", {}).get("root_module", {})) if r["mode"] == "managed"]


def test_plan_after_apply_changes_nothing(deployctl):
    res = deployctl("plan", "--env", "dev")
    plan = _plan_json(deployctl)
    assert _changes(plan) == []
    assert not res.result["summary"]["has_changes"]
    # planned again: the same plan of the real stack (terraform lists relevant_attributes in another
    # order each time), so the plan gate's verdict comes from the cache, with the same findings
    again = deployctl("plan", "--env", "dev")
    policy = json.loads((deployctl.root / ".deployctl/dev/plan/policy.json").read_text(encoding="utf-8"))
    assert policy["plan"]["cached"] is True, again.stderr
    assert again.result["summary"] == res.result["summary"] and again.result["gates"] == res.result["gates"]


def test_drift_finds_memory_and_pitr_changed_by_hand_and_nothing_else(deployctl):
    check_drift_finds_memory_and_pitr_and_nothing_else(deployctl, _cfg(deployctl).prefix)


def _live(deployctl, function: str) -> dict:
    return deployctl.client("lambda").get_alias(FunctionName=STATE["outputs"]["function_names"][function], Name="live")


def _staging(deployctl, function: str) -> dict:
    return deployctl.client("lambda").get_alias(FunctionName=STATE["outputs"]["function_names"][function],
                                                Name="staging")


def test_publish_deploy_after_a_code_change_moves_staging_only(deployctl):
    before_live = _live(deployctl, "users")["FunctionVersion"]
    before_staging = _staging(deployctl, "users")["FunctionVersion"]
    handler = deployctl.root / "lambda_src/users/handler.py"
    handler.write_text(handler.read_text(encoding="utf-8") + "\n# e2e: a code change\n", encoding="utf-8")
    res = deployctl("publish-lambda", "--env", "dev", "--function", "users", "--deploy")
    assert res.doc["ok"]
    after = _staging(deployctl, "users")["FunctionVersion"]
    assert after != before_staging
    assert _live(deployctl, "users")["FunctionVersion"] == before_live
    STATE["old_live"], STATE["new_version"] = before_live, after


def test_promote_canary_then_full_then_rollback(deployctl):
    deployctl("promote", "--env", "dev", "--function", "users", "--weight", "10", "--yes")
    live = _live(deployctl, "users")
    weights = live.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
    assert live["FunctionVersion"] == STATE["old_live"] and weights == {STATE["new_version"]: pytest.approx(0.1)}

    deployctl("promote", "--env", "dev", "--function", "users", "--yes")
    live = _live(deployctl, "users")
    assert live["FunctionVersion"] == STATE["new_version"]
    assert not live.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    api_checks.check_promoted(deployctl, STATE["outputs"], "users", STATE["new_version"])

    deployctl("rollback", "--env", "dev", "--function", "users", "--yes")
    assert _live(deployctl, "users")["FunctionVersion"] == STATE["old_live"]
    # a watched canary with a short custom strategy from config (issue 17)
    rollout_checks.check_canary_rollout(deployctl, "users", STATE["old_live"], STATE["new_version"])


def test_destroy_leaves_an_empty_state_and_keeps_the_state_bucket(deployctl):
    res = deployctl("destroy", "--env", "dev", "--yes")
    assert res.result["destroyed"] is True
    assert res.result["state_bucket"]["kept"] is True and res.result["state_bucket"]["bucket"] == STATE["state_bucket"]
    proc = deployctl.terraform_cmd("state", "list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    assert res.result["secrets"]["deleted"] == ["pagination-key"]  # made by deployctl, gone with the stack
    s3 = deployctl.client("s3")
    s3.head_bucket(Bucket=STATE["state_bucket"])  # still there
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert STATE["artifact_bucket"] not in names
    # the destroy bundle is consumed: applying it again is refused
    again = deployctl("apply", "--env", "dev", expect=4)
    assert again.doc["ok"] is False and "already applied" in again.doc["error"]["message"]


def test_compat_layer_is_what_the_moto_server_ran(deployctl):
    """The compat fixes are applied to the server the suite used (and only there)."""
    text = deployctl.moto.log_text()
    assert "moto_compat: fixes applied:" in text
    assert "Traceback" not in text, text[-3000:]


def test_the_project_copy_is_not_the_checkout(deployctl):
    assert Path(deployctl.root).resolve() != Path(__file__).resolve().parents[2]
