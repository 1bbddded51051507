"""Terraform faults turned into one clear line: state lock held, backend unreachable, account guard."""

from __future__ import annotations

import os
import stat

import pytest

from deployctl.config import Settings, load_env
from deployctl.errors import OperationFailed, Refused
from deployctl.infra import pipeline, terraform
from tf_helpers import copy_project

LOCK_ERROR = """\

Error: Error acquiring the state lock

Error message: operation error S3: PutObject, https response error StatusCode: 412, RequestID: X, api error
PreconditionFailed: At least one of the pre-conditions you specified did not hold
Lock Info:
  ID:        4f2c0b7e-1d3a-9e55-7c21-0a7d3c9b1e42
  Path:      deployctl-demo-tfstate-111111111111-eu-west-1/deployctl-demo/dev/terraform.tfstate
  Operation: OperationTypeApply
  Who:       alice@build-7
  Version:   1.10.5
  Created:   2025-01-15 09:58:12.402 +0000 UTC
  Info:

Terraform acquires a state lock to protect the state from being written
by multiple users at the same time. Please resolve the issue above and try
again. For most commands, you can disable locking with the "-lock=false"
flag, but this is not recommended.
"""

BACKEND_ERROR = """\

Error: Failed to get existing workspaces: S3 bucket "deployctl-demo-tfstate-111111111111-eu-west-1" does not exist.

The referenced S3 bucket must have been previously created. If the S3 bucket
was created within the last minute, please wait for a minute or two and try
again.

Error: NoSuchBucket: The specified bucket does not exist
"""


@pytest.fixture
def fake_terraform(tmp_path, monkeypatch):
    """A `terraform` first on PATH that prints a canned error (a real lock needs a real backend)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "lock.txt").write_text(LOCK_ERROR)
    (tmp_path / "backend.txt").write_text(BACKEND_ERROR)
    script = bindir / "terraform"
    script.write_text(f"""#!/bin/sh
case "$1" in
  version) echo '{{"terraform_version": "1.10.5"}}' ;;
  init) cat {tmp_path}/backend.txt >&2; exit 1 ;;
  *) cat {tmp_path}/lock.txt >&2; exit 1 ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return script


@pytest.fixture
def cfg(tmp_path):
    return load_env("dev", copy_project("project", tmp_path))


def test_state_lock_held_names_who_and_since_when(cfg, fake_terraform):
    tf = terraform.Terraform(cfg, Settings(terraform_bin="terraform"))
    with pytest.raises(OperationFailed) as err:
        tf.apply(cfg.work_dir / "tfplan")
    e = err.value
    assert "state is locked by alice@build-7 since 2025-01-15 09:58:12.402 +0000 UTC" in e.message
    assert "OperationTypeApply" in e.message and "4f2c0b7e-1d3a-9e55-7c21-0a7d3c9b1e42" in e.message
    assert "force-unlock 4f2c0b7e-1d3a-9e55-7c21-0a7d3c9b1e42" in e.hint


def test_backend_unreachable(cfg, fake_terraform):
    tf = terraform.Terraform(cfg, Settings(terraform_bin="terraform"))
    with pytest.raises(OperationFailed) as err:
        tf.init(cfg.env_dir / "backend.hcl")
    assert "state backend is unreachable" in err.value.message
    assert "does not exist" in err.value.message
    assert "deployctl bootstrap" in err.value.hint


def test_parse_lock_error_ignores_other_errors():
    assert terraform.parse_lock_error(BACKEND_ERROR) is None
    info = terraform.parse_lock_error(LOCK_ERROR)
    assert (info.who, info.operation) == ("alice@build-7", "OperationTypeApply")


def test_backend_and_provider_detection(tmp_path, cfg):
    assert terraform.backend_type(cfg.env_dir) == "local"
    assert not terraform.uses_aws(cfg.env_dir)  # the module calls are followed; none uses AWS
    root = tmp_path / "r"
    (root / "mod").mkdir(parents=True)
    (root / "env").mkdir()
    (root / "env" / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n# provider "aws" in a comment\n'
                                          'module "m" {\n  source = "../mod"\n}\n')
    assert terraform.backend_type(root / "env") == "s3"
    assert not terraform.uses_aws(root / "env")
    (root / "mod" / "main.tf").write_text('resource "aws_sqs_queue" "q" {}\n')
    assert terraform.uses_aws(root / "env")


def test_account_guard_with_sts(cfg, aws_env):
    assert pipeline.account_guard(cfg, needed=False) == {"checked": False, "reason": "the root uses no AWS provider"}
    ok = pipeline.account_guard(cfg, needed=True)  # the fixture env is configured for moto's account
    assert ok["checked"] and ok["account"] == "123456789012"
    cfg.data["aws"]["account_id"] = "999999999999"
    with pytest.raises(Refused) as err:
        pipeline.account_guard(cfg, needed=True)
    assert "999999999999" in err.value.message and "123456789012" in err.value.message
