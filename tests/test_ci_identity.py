"""terraform/modules/ci_identity: the GitHub OIDC roles' trust and grants.

Static properties from the HCL (python-hcl2), the rendered trust policies from the real
terraform (`terraform test` with a mocked provider: no AWS needed), and the one-source rule:
docs/real-account.md lists exactly the grants of grants.tf.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "terraform" / "modules" / "ci_identity"
DOC = ROOT / "docs" / "real-account.md"
PLUGIN_MIRROR = Path(os.environ.get("DEPLOYCTL_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))

# Verbs that change something. apigateway's actions are HTTP methods.
WRITE = re.compile(
    r":(Put|Create|Delete|Update|Set|Tag|Untag|Add|Remove|Attach|Detach|Register|Deregister|Publish|Enable|"
    r"Disable|Schedule|Subscribe|Unsubscribe|Associate|Disassociate|Pass|Encrypt|GenerateDataKey|Invoke)"
    r"|^apigateway:(POST|PUT|PATCH|DELETE)$|\*"
)


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(value):
    if isinstance(value, dict):
        return {unquote(k): clean(v) for k, v in value.items() if k not in ("__start_line__", "__end_line__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return unquote(value)


@cache
def grants() -> dict:
    parsed = hcl2.loads((MODULE / "grants.tf").read_text())
    merged: dict = {}
    for block in parsed["locals"]:
        merged.update(clean(block))
    return merged


def actions(role: str) -> dict[str, list[str]]:
    return {sid: g["actions"] for sid, g in grants()[f"{role}_grants"].items()}


# ---- grants (HCL) ------------------------------------------------------------------------


def test_plan_role_writes_nothing_but_the_state_lock_file():
    for sid, grant in grants()["plan_grants"].items():
        writes = [a for a in grant["actions"] if WRITE.search(a)]
        if sid == "StateLock":
            assert set(writes) == {"s3:PutObject", "s3:DeleteObject"}
            assert grant["resources"] == ["${local.state_lock}"]
            assert grants()["state_lock"] == "${local.state_object}.tflock"
            continue
        assert writes == [], f"plan grant {sid} writes: {writes}"
    # the state object itself is read-only for plan
    assert actions("plan")["State"] == ["s3:GetObject"]


def test_plan_decrypts_only_lambda_environments_with_the_env_key():
    grant = grants()["plan_grants"]["KeyDecryptViaLambda"]
    assert grant["actions"] == ["kms:Decrypt"] and grant["resources"] == ["${var.kms_key_arn}"]
    assert grant["condition"]["StringEquals"]["kms:ViaService"] == ["lambda.${local.region}.amazonaws.com"]
    other = [sid for sid, acts in actions("plan").items() if "kms:Decrypt" in acts and sid != "KeyDecryptViaLambda"]
    assert other == []
    # and a Deny: no decrypt through SSM (any key, aws/ssm included) or directly
    # (plan_denies is a merge() expression in HCL: the rendered policy is evaluated in
    # tests/security/test_iam_attacks.py; here only that both denies are there)
    denies = str(grants()["plan_denies"])
    assert "NoDecryptButLambdaAndState" in denies and "NoSecureParameters" in denies


def test_plan_reads_are_a_subset_of_apply():
    apply_actions = {a for acts in actions("apply").values() for a in acts}
    plan_only = {a for acts in actions("plan").values() for a in acts} - apply_actions
    assert plan_only == set(), plan_only


def test_grants_have_no_wildcard_actions_and_name_scoped_resources():
    for role in ("plan", "apply"):
        for sid, grant in grants()[f"{role}_grants"].items():
            assert all("*" not in a for a in grant["actions"]), (role, sid)
            assert grant["actions"] == sorted(grant["actions"]), f"{role} {sid}: keep actions sorted"
            resources = grant["resources"] if isinstance(grant["resources"], list) else [grant["resources"]]
            for res in resources:
                if res == "*":
                    # only actions without resource-level permissions (or before the ARN exists)
                    assert sid in {"AutoScaling", "AutoScalingRead", "KeyCreate", "KeyList", "ParametersList", "RolloutMetrics"}, (role, sid)
    # roles the apply role may create are the env's own: its IAM path, not a name prefix
    assert grants()["roles"] == "${local.arn}:iam::${local.account}:role${var.role_path}*"
    passed = grants()["apply_grants"]["PassRoles"]["condition"]["StringEquals"]["iam:PassedToService"]
    assert sorted(passed) == ["apigateway.amazonaws.com", "lambda.amazonaws.com"]


def test_apply_role_changes_roles_only_with_the_boundary_and_keys_only_by_tag():
    apply = grants()["apply_grants"]
    assert apply["RolesWithTheBoundary"]["condition"] == "${local.has_boundary}"
    assert grants()["has_boundary"] == {"StringEquals": {"iam:PermissionsBoundary": "${local.boundary}"}}
    assert not any(a in {"iam:AttachRolePolicy", "iam:DeleteRolePermissionsBoundary", "kms:CreateKey"}
                   for g in apply.values() for a in g["actions"])
    for sid, g in apply.items():
        if sid != "RolesWithTheBoundary":
            assert not {"iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"} & set(g["actions"]), sid
    assert apply["Key"]["resources"] == ["${local.keys}"] and apply["Key"]["condition"] == "${local.env_key}"
    denies = grants()["apply_denies"]
    assert {"NoSelfChange", "NoRoleWithoutTheBoundary", "NoBoundaryRemoval", "NoBoundaryChange"} <= set(denies)


def test_apply_role_cannot_change_the_ci_roles():
    deny = grants()["apply_denies"]["NoSelfChange"]
    assert {"iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy"} <= set(deny["actions"])
    assert deny["resources"] == "${local.ci_roles}"
    assert sorted(grants()["ci_roles"]) == sorted(
        [
            "${local.arn}:iam::${local.account}:role/${var.name}-github-plan",
            "${local.arn}:iam::${local.account}:role/${var.name}-github-apply",
        ]
    )
    main = (MODULE / "main.tf").read_text()
    assert 'name                 = "${var.name}-github-plan"' in main
    assert 'name                 = "${var.name}-github-apply"' in main


def test_trust_is_exact_on_aud_and_sub():
    main = (MODULE / "main.tf").read_text()
    assert "StringLike" not in main, "no wildcard subject matching"
    assert '"${local.issuer}:aud" = "sts.amazonaws.com"' in main
    assert '"${local.issuer}:sub" = subjects' in main
    assert 'apply = [for s in var.apply_subjects : "repo:${var.repository}:${s}"]' in main
    assert 'plan  = [for s in var.plan_subjects : "repo:${var.repository}:${s}"]' in main


def test_root_wires_the_module_for_one_repository():
    root = hcl2.loads((ROOT / "terraform/envs/dev/main.tf").read_text())
    (body,) = [clean(m)["ci_identity"] for m in root["module"] if "ci_identity" in clean(m)]
    assert body["count"] == '${var.ci.github_repository == "" ? 0 : 1}'
    assert body["repository"] == "${var.ci.github_repository}"
    assert body["plan_subjects"] == ["pull_request", "ref:refs/heads/main"]  # PR plans, scheduled drift on main
    assert body["apply_subjects"] == ["environment:${var.environment}"]
    assert body["state_bucket"] == "${var.state.bucket}" and body["state_key"] == "${var.state.key}"
    assert body["permissions_boundary_arn"] == "${module.iam_boundary.arn}"
    assert body["role_path"] == "${local.iam_path}"
    from deployctl.infra.pipeline import FOUNDATION_TARGETS

    assert {"module.ci_identity", "module.iam_boundary"} <= set(FOUNDATION_TARGETS)


# ---- the doc lists exactly these grants -------------------------------------------------


def grants_table(role: str) -> str:
    """The markdown table docs/real-account.md carries for ``role`` (regenerate from here)."""
    rows = ["| Statement | Actions |", "|-----------|---------|"]
    for sid, acts in actions(role).items():
        rows.append(f"| `{sid}` | {', '.join(f'`{a}`' for a in acts)} |")
    return "\n".join(rows)


@pytest.mark.parametrize("role", ["apply", "plan"])
def test_real_account_doc_lists_exactly_the_module_grants(role):
    doc = DOC.read_text()
    begin, end = f"<!-- grants:{role}:begin -->\n", f"\n<!-- grants:{role}:end -->"
    assert begin in doc and end in doc, f"docs/real-account.md: markers for {role} missing"
    block = doc.split(begin, 1)[1].split(end, 1)[0]
    assert block == grants_table(role), (
        f"docs/real-account.md {role} grants are stale; replace the block with:\n{grants_table(role)}"
    )


# ---- the real terraform: rendered trust policies and input validation --------------------

TFTEST = """
mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  account_id           = "123456789012"
  apply_subjects       = ["environment:prod"]
  artifact_bucket_name = "demo-prod-artifacts-123456789012"
  key_tag              = { key = "DeployctlStack", value = "demo-prod" }
  kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  name                 = "demo-prod"
  parameter_prefix     = "/prod/demo/"
  permissions_boundary_arn = "arn:aws:iam::123456789012:policy/demo/prod/demo-prod-boundary"
  region               = "eu-west-1"
  repository           = "acme/api"
  role_path            = "/demo/prod/"
  rollout_records_prefix = "deployctl/rollouts/prod/"
  state_bucket         = "demo-tfstate-123456789012-eu-west-1"
  state_key            = "demo/prod/terraform.tfstate"
}

run "trust" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role.plan.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == ["repo:acme/api:pull_request"]
    error_message = "plan sub"
  }
  assert {
    condition     = jsondecode(aws_iam_role.apply.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == ["repo:acme/api:environment:prod"]
    error_message = "apply sub"
  }
  assert {
    condition     = alltrue([for r in [aws_iam_role.plan, aws_iam_role.apply] : jsondecode(r.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"])
    error_message = "aud"
  }
  assert {
    condition     = length(aws_iam_openid_connect_provider.this) == 1 && aws_iam_openid_connect_provider.this[0].url == "https://token.actions.githubusercontent.com" && aws_iam_openid_connect_provider.this[0].client_id_list == toset(["sts.amazonaws.com"])
    error_message = "provider"
  }
  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.plan.policy).Statement[*].Sid, "StateLock") && one([for s in jsondecode(aws_iam_role_policy.plan.policy).Statement : s.Resource if s.Sid == "StateLock"]) == ["arn:aws:s3:::demo-tfstate-123456789012-eu-west-1/demo/prod/terraform.tfstate.tflock"]
    error_message = "lock file"
  }
}

run "reuse_provider" {
  command = apply

  variables {
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.this) == 0 && jsondecode(aws_iam_role.plan.assume_role_policy).Statement[0].Principal.Federated == "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    error_message = "reuse"
  }
}

run "wildcard_repository_refused" {
  command = plan

  variables {
    repository = "acme/*"
  }
  expect_failures = [var.repository]
}

run "wildcard_subject_refused" {
  command = plan

  variables {
    apply_subjects = ["ref:refs/heads/*"]
  }
  expect_failures = [var.apply_subjects]
}

run "pull_request_cannot_apply" {
  command = plan

  variables {
    apply_subjects = ["pull_request"]
  }
  expect_failures = [var.apply_subjects]
}
"""


def real_terraform() -> str:
    for candidate in (os.environ.get("DEPLOYCTL_REAL_TERRAFORM"), "/usr/local/bin/terraform", shutil.which("terraform")):
        if not candidate or not Path(candidate).is_file():
            continue
        out = subprocess.run([candidate, "version"], capture_output=True, text=True).stdout
        m = re.search(r"Terraform v(\d+)\.(\d+)", out)
        if m and (int(m.group(1)), int(m.group(2))) >= (1, 7):
            return candidate
    pytest.skip("terraform >= 1.7 (mock_provider) not found")


@pytest.mark.slow
def test_rendered_trust_policies_and_validation_with_real_terraform(tmp_path):
    terraform = real_terraform()
    if not (PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no hashicorp/aws provider mirror at {PLUGIN_MIRROR}")
    work = tmp_path / "ci_identity"
    shutil.copytree(MODULE, work)
    (work / "tests").mkdir()
    (work / "tests" / "trust.tftest.hcl").write_text(TFTEST)
    rc = tmp_path / "terraformrc"
    rc.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{PLUGIN_MIRROR}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n'
    )
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    init = subprocess.run([terraform, "init", "-backend=false", "-input=false", "-no-color"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    run = subprocess.run([terraform, "test", "-no-color"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed, 0 failed" in run.stdout, run.stdout
