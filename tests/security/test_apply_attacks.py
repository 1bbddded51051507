"""Attacks on the plan bundle, the env lock and the workflow (issue 15, "Why" 4, 5 and 6).

Every file in ``.deployctl/<env>/plan/`` is writable by whoever can write that directory (a CI
artifact once was); an edit must only ever make apply refuse. The attacks run against the real
CLI and the real terraform: the provider-free fixture project with the test-only terraform, a
root with terraform_data (built into terraform >= 1.4), and the hashicorp/aws provider against
a real moto server for the DynamoDB table and the KMS key (the same terraform and provider
the e2e suite finds; without them these skip, and fail under DEPLOYCTL_E2E_REQUIRED=1).
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tf_helpers import CHECKOV, TERRAFORM, VENV_BIN, copy_project, run_cli

pytestmark = pytest.mark.slow

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "deploy.yml"


@pytest.fixture(autouse=True)
def _no_imds(monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def project(tmp_path):
    return copy_project("project", tmp_path)


def bundle(root: Path, env: str) -> Path:
    return root / ".deployctl" / env / "plan"


def swap_planfile(root: Path, env: str, data: bytes) -> None:
    """The attack: another tfplan, and its sha256 written into bundle.json so every record agrees."""
    b = bundle(root, env)
    (b / "tfplan").write_bytes(data)
    meta = json.loads((b / "bundle.json").read_text())
    meta["plan_sha256"] = hashlib.sha256(data).hexdigest()
    (b / "bundle.json").write_text(json.dumps(meta))


def tf_state(root: Path, env: str, terraform: str, tf_env: dict | None = None) -> list[str]:
    proc = subprocess.run([terraform, "state", "list"], cwd=root / "terraform/envs" / env, capture_output=True,
                          text=True, timeout=300, env=tf_env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def newer_terraform() -> str:
    from e2e.conftest import find_terraform

    return find_terraform()[0]


def cli(root: Path, terraform: str, *args: str):
    return run_cli(root, "--terraform-bin", terraform, "--checkov-bin", str(CHECKOV), *args, tools=False)


# -- 4b: another tfplan with its hash in bundle.json ----------------------------------------------


def test_b_a_tfplan_made_from_other_code_is_refused_though_bundle_json_names_its_hash(project):
    module = project / "terraform/modules/kms/main.tf"
    original = module.read_text()
    module.write_text(original.replace('"alias/${var.name}"', '"alias/attacker-${var.name}"'))
    assert run_cli(project, "plan", "--env", "dev").code == 0
    evil = (bundle(project, "dev") / "tfplan").read_bytes()
    module.write_text(original)
    assert run_cli(project, "plan", "--env", "dev").code == 0  # the reviewed plan of the tree as it is
    swap_planfile(project, "dev", evil)

    run = run_cli(project, "apply", "--env", "dev", "--yes")
    assert run.code == 4, run.err
    assert "not made from the current tree" in run.err and "terraform/modules/kms/main.tf changed" in run.err
    assert not (project / "terraform/envs/dev/terraform.tfstate").exists()  # nothing was applied


def test_b_another_envs_tfplan_is_refused_by_its_variables(project):
    assert run_cli(project, "plan", "--env", "prod").code == 0  # prod's root is dev's main.tf (a symlink)
    evil = (bundle(project, "prod") / "tfplan").read_bytes()
    assert run_cli(project, "plan", "--env", "dev").code == 0
    swap_planfile(project, "dev", evil)

    run = run_cli(project, "apply", "--env", "dev", "--yes")
    assert run.code == 4, run.err
    assert "variable environment changed" in run.err and "variable logs changed" in run.err
    assert not (project / "terraform/envs/dev/terraform.tfstate").exists()


@pytest.mark.parametrize("option", ["-destroy", "-replace=terraform_data.marker"])
def test_b_a_tfplan_of_the_same_tree_made_with_other_options_is_refused(project, option):
    """Same configuration, variables and state, but a plan deployctl never makes for this bundle."""
    terraform = newer_terraform()
    main_tf = project / "terraform/envs/dev/main.tf"
    main_tf.write_text(main_tf.read_text() + '\nresource "terraform_data" "marker" {\n  input = local.prefix\n}\n')
    assert cli(project, terraform, "plan", "--env", "dev").code == 0
    assert cli(project, terraform, "apply", "--env", "dev", "--yes").code == 0
    env_toml = project / "terraform/envs/dev/env.toml"
    env_toml.write_text(env_toml.read_text().replace("retention_days = 3", "retention_days = 4"))
    assert cli(project, terraform, "plan", "--env", "dev").code == 0  # the reviewed plan: one output changes
    evil_file = project / "evil.tfplan"
    proc = subprocess.run([terraform, "plan", "-input=false", option, f"-out={evil_file}"],
                          cwd=project / "terraform/envs/dev", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    swap_planfile(project, "dev", evil_file.read_bytes())

    run = cli(project, terraform, "apply", "--env", "dev", "--yes")
    assert run.code == 4, run.err
    assert "not the plan deployctl made for this bundle" in run.err
    assert ("-destroy" if option == "-destroy" else "-replace") in run.err
    assert tf_state(project, "dev", terraform) == ["terraform_data.marker"]


# -- 4a and 4c: the destroy guard and the plan gate come from the tfplan ------------------------

AWS_ROOT = """\
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

variable "environment" {
  type = string
}

variable "app" {
  type = any
}

variable "aws" {
  type = any
}

variable "artifacts" {
  type = any
}

variable "protection" {
  type = any
}

variable "logs" {
  type = any
}

variable "lambda" {
  type = any
}

variable "functions" {
  type = any
}

variable "tables" {
  type = any
}

variable "parameters" {
  type = any
}

variable "api" {
  type = any
}

variable "alarms" {
  type = any
}

module "kms" {
  source = "../../modules/aws_kms"
}

resource "aws_dynamodb_table" "this" {
  name         = "fixture-${var.environment}-items"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "HASH_KEY"

  attribute {
    name = "HASH_KEY"
    type = "S"
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = module.kms.arn
  }

  point_in_time_recovery {
    enabled = true
  }
}
"""

KMS_MODULE = """\
resource "aws_kms_key" "this" {
  description             = "deployctl attack test"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

output "arn" {
  value = aws_kms_key.this.arn
}
"""


@pytest.fixture
def aws_project(tmp_path, aws_env, monkeypatch):
    """prod (protected) with a KMS key and a DynamoDB table under it, on the real aws provider and moto.

    The gate hard-fails CKV_AWS_119 (a table without a CMK) only: other findings are warnings."""
    from e2e.conftest import provider_config

    terraform = newer_terraform()
    for key, value in provider_config(tmp_path).items():
        monkeypatch.setenv(key, value)
    root = copy_project("project", tmp_path)
    (root / "policy").mkdir()
    (root / "policy/gate.toml").write_text('hard_fail = ["CKV_AWS_119"]\n')
    (root / "terraform/modules/aws_kms").mkdir()
    (root / "terraform/modules/aws_kms/main.tf").write_text(KMS_MODULE)
    prod_main = root / "terraform/envs/prod/main.tf"
    prod_main.unlink()  # was a symlink to dev's provider-free root
    prod_main.write_text(AWS_ROOT.replace("HASH_KEY", "id"))
    return root, terraform


def dynamodb(aws_env):
    import boto3

    return boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="eu-west-1")


def test_a_dangerous_emptied_in_summary_json_still_refuses_a_prod_table_replacement(aws_project, aws_env):
    root, terraform = aws_project
    assert (run := cli(root, terraform, "plan", "--env", "prod", "--foundation")).code == 0, run.err
    assert (run := cli(root, terraform, "apply", "--env", "prod", "--yes")).code == 0, run.err
    assert (run := cli(root, terraform, "plan", "--env", "prod")).code == 0, run.err
    assert (run := cli(root, terraform, "apply", "--env", "prod", "--yes")).code == 0, run.err
    prod_main = root / "terraform/envs/prod/main.tf"
    prod_main.write_text(AWS_ROOT.replace("HASH_KEY", "pk"))  # a new hash key forces a replacement
    run = cli(root, terraform, "plan", "--env", "prod", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["result"]["summary"]["dangerous"] == ["aws_dynamodb_table.this"]
    refused = cli(root, terraform, "apply", "--env", "prod", "--yes")
    assert refused.code == 4 and "destroys or replaces stateful resources" in refused.err

    # the attack: every record in the bundle says nothing dangerous happens
    b = bundle(root, "prod")
    summary = json.loads((b / "summary.json").read_text())
    summary["dangerous"] = []
    for change in summary["changes"]:
        change["dangerous"] = False
    (b / "summary.json").write_text(json.dumps(summary))
    meta = json.loads((b / "bundle.json").read_text())
    meta["summary"]["dangerous"] = []
    (b / "bundle.json").write_text(json.dumps(meta))

    run = cli(root, terraform, "apply", "--env", "prod", "--yes")
    assert run.code == 4, run.err
    assert "destroys or replaces stateful resources in prod: aws_dynamodb_table.this" in run.err
    table = dynamodb(aws_env).describe_table(TableName="fixture-prod-items")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]  # not replaced


VENDORED_MODULE = """\
# outside the source gate's targets (terraform/modules and the env root): only the plan gate
# sees this table, and fails it (CKV_AWS_28, no point-in-time recovery)
resource "aws_dynamodb_table" "vendored" {
  name         = "fixture-prod-vendored"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = false
  }
}
"""


def test_c_a_failed_plan_gate_marked_passed_in_bundle_json_is_refused(aws_project, aws_env):
    root, terraform = aws_project
    (root / "policy/gate.toml").write_text('hard_fail = ["CKV_AWS_28"]\n')
    (root / "vendor/table").mkdir(parents=True)
    (root / "vendor/table/main.tf").write_text(VENDORED_MODULE)
    prod_main = root / "terraform/envs/prod/main.tf"
    prod_main.write_text(prod_main.read_text() + '\nmodule "vendored" {\n  source = "../../../vendor/table"\n}\n')
    run = cli(root, terraform, "plan", "--env", "prod")
    assert run.code == 1 and "policy gate failed on the plan" in run.err and "CKV_AWS_28" in run.err, run.err
    b = bundle(root, "prod")
    meta = json.loads((b / "bundle.json").read_text())
    assert meta["gates"]["source"]["passed"] and not meta["gates"]["plan"]["passed"]
    # the attack: every record says the plan gate passed
    meta["gates"]["plan"]["passed"] = True
    meta["gates"]["plan"]["counts"] = {"failed": 0, "bad_skip": 0, "warning": 0, "waived": 0, "skipped": 0}
    (b / "bundle.json").write_text(json.dumps(meta))
    policy = json.loads((b / "policy.json").read_text())
    policy["plan"]["passed"] = True
    policy["plan"]["findings"] = []
    (b / "policy.json").write_text(json.dumps(policy))

    run = cli(root, terraform, "apply", "--env", "prod", "--yes")
    assert run.code == 4, run.err
    assert "fails the plan policy gate" in run.err and "CKV_AWS_28" in run.err
    assert dynamodb(aws_env).list_tables()["TableNames"] == []  # nothing was created


# -- 6: two applies at once ----------------------------------------------------------------------


def test_d_a_second_apply_fails_at_once_naming_the_holder(project):
    assert run_cli(project, "plan", "--env", "prod").code == 0
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    first = subprocess.Popen(
        [str(VENV_BIN / "deployctl"), "--root", str(project), "--terraform-bin", str(TERRAFORM),
         "--checkov-bin", str(CHECKOV), "apply", "--env", "prod"],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=project)
    os.close(slave)
    try:
        # the first apply holds the lock and waits at prod's confirmation prompt (no timing involved)
        seen = b""
        while b"[y/N]" not in seen:
            chunk = first.stderr.read1(4096)
            assert chunk, f"the first apply ended before asking: {seen.decode(errors='replace')}"
            seen += chunk
        second = run_cli(project, "apply", "--env", "prod", "--yes")
        assert second.code == 1, second.err
        (line,) = [ln for ln in second.err.splitlines() if ln.startswith("error:")]
        assert f"in use by deployctl apply (pid {first.pid} on host {socket.gethostname()}, since 20" in line
        assert not (bundle(project, "prod") / "applied.json").exists()
        os.write(master, b"n\n")
        first.communicate(timeout=300)
        assert first.returncode == 4  # not confirmed: nothing applied, the lock goes with it
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        os.close(master)
    third = run_cli(project, "apply", "--env", "prod", "--yes")
    assert third.code == 0, third.err


def test_d_a_stale_lock_of_a_dead_process_is_taken_over(project):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    work = project / ".deployctl" / "dev"
    work.mkdir(parents=True)
    (work / "lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "operation": "apply",
                                           "started": "2026-01-01T00:00:00+00:00"}))
    run = run_cli(project, "plan", "--env", "dev")
    assert run.code == 0, run.err
    assert f"took over the stale lock left by deployctl apply (pid {dead.pid}" in run.err
    assert (work / "lock").read_text() == ""  # released on exit


# -- 5: the workflow ---------------------------------------------------------------------------------


def test_e_the_artifacts_hold_no_plan_and_the_apply_job_replans_what_was_reviewed():
    wf = yaml.safe_load(WORKFLOW.read_text())
    for name, job in wf["jobs"].items():
        for step in job.get("steps", []):
            if not str(step.get("uses", "")).startswith("actions/upload-artifact"):
                continue
            paths = str(step["with"]["path"])
            assert "plan.json" not in paths and "tfplan" not in paths, (name, paths)
            assert not any(p.strip().rstrip("/").endswith("/plan") for p in paths.splitlines()), (name, paths)
    plan_runs = "\n".join(s.get("run", "") for s in wf["jobs"]["plan"]["steps"])
    assert "tfplan" not in plan_runs and "plan.json" not in plan_runs
    apply = wf["jobs"]["apply"]
    runs = [s.get("run", "") for s in apply["steps"]]
    replan = [i for i, r in enumerate(runs) if "deployctl plan" in r]
    applies = [i for i, r in enumerate(runs) if "deployctl apply" in r]
    assert replan and applies and replan[0] < applies[0], "the apply job must plan again before it applies"
    assert "--expect-changes" in runs[replan[0]]
    assert not any(".deployctl" in r for r in runs if "gh run download" in r)  # no bundle comes from the PR run


def test_e_the_replan_refuses_changes_that_were_not_reviewed(project, tmp_path):
    """The apply job's `plan --expect-changes`: the reviewed summary can only make it refuse."""
    assert run_cli(project, "plan", "--env", "dev").code == 0
    reviewed = tmp_path / "reviewed-summary.json"
    reviewed.write_text((bundle(project, "dev") / "summary.json").read_text())
    run = run_cli(project, "plan", "--env", "dev", "--expect-changes", str(reviewed))
    assert run.code == 0, run.err  # the merged commit plans exactly what was reviewed

    # a summary that differs from what the merged commit plans: refused, nothing appliable is left
    forged = json.loads(reviewed.read_text())
    forged["changes"].append({"address": "aws_dynamodb_table.ghost", "action": "delete"})
    reviewed.write_text(json.dumps(forged))
    run = run_cli(project, "plan", "--env", "dev", "--expect-changes", str(reviewed))
    assert run.code == 4, run.err
    assert "differs from the reviewed one" in run.err and "delete aws_dynamodb_table.ghost (reviewed, but not planned now)" in run.err
    assert not (bundle(project, "dev") / "bundle.json").exists()
    assert run_cli(project, "apply", "--env", "dev", "--yes").code == 4
