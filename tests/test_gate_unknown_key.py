"""The plan gate explains the unknown-key case, through the real checkov.

tests/fixtures/tf/plans/dev_create_kms_key_unknown.json is a minimal plan that
creates module.kms.aws_kms_key.this together with resources encrypted with it,
so their kms_key_arn / kms_key_id / kms_master_key_id are "known after apply"
(after_unknown), as in a first full plan without the foundation step.
"""

from __future__ import annotations

import json
import os
import shutil
from xml.etree import ElementTree as ET

import pytest

from deployctl.infra import gate
from tf_helpers import CHECKOV, FIXTURES

PLAN = FIXTURES / "plans" / "dev_create_kms_key_unknown.json"
KEY = "module.kms.aws_kms_key.this"
# the lambda's VPC and code-signing checks are skipped inline in the real source
INLINE = ('[[waiver]]\ncheck = "CKV_AWS_117"\nreason = "skipped inline in the real module"\n'
          '[[waiver]]\ncheck = "CKV_AWS_272"\nreason = "skipped inline in the real module"\n')


def scan(tmp_path, doc: dict | None = None, gate_toml: str | None = INLINE) -> gate.GateResult:
    plan_json = tmp_path / "plan.json"
    if doc is None:
        shutil.copyfile(PLAN, plan_json)
    else:
        plan_json.write_text(json.dumps(doc))
    if gate_toml is not None:
        (tmp_path / "policy").mkdir(exist_ok=True)
        (tmp_path / "policy" / "gate.toml").write_text(gate_toml)
    return gate.scan_plan(tmp_path, plan_json, checkov=str(CHECKOV))


def test_encryption_failures_of_a_plan_creating_the_key_are_explained_and_still_fail(tmp_path):
    res = scan(tmp_path)
    assert not res.passed  # safer: still a failure, but with its cause
    info = res.unknown_key
    assert info["keys"] == [KEY]
    assert info["checks"] == {"CKV_AWS_119": 1, "CKV_AWS_158": 2, "CKV_AWS_173": 1, "CKV_AWS_26": 1, "CKV_AWS_27": 1}
    assert info["findings"] == 6 == len(res.blocking) and info["other_blocking_checks"] == []
    assert all(f.reason == f"KMS key unknown at plan time: this plan creates {KEY}" for f in res.blocking)

    message, hint = gate.unknown_key_error(res, "dev", foundation=False)
    assert "creates the KMS key (module.kms.aws_kms_key.this)" in message and "kms_key_arn" in message
    assert "6 resource(s) as unencrypted" in message
    assert "CKV_AWS_158 x2" in message and "CKV_AWS_119" in message
    assert hint == ("create the key first: deployctl plan --env dev --foundation, deployctl apply --env dev, "
                    "then deployctl plan --env dev again")
    _, foundation_hint = gate.unknown_key_error(res, "dev", foundation=True)
    assert "waive" in foundation_hint and "--foundation" not in foundation_hint
    text = "\n".join(gate.summary_lines(res))
    assert f"cause: KMS key unknown at plan time: this plan creates {KEY}" in text
    junit = ET.fromstring(gate.junit_xml([res]).split("\n", 1)[1])
    assert all("cause: KMS key unknown" in f.text for f in junit.iter("failure"))
    assert json.loads(json.dumps(res.as_dict()))["unknown_key"]["keys"] == [KEY]


def test_other_blocking_findings_are_named_as_not_about_the_key(tmp_path):
    res = scan(tmp_path, gate_toml=None)
    assert res.unknown_key["other_blocking_checks"] == ["CKV_AWS_117", "CKV_AWS_272"]
    others = [f for f in res.blocking if f.check_id in {"CKV_AWS_117", "CKV_AWS_272"}]
    assert others and all(f.reason is None for f in others)
    message, hint = gate.unknown_key_error(res, "staging", foundation=False)
    assert "2 other blocking check(s) are not about the key: CKV_AWS_117, CKV_AWS_272" in message
    assert "--foundation" in hint and "fix or waive" in hint


def test_a_plan_that_does_not_create_the_key_gets_no_such_explanation(tmp_path):
    doc = json.loads(PLAN.read_text())
    for rc in doc["resource_changes"]:
        if rc["address"] == KEY:
            rc["change"]["actions"] = ["no-op"]
    res = scan(tmp_path, doc)
    assert not res.passed and res.unknown_key is None
    assert all(f.reason is None for f in res.blocking)


@pytest.mark.parametrize("actions", [["delete", "create"], ["create", "delete"]])
def test_a_replaced_key_is_the_same_case(tmp_path, actions):
    doc = json.loads(PLAN.read_text())
    for rc in doc["resource_changes"]:
        if rc["address"] == KEY:
            rc["change"]["actions"] = actions
    assert gate.kms_key_changes(doc) == [KEY]
    assert scan(tmp_path, doc).unknown_key["findings"] == 6


def test_unknown_kms_attributes_are_found_at_any_depth():
    doc = json.loads(PLAN.read_text())
    assert gate.unknown_kms_addresses(doc) == {
        'module.tables["users"].aws_dynamodb_table.this',  # server_side_encryption[0].kms_key_arn
        'module.functions["users"].aws_cloudwatch_log_group.this',
        'module.functions["users"].aws_lambda_function.this',
        'module.functions["users"].aws_sqs_queue.dlq',
        "module.monitoring.aws_sns_topic.this",
        "module.api.aws_cloudwatch_log_group.access",
    }


# -- through `deployctl plan`: real terraform, the real AWS provider, real checkov -----------------

TERRAFORM_111 = shutil.which("terraform", path="/usr/local/bin") or ""
MIRROR = "/opt/tf-plugins"

KEY_ROOT = """
provider "aws" {
  region                      = "eu-west-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

# a first full plan without the foundation step: the key (module.kms) and a module
# encrypting with it, together; the module gets the key ARN as a variable, unknown here
module "topic" {
  source      = "../../modules/topic"
  kms_key_arn = module.kms.key_arn
}
"""

TOPIC_MODULE = """
variable "kms_key_arn" {
  type = string
}

resource "aws_sns_topic" "this" {
  name              = "fixture-dev-alarms"
  kms_master_key_id = var.kms_key_arn
}
"""

KMS_MODULE = """
variable "name" {
  type = string
}

resource "aws_kms_key" "this" {
  description         = "fixture-dev"
  enable_key_rotation = true
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Sid = "Root", Effect = "Allow", Principal = { AWS = "arn:aws:iam::123456789012:root" }, Action = "kms:*", Resource = "*" }]
  })
}

output "alias" {
  value = "alias/${var.name}"
}

output "key_arn" {
  value = aws_kms_key.this.arn
}
"""


@pytest.mark.slow
@pytest.mark.skipif(not (TERRAFORM_111 and os.path.isdir(MIRROR)), reason="terraform 1.11 and the provider mirror")
def test_plan_command_names_the_key_and_the_foundation_step(tmp_path, aws_env, monkeypatch):
    from tf_helpers import copy_project, run_cli

    root = copy_project("project", tmp_path)
    env_dir = root / "terraform" / "envs" / "dev"
    (root / "terraform" / "modules" / "kms" / "main.tf").write_text(KMS_MODULE)  # the stand-in, now a real key
    (root / "terraform" / "modules" / "topic").mkdir()
    (root / "terraform" / "modules" / "topic" / "main.tf").write_text(TOPIC_MODULE)
    (env_dir / "key.tf").write_text(KEY_ROOT)
    rc = tmp_path / "terraformrc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n'
                  f'    include = ["registry.terraform.io/hashicorp/aws"]\n  }}\n}}\n')
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    run = run_cli(root, "--terraform-bin", TERRAFORM_111, "plan", "--env", "dev", "--json")
    assert run.code == 1, run.err
    doc = json.loads(run.out)
    error = doc["error"]
    assert doc["ok"] is False and error["error"] == "policy_failed"
    assert "because it creates the KMS key (module.kms.aws_kms_key.this)" in error["message"]
    assert "CKV_AWS_26" in error["message"] and "unencrypted" in error["message"]
    assert error["hint"].startswith("create the key first: deployctl plan --env dev --foundation, deployctl apply --env dev")
    line = [ln for ln in run.err.splitlines() if ln.startswith("error:")][-1]
    assert "--foundation" in line and "module.kms.aws_kms_key.this" in line
    policy = json.loads((root / ".deployctl" / "dev" / "plan" / "policy.json").read_text())
    assert policy["plan"]["unknown_key"]["keys"] == ["module.kms.aws_kms_key.this"]
