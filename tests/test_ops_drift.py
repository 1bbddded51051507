"""deployctl drift: the extraction on real refresh-only plan JSON, and the command end to end.

The fixtures ``tests/fixtures/tf/plans/drift_*.json`` are ``terraform show -json`` of refresh-only
plans made by Terraform 1.11.4 with hashicorp/aws 5.100.0 against moto (a DynamoDB table with PITR
and an SSM parameter, whose ``value`` the provider marks sensitive): right after the apply
(``drift_none``: only the provider's null -> {} shuffles), after PITR was switched off and the
parameter's value changed by hand (``drift_pitr_and_parameter``), and after the parameter was deleted
(``drift_parameter_deleted``). The end-to-end test builds the same root in a fixture project and runs
the real CLI; it needs a Terraform >= 1.10 and the provider (DEPLOYCTL_E2E_PROVIDER_MIRROR), else skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from deployctl.config import load_env
from deployctl.infra import drift, records
from tf_helpers import FIXTURES, copy_project, run_cli

PLANS = FIXTURES / "plans"


def plan(name: str) -> dict:
    return json.loads((PLANS / f"drift_{name}.json").read_text(encoding="utf-8"))


def test_no_drift_after_apply_ignores_the_providers_null_to_empty_shuffles():
    doc = plan("none")
    assert doc["resource_drift"], "the fixture does have provider noise in resource_drift"
    assert drift.extract(doc) == []


def test_changed_attributes_with_paths_and_values_and_the_sensitive_value_masked():
    found = drift.extract(plan("pitr_and_parameter"))
    assert [r["address"] for r in found] == ["aws_dynamodb_table.this", "aws_ssm_parameter.this"]
    table, param = found
    assert table["action"] == "changed"
    assert {"path": "point_in_time_recovery[0].enabled", "before": True, "after": False, "sensitive": False} \
        in table["changes"]
    value = next(c for c in param["changes"] if c["path"] == "value")
    assert value == {"path": "value", "before": drift.MASK, "after": drift.MASK, "sensitive": True}
    # `version` is computed (the configuration does not set it): reported aside, not as drift
    assert {"path": "version", "before": 1, "after": 2, "sensitive": False} in param["other_changes"]
    assert [c["path"] for c in param["changes"]] == ["value"]
    text = json.dumps(found) + drift.drift_text({"env": "dev", "resources": found})
    assert "before-value" not in text and "after-value" not in text


def test_a_resource_deleted_outside_terraform():
    found = drift.extract(plan("parameter_deleted"))
    assert {r["address"]: r["action"] for r in found} == {"aws_dynamodb_table.this": "changed",
                                                          "aws_ssm_parameter.this": "deleted"}


def test_changes_only_to_attributes_the_configuration_does_not_set_are_not_drift():
    """An IAM role's inline_policy written by aws_iam_role_policy, an SNS topic's policy written by
    aws_sns_topic_policy: here the parameter's computed `version` alone changed."""
    doc = plan("pitr_and_parameter")
    (param,) = [rd for rd in doc["resource_drift"] if rd["type"] == "aws_ssm_parameter"]
    param["change"]["after"]["value"] = param["change"]["before"]["value"]
    assert [r["address"] for r in drift.extract(doc)] == ["aws_dynamodb_table.this"]
    assert [(r["address"], [c["path"] for c in r["other_changes"]]) for r in drift.unmanaged(doc)] == [
        ("aws_ssm_parameter.this", ["version"])]
    del doc["configuration"]  # no configuration to tell them apart: every change counts
    assert [r["address"] for r in drift.extract(doc)] == ["aws_dynamodb_table.this", "aws_ssm_parameter.this"]


def test_blocks_written_as_dynamic_count_as_configured(tmp_path):
    """Terraform leaves dynamic blocks out of the plan's `expressions`; they are read from the module."""
    module = tmp_path / "modules" / "table"
    module.mkdir(parents=True)
    (module / "main.tf").write_text(
        'resource "aws_dynamodb_table" "this" {\n  name = var.name\n'
        '  dynamic "global_secondary_index" {\n    for_each = var.gsis\n    content {\n'
        '      name = global_secondary_index.key\n    }\n  }\n}\n')
    root = tmp_path / "envs" / "dev"
    root.mkdir(parents=True)
    doc = {"configuration": {"root_module": {"module_calls": {"tables": {
        "source": "../../modules/table",
        "module": {"resources": [{"address": "aws_dynamodb_table.this", "mode": "managed",
                                  "type": "aws_dynamodb_table", "name": "this", "expressions": {"name": {}}}]}}}}},
        "resource_drift": [{"address": 'module.tables["items"].aws_dynamodb_table.this[0]', "mode": "managed",
                            "type": "aws_dynamodb_table", "change": {
                                "actions": ["update"],
                                "before": {"name": "t", "global_secondary_index": [{"name": "G1"}], "arn": "a"},
                                "after": {"name": "t", "global_secondary_index": [{"name": "G2"}], "arn": "b"}}}]}
    (found,) = drift.extract(doc, root)
    assert [c["path"] for c in found["changes"]] == ["global_secondary_index[0].name"]
    assert [c["path"] for c in found["other_changes"]] == ["arn"]
    assert drift.extract(doc) == []  # without the module's source the dynamic block is not known
    assert drift.config_key('module.a["x.y"].module.b[2].aws_s3_bucket.this[0]') == (("a", "b"), "aws_s3_bucket.this")


def test_sensitivity_marks_whole_subtrees_and_list_elements():
    before = {"a": {"b": "x", "c": ["p", "q"]}, "d": 1}
    after = {"a": {"b": "y", "c": ["p", "r"]}, "d": 2}
    changes = list(drift.attribute_changes(before, after, {"a": {"c": [False, True]}}, {"a": True}))
    assert changes == [
        {"path": "a.b", "before": drift.MASK, "after": drift.MASK, "sensitive": True},
        {"path": "a.c[1]", "before": drift.MASK, "after": drift.MASK, "sensitive": True},
        {"path": "d", "before": 1, "after": 2, "sensitive": False},
    ]
    # the provider reading an unset field back as its zero value is not a change; a real value is
    assert list(drift.attribute_changes({"p": None, "q": None, "r": None}, {"p": 0, "q": False, "r": 60})) == [
        {"path": "r", "before": None, "after": 60, "sensitive": False}]
    # a list that changed length is one change of the whole list
    assert list(drift.attribute_changes({"l": [1]}, {"l": [1, 2]})) == [
        {"path": "l", "before": [1], "after": [1, 2], "sensitive": False}]


# -- the command, end to end: real terraform + hashicorp/aws against moto ------------------------------

ROOT_TF = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.100, < 7.0" }
  }
}

provider "aws" {
  region = "eu-west-1"
}

resource "aws_dynamodb_table" "this" {
  name         = "fixture-drift-items"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  attribute {
    name = "pk"
    type = "S"
  }
  point_in_time_recovery {
    enabled = true
  }
}

resource "aws_ssm_parameter" "this" {
  name  = "/fixture/drift/token"
  type  = "String"
  value = "before-value"
}
"""


def _terraform() -> str:
    for candidate in (os.environ.get("DEPLOYCTL_E2E_TERRAFORM"), shutil.which("terraform")):
        if not candidate:
            continue
        try:
            out = subprocess.run([candidate, "version", "-json"], capture_output=True, text=True, timeout=60).stdout
            version = tuple(int(x) for x in re.findall(r"\d+", json.loads(out)["terraform_version"])[:2])
        except (OSError, ValueError, KeyError, subprocess.SubprocessError):
            continue
        if version >= (1, 10):
            return candidate
    pytest.skip("no Terraform >= 1.10 (DEPLOYCTL_E2E_TERRAFORM or PATH)")
    raise AssertionError


@pytest.fixture
def drift_project(tmp_path, aws_env, monkeypatch):
    mirror = os.environ.get("DEPLOYCTL_E2E_PROVIDER_MIRROR")
    if not mirror or not list(Path(mirror).glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*")):
        pytest.skip("no hashicorp/aws provider mirror (DEPLOYCTL_E2E_PROVIDER_MIRROR)")
    terraform = _terraform()
    rc = tmp_path / "terraform.rc"
    rc.write_text('provider_installation {\n  filesystem_mirror {\n'
                  f'    path    = {json.dumps(str(Path(mirror).resolve()))}\n'
                  '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n', encoding="utf-8")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("DEPLOYCTL_TERRAFORM", terraform)
    root = copy_project("project", tmp_path)
    env_dir = root / "terraform/envs/drifty"
    env_dir.mkdir()
    (env_dir / "env.toml").write_text("", encoding="utf-8")
    (env_dir / "main.tf").write_text(ROOT_TF, encoding="utf-8")
    assert run_cli(root, "render", "--env", "drifty", "--foundation", tools=False).code == 0
    for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
        res = subprocess.run([terraform, *args], cwd=env_dir, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    return root


@pytest.mark.slow
def test_drift_command_finds_what_changed_by_hand_and_records_it(drift_project):
    root = drift_project
    run = run_cli(root, "drift", "--env", "drifty", "--json", tools=False)
    doc = json.loads(run.out)
    assert run.code == 0 and doc["ok"] and doc["result"]["drift"] is False and doc["result"]["resources"] == []
    cfg = load_env("drifty", root)
    assert records.last_drift(cfg)["drift"] is False

    boto3.client("dynamodb").update_continuous_backups(
        TableName="fixture-drift-items", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    boto3.client("ssm").put_parameter(Name="/fixture/drift/token", Value="after-value", Type="String", Overwrite=True)
    run = run_cli(root, "drift", "--env", "drifty", "--json", tools=False)
    doc = json.loads(run.out)
    assert run.code == 1 and doc["ok"] is False
    assert doc["error"]["error"] == "drift" and doc["error"]["exit_code"] == 1
    resources = {r["address"]: r for r in doc["result"]["resources"]}
    assert set(resources) == {"aws_dynamodb_table.this", "aws_ssm_parameter.this"}
    paths = {c["path"]: c for c in resources["aws_dynamodb_table.this"]["changes"]}
    assert paths["point_in_time_recovery[0].enabled"]["before"] is True
    assert paths["point_in_time_recovery[0].enabled"]["after"] is False
    value = next(c for c in resources["aws_ssm_parameter.this"]["changes"] if c["path"] == "value")
    assert value["before"] == value["after"] == drift.MASK
    assert "after-value" not in run.out + run.err and "before-value" not in run.out + run.err
    assert not (cfg.work_dir / drift.DRIFT_DIR).exists()  # the plan (with the values) is gone
    rec = records.last_drift(cfg)
    assert rec["drift"] is True and rec["resources"] == 2 and "aws_ssm_parameter.this" in rec["addresses"]
    # the state is untouched: terraform's own plan still wants to put the configuration back
    human = run_cli(root, "drift", "--env", "drifty", tools=False)
    assert human.code == 1 and "point_in_time_recovery[0].enabled: true -> false" in human.out
    assert "changed outside Terraform" in human.err
