"""Issue 15, reproductions 1-3: the CI roles' and the stack's IAM, rendered by the real Terraform.

The real env root (terraform/envs/dev, with [ci] enabled) is planned by `terraform test` with the real
hashicorp/aws provider (it renders every aws_iam_policy_document itself) and no AWS: the few values
only AWS could know (the key's and the boundary's ARNs, table/queue/log-group ARNs, the account id)
are overridden at plan time. The planned policy documents (CI apply and plan roles, every function
role, the API Gateway logs role, the boundary) are then asked what an attacker would ask
(tests/security/iam_eval.py):

1. a job in the dev GitHub environment (the CI apply role): create or change a role without the
   env's boundary, touch another env's roles (`app-dev-*` also matched `app-dev-eu-*`), pass a role
   it made, remove the boundary or rewrite it;
2. the same job: manage, decrypt or delete any other KMS key of the account;
3. a pull request (the CI plan role): decrypt a SecureString or read one.

tests/e2e/test_deploy_path.py asks the same questions of what the emulator holds after a deploy.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .iam_eval import (
    Stack,
    apply_role_findings,
    boundary_findings,
    cloudsplaining_findings,
    document,
    plan_role_findings,
    role_findings,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_MIRROR = Path(os.environ.get("DEPLOYCTL_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
ACCOUNT, REGION, APP, ENV = "123456789012", "eu-west-1", "deployctl-demo", "dev"
PREFIX = f"{APP}-{ENV}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
BOUNDARY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{APP}/{ENV}/{PREFIX}-boundary"


def _terraform() -> str:
    for candidate in (os.environ.get("DEPLOYCTL_REAL_TERRAFORM"), os.environ.get("DEPLOYCTL_E2E_TERRAFORM"),
                      "/usr/local/bin/terraform", shutil.which("terraform")):
        if not candidate or not Path(candidate).is_file():
            continue
        out = subprocess.run([candidate, "version"], capture_output=True, text=True).stdout
        m = re.search(r"Terraform v(\d+)\.(\d+)", out)
        if m and (int(m.group(1)), int(m.group(2))) >= (1, 11):  # override_during = plan
            return candidate
    pytest.skip("terraform >= 1.11 not found (set DEPLOYCTL_REAL_TERRAFORM)")


def _hcl(values: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items()) + " }"


def _test_file(root: Path, tfvars: dict) -> str:
    """The .tftest.hcl: the real provider without credentials, plus the values only AWS knows."""
    lines = ['provider "aws" {', f'  region = "{REGION}"', '  access_key = "none"', '  secret_key = "none"',
             "  skip_credentials_validation = true", "  skip_requesting_account_id = true",
             "  skip_metadata_api_check = true", "}"]
    data = [f"module.{m}.data.aws_caller_identity.current" for m in ("app_config", "api", "monitoring")]
    for target in data:
        lines += ["override_data {", f"  target = {target}", "  override_during = plan",
                  f"  values = {_hcl({'account_id': ACCOUNT})}", "}"]
    arn = f"arn:aws:%s:{REGION}:{ACCOUNT}:%s"
    overrides = {"module.kms.aws_kms_key.this": {"arn": KEY_ARN, "key_id": KEY_ARN.rsplit("/", 1)[1]}}
    if (root / "terraform/modules/iam_boundary").is_dir():
        overrides["module.iam_boundary.aws_iam_policy.this"] = {"arn": BOUNDARY_ARN}
    for table in tfvars["tables"]:
        overrides[f'module.tables["{table}"].aws_dynamodb_table.this'] = {"arn": arn % ("dynamodb", f"table/{PREFIX}-{table}")}
    for fn in tfvars["functions"]:
        overrides[f'module.functions["{fn}"].aws_sqs_queue.dlq'] = {"arn": arn % ("sqs", f"{PREFIX}-{fn}-dlq")}
        overrides[f'module.functions["{fn}"].aws_cloudwatch_log_group.this'] = {
            "arn": arn % ("logs", f"log-group:/aws/lambda/{PREFIX}-{fn}")}
    for target, values in overrides.items():
        lines += ["override_resource {", f"  target = {target}", "  override_during = plan",
                  f"  values = {_hcl(values)}", "}"]
    lines += ['run "render" {', "  command = plan", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> dict:
    """{address: planned values} of every IAM role, role policy and managed policy of the dev root."""
    terraform = _terraform()
    if not (PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no hashicorp/aws provider mirror at {PLUGIN_MIRROR}")
    tmp = tmp_path_factory.mktemp("iam")
    project = tmp / "project"
    for name in ("api", "terraform"):
        shutil.copytree(ROOT / name, project / name, symlinks=True,
                        ignore=shutil.ignore_patterns(".terraform", "*.tfvars.json", "backend.hcl", "artifacts.json"))
    env_toml = project / "terraform/envs/dev/env.toml"
    text = re.sub(r'(?m)^account_id\s*=\s*"\d*".*$', f'account_id = "{ACCOUNT}"', env_toml.read_text())
    env_toml.write_text(text + '\n[ci]\ngithub_repository = "acme/api"\n')

    from deployctl.config import load_env
    from deployctl.infra.render import render_tfvars_text

    cfg = load_env(ENV, project)
    digest = "0" * 64
    manifest = {
        "functions": {n: {"bucket": cfg.artifact_bucket(), "key": f"lambda/{n}/{digest}.zip", "version_id": "v1"}
                      for n in cfg.functions},
        "layers": {n: {"bucket": cfg.artifact_bucket(), "key": f"layers/{n}/{digest}.zip", "version_id": "v1",
                       "code_sha256": base64.b64encode(bytes(32)).decode()} for n in cfg.data.get("layers", {})},
    }
    text, tfvars, _missing, _omitted = render_tfvars_text(cfg, manifest)
    env_dir = project / "terraform/envs/dev"
    (env_dir / "deployctl.auto.tfvars.json").write_text(text)
    (env_dir / "tests").mkdir()
    (env_dir / "tests/iam.tftest.hcl").write_text(_test_file(project, tfvars))
    rc = tmp / "terraformrc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{PLUGIN_MIRROR}"\n'
                  '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))},
           "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    init = subprocess.run([terraform, "init", "-backend=false", "-input=false", "-no-color"], cwd=env_dir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    run = subprocess.run([terraform, "test", "-json", "-verbose", "-no-color"], cwd=env_dir, env=env,
                         capture_output=True, text=True, timeout=600)
    plans = [json.loads(line)["test_plan"] for line in run.stdout.splitlines()
             if line.startswith("{") and '"test_plan"' in line[:400]]
    assert run.returncode == 0 and plans, run.stdout[-4000:] + run.stderr
    out = {}
    for rc_ in plans[0]["resource_changes"]:
        if rc_["type"] in ("aws_iam_role", "aws_iam_role_policy", "aws_iam_policy"):
            after = rc_["change"]["after"]
            unknown = [k for k in ("policy", "permissions_boundary") if rc_["change"]["after_unknown"].get(k)]
            assert not unknown, f"{rc_['address']}: {unknown} unknown at plan time"
            out[rc_["address"]] = {**after, "type": rc_["type"]}
    return out


def _stack(planned) -> Stack:
    return Stack(ACCOUNT, REGION, APP, ENV, BOUNDARY_ARN, ("DeployctlStack", PREFIX), [f"/{ENV}/{APP}/pagination-key"])


def _policy(planned, address) -> dict:
    return document(planned[address]["policy"])


def test_ci_apply_role_cannot_escape_the_boundary_the_path_or_the_key(planned):
    """Reproductions 1 and 2: a dev-environment job holding the apply role."""
    findings = apply_role_findings([_policy(planned, "module.ci_identity[0].aws_iam_role_policy.apply")], _stack(planned))
    assert findings == []


def test_ci_plan_role_reads_no_secret(planned):
    """Reproduction 3: a pull request holding the plan role (any branch can run its own workflow)."""
    findings = plan_role_findings([_policy(planned, "module.ci_identity[0].aws_iam_role_policy.plan")],
                                  _stack(planned), KEY_ARN)
    assert findings == []


def test_every_role_the_stack_creates_carries_the_boundary_on_the_env_path(planned):
    boundary_address = "module.iam_boundary.aws_iam_policy.this"
    assert boundary_address in planned, "no permissions boundary policy in the stack"
    boundary = _policy(planned, boundary_address)
    assert boundary_findings(boundary) == []
    assert planned[boundary_address]["path"] == f"/{APP}/{ENV}/"
    roles = {a: v for a, v in planned.items() if v["type"] == "aws_iam_role" and not a.startswith("module.ci_identity")}
    assert len(roles) == 5, sorted(roles)  # 4 function roles + the API Gateway logs role
    findings = []
    for address, role in roles.items():
        if role.get("permissions_boundary") != BOUNDARY_ARN:
            findings.append(f"{address} carries boundary {role.get('permissions_boundary')!r}")
        if role.get("path") != f"/{APP}/{ENV}/":
            findings.append(f"{address} is on path {role.get('path')!r}")
        policy_address = address.replace("aws_iam_role.this", "aws_iam_role_policy.this").replace(
            "aws_iam_role.cloudwatch", "aws_iam_role_policy.cloudwatch")
        findings += role_findings(address, [_policy(planned, policy_address)], boundary, _stack(planned))
    assert findings == []
    # the CI roles stay off the env path (the apply role's role grants never reach them)
    for kind in ("plan", "apply"):
        assert planned[f"module.ci_identity[0].aws_iam_role.{kind}"]["path"] == "/"


def test_the_evaluator_sees_the_original_holes():
    """The questions catch the original grants (so an empty findings list means something)."""
    stack = Stack(ACCOUNT, REGION, APP, ENV, BOUNDARY_ARN, ("DeployctlStack", PREFIX), [f"/{ENV}/{APP}/pagination-key"])
    old_apply = {"Statement": [
        {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy"], "Resource": f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-*"},
        {"Effect": "Allow", "Action": "kms:PutKeyPolicy", "Resource": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"},
    ]}
    found = apply_role_findings([old_apply], stack)
    assert any("neighbour env (name prefix)" in f and "no boundary" in f for f in found)
    assert any("kms:PutKeyPolicy on an untagged key" in f for f in found)
    old_plan = {"Statement": [
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{ENV}/{APP}/*"},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY_ARN,
         "Condition": {"StringEquals": {"kms:ViaService": [f"ssm.{REGION}.amazonaws.com"]}}},
    ]}
    found = plan_role_findings([old_plan], stack, KEY_ARN)
    assert any("via ssm" in f for f in found) and any("SecureString" in f for f in found)


def test_cloudsplaining_runs_offline_and_flags_an_escalation():
    """The analyzer the e2e runs on the deployed policies flags the classic Lambda escalation."""
    pytest.importorskip("cloudsplaining")

    def details(policy: dict) -> dict:
        role = {"Path": "/", "RoleName": "r", "RoleId": "AROAEXAMPLE", "Arn": f"arn:aws:iam::{ACCOUNT}:role/r",
                "CreateDate": "2026-01-01", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
                "InstanceProfileList": [], "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": policy}],
                "AttachedManagedPolicies": [], "Tags": [], "RoleLastUsed": {}}
        return {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [role], "Policies": []}

    escalation = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction"]}]}
    found = cloudsplaining_findings(details(escalation))
    assert found["p"]["PrivilegeEscalation"][0]["type"] == "PassExistingRoleToNewLambdaThenInvoke"
    scoped = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem",
                                                      "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t"}]}
    assert cloudsplaining_findings(details(scoped)) == {}


def test_cloudsplaining_on_the_rendered_policies(planned):
    """The maintained analyzer on every rendered role policy and the boundary: nothing serious."""
    pytest.importorskip("cloudsplaining")
    roles, policies = [], []
    for values in planned.values():
        if values["type"] == "aws_iam_role_policy":
            roles.append({"Path": "/", "RoleName": values["name"], "RoleId": f"AROA{len(roles):012d}",
                          "Arn": f"arn:aws:iam::{ACCOUNT}:role/{values['name']}", "CreateDate": "2026-01-01",
                          "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
                          "InstanceProfileList": [], "AttachedManagedPolicies": [], "Tags": [], "RoleLastUsed": {},
                          "RolePolicyList": [{"PolicyName": values["name"], "PolicyDocument": document(values["policy"])}]})
        elif values["type"] == "aws_iam_policy":
            policies.append({"PolicyName": values["name"], "PolicyId": "ANPABOUNDARY", "Arn": BOUNDARY_ARN,
                             "Path": values["path"], "DefaultVersionId": "v1", "AttachmentCount": 0,
                             "IsAttachable": True, "CreateDate": "2026-01-01", "UpdateDate": "2026-01-01",
                             "PolicyVersionList": [{"Document": document(values["policy"]), "VersionId": "v1",
                                                    "IsDefaultVersion": True, "CreateDate": "2026-01-01"}]})
    assert len(roles) == 7  # 4 functions, the API Gateway logs role, the two CI roles
    flagged = cloudsplaining_findings({"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": roles,
                                       "Policies": policies})
    serious = {name: {risk: found for risk, found in risks.items()
                      if risk in ("PrivilegeEscalation", "ResourceExposure", "CredentialsExposure")}
               for name, risks in flagged.items()}
    assert {name: risks for name, risks in serious.items() if risks} == {}, flagged
