"""deployctl bootstrap against the shared moto server (real HTTP, boto3's standard chain)."""

from __future__ import annotations

import json

import pytest

from tf_helpers import copy_project, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path):
    return copy_project("project", tmp_path)


def s3():
    import boto3

    return boto3.client("s3", region_name="eu-west-1")


def test_bootstrap_creates_a_locked_down_state_bucket_idempotently(project, aws_env):
    run = run_cli(project, "bootstrap", "--env", "dev", "--json", tools=False)
    assert run.code == 0, run.err
    result = json.loads(run.out)["result"]
    bucket = "fixture-tfstate-123456789012-eu-west-1"
    assert result["bucket"] == bucket and result["key"] == "fixture/dev/terraform.tfstate"
    assert result["steps"]["bucket"] == "created"
    assert set(result["steps"].values()) <= {"created", "updated"}

    client = s3()
    assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    pab = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(pab[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    policy = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
    deny = [st for st in policy["Statement"] if st["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"]["Bool"]["aws:SecureTransport"] == "false"

    # the first-deploy order is printed
    commands = [s["command"] for s in result["first_deploy"]]
    assert commands.index("deployctl plan --env dev --foundation") < commands.index("deployctl publish-lambda --env dev") \
        < commands.index("deployctl plan --env dev")

    run = run_cli(project, "bootstrap", "--env", "dev", "--json", tools=False)
    assert run.code == 0, run.err
    assert set(json.loads(run.out)["result"]["steps"].values()) == {"ok"}  # nothing to do the second time


def test_bootstrap_keeps_other_policy_statements_and_repairs_drift(project, aws_env):
    bucket = "fixture-tfstate-123456789012-eu-west-1"
    client = s3()
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    other = {"Sid": "AllowCiRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"},
             "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [other]}))
    run = run_cli(project, "bootstrap", "--env", "dev", "--json", tools=False)
    assert run.code == 0, run.err
    steps = json.loads(run.out)["result"]["steps"]
    assert steps["bucket"] == "ok" and steps["versioning"] == "updated" and steps["tls_only_policy"] == "updated"
    sids = [st.get("Sid") for st in json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]]
    assert sids == ["AllowCiRead", "DenyInsecureTransport"]


def test_bootstrap_refuses_the_wrong_account(project, aws_env):
    run = run_cli(project, "bootstrap", "--env", "awsroot", tools=False)  # configured for 111111111111
    assert run.code == 4
    assert "lives in account 111111111111" in run.err
    assert s3().list_buckets()["Buckets"] == []


def test_human_output_lists_the_first_deploy_order(project, aws_env):
    run = run_cli(project, "bootstrap", "--env", "dev", tools=False)
    assert run.code == 0, run.err
    assert "First deploy, in this order:" in run.out
    assert "1. deployctl bootstrap --env dev" in run.out and "7. deployctl apply --env dev" in run.out
    assert "{env}" not in run.out and "deployctl outputs --env dev" in run.out


@pytest.mark.parametrize(("region", "partition"), [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn"),
                                                   ("eu-west-1", "aws")])
def test_the_state_bucket_policy_uses_the_region_partition(project, aws_env, monkeypatch, region, partition):
    env_toml = project / "terraform/envs/dev/env.toml"
    env_toml.write_text(env_toml.read_text() + f'\n[aws]\nregion = "{region}"\n')
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    run = run_cli(project, "bootstrap", "--env", "dev", "--json", tools=False)
    assert run.code == 0, run.err
    bucket = json.loads(run.out)["result"]["bucket"]
    import boto3

    policy = json.loads(boto3.client("s3", region_name=region).get_bucket_policy(Bucket=bucket)["Policy"])
    resources = [r for st in policy["Statement"] for r in st["Resource"]]
    assert resources == [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"]


def test_an_unreachable_endpoint_is_one_line_after_bounded_retries(project, aws_env, monkeypatch):
    """bootstrap uses the shared client: bounded attempts, one translated line, no traceback."""
    from conftest import free_port

    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    run = run_cli(project, "bootstrap", "--env", "dev", "--json", tools=False)
    assert run.code == 1, run.err
    error = json.loads(run.out)["error"]
    assert "network error talking to AWS" in error["message"] and "after 2 attempt(s)" in error["message"]
    assert "Traceback" not in run.err and len([ln for ln in run.err.splitlines() if ln.startswith("error:")]) == 1
