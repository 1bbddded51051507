"""Secure parameters: deployctl secret ensure/rotate against a real moto server over HTTP,
the CLI in real subprocesses, and the users handler reading the generated key.

The project is a copy of the repository's own env config (terraform/envs); the
credentials are an assumed role in the env's account (the account guard checks it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest

from conftest import ROOT
from deployctl import naming
from deployctl.config import load_env
from deployctl.errors import ConfigError, OperationFailed, Refused
from deployctl.infra import render, secrets
from deployctl.ui import UI

DEV_ACCOUNT = "111111111111"
PROD_ACCOUNT = "333333333333"
PARAM = "/dev/deployctl-demo/pagination-key"


def use_account(monkeypatch, account: str) -> None:
    """Credentials of a principal in ``account`` (moto keeps one world per account)."""
    creds = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/deployctl-tests",
                                            RoleSessionName="deployctl-tests")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def foundation(env: str = "dev") -> str:
    """What the foundation apply creates that secrets need: the env's CMK and its alias."""
    kms = boto3.client("kms")
    key = kms.create_key(Description=f"deployctl-demo-{env}")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/deployctl-demo-{env}", TargetKeyId=key)
    return key


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(ROOT / "terraform" / "envs", root / "terraform" / "envs",
                    ignore=shutil.ignore_patterns(".terraform*", "*.tf", "deployctl.auto.tfvars.json", "backend.hcl"))
    return root


@pytest.fixture
def dev(project, aws_env, monkeypatch):
    use_account(monkeypatch, DEV_ACCOUNT)
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    foundation()
    return load_env("dev", project)


def ssm():
    return boto3.client("ssm", region_name="eu-west-1")


def stored() -> dict:
    return ssm().get_parameter(Name=PARAM, WithDecryption=True)["Parameter"]


def cli(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """deployctl in a real subprocess (inherits the moto endpoint and the assumed-role credentials)."""
    env = {**os.environ, "DEPLOYCTL_ROOT": str(root), "PYTHONPATH": str(ROOT / "cli")}
    env.pop("DEPLOYCTL_ENV", None)
    return subprocess.run([sys.executable, "-m", "deployctl", *args], capture_output=True, text=True, env=env,
                          cwd=root, input=stdin, timeout=120)


def files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


# -- ensure -------------------------------------------------------------------------------------


def test_ensure_creates_a_securestring_under_the_cmk_then_keeps_it(dev):
    first = secrets.ensure_secrets(dev, UI())
    assert first["created"] == ["pagination-key"] and first["kept"] == []
    assert first["kms_key"] == "alias/deployctl-demo-dev" == naming.kms_alias(dev)
    meta = ssm().describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [PARAM]}])["Parameters"][0]
    assert meta["Type"] == "SecureString" and meta["KeyId"] == "alias/deployctl-demo-dev" and meta["Tier"] == "Standard"
    tags = {t["Key"]: t["Value"] for t in ssm().list_tags_for_resource(ResourceType="Parameter", ResourceId=PARAM)["TagList"]}
    assert tags["ManagedBy"] == "deployctl" and tags["Environment"] == "dev" and tags["deployctl:generator"] == "random32"
    param = stored()
    value, version = param["Value"], param["Version"]
    assert len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == 32  # 32 random bytes, base64url
    assert len(value) == 43 and "=" not in value
    assert value not in json.dumps(first)

    second = secrets.ensure_secrets(dev, UI())
    assert second["kept"] == ["pagination-key"] and second["created"] == []
    assert second["secrets"][0]["status"] == "kept" and second["secrets"][0]["version"] == version
    assert stored()["Value"] == value and stored()["Version"] == version


def test_ensure_replaces_the_old_terraform_placeholder_and_keeps_a_real_value(dev):
    ssm().put_parameter(Name=PARAM, Value="set-out-of-band", Type="SecureString", KeyId="alias/deployctl-demo-dev")
    result = secrets.ensure_secrets(dev, UI())
    assert result["replaced_placeholder"] == ["pagination-key"]
    assert len(stored()["Value"]) == 43 and stored()["Version"] == 2
    real = stored()["Value"]
    assert secrets.ensure_secrets(dev, UI())["kept"] == ["pagination-key"]
    assert stored()["Value"] == real


def test_ensure_needs_the_foundation_key(project, aws_env, monkeypatch):
    use_account(monkeypatch, DEV_ACCOUNT)
    with pytest.raises(OperationFailed, match="alias/deployctl-demo-dev.*does not exist") as exc:
        secrets.ensure_secrets(load_env("dev", project), UI())
    assert "--foundation" in exc.value.hint
    assert ssm().describe_parameters()["Parameters"] == []


def test_ensure_refuses_credentials_of_another_account(project, aws_env, monkeypatch):
    use_account(monkeypatch, PROD_ACCOUNT)
    foundation()
    run = cli(project, "secret", "ensure", "--env", "dev")
    assert run.returncode == 4, run.stderr
    assert "333333333333" in run.stderr and "111111111111" in run.stderr
    assert ssm().describe_parameters()["Parameters"] == []


def test_a_parameter_set_by_hand_is_reported_missing_not_generated(project, aws_env, monkeypatch):
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text() + '\n[parameters.vendor-api-key]\nsecure = true\ngenerate = "none"\n')
    use_account(monkeypatch, DEV_ACCOUNT)
    foundation()
    result = secrets.ensure_secrets(load_env("dev", project), UI())
    assert result["missing"] == ["vendor-api-key"] and result["created"] == ["pagination-key"]
    assert "put-parameter" in result["secrets"][1]["warning"]
    names = [p["Name"] for p in ssm().describe_parameters()["Parameters"]]
    assert names == [PARAM]


def test_generate_and_invalidates_belong_to_secure_parameters_only(project):
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text().replace('[parameters.page-size]\n', '[parameters.page-size]\ngenerate = "random32"\n'))
    with pytest.raises(ConfigError, match="parameters.page-size.generate"):
        load_env("dev", project)


# -- rotate -------------------------------------------------------------------------------------


def test_rotate_replaces_the_value_and_says_what_it_invalidates(dev):
    secrets.ensure_secrets(dev, UI())
    before = stored()
    result = secrets.rotate_secret(dev, "pagination-key", UI())
    after = stored()
    assert after["Value"] != before["Value"] and len(after["Value"]) == 43
    assert result["version"] == after["Version"] == before["Version"] + 1
    assert result["previous_version"] == before["Version"]
    assert result["invalidates"] == "outstanding nextToken cursors issued before the rotation"
    assert before["Value"] not in json.dumps(result) and after["Value"] not in json.dumps(result)
    meta = ssm().describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [PARAM]}])["Parameters"][0]
    assert meta["KeyId"] == "alias/deployctl-demo-dev"


def test_rotate_of_an_unknown_or_absent_parameter(dev):
    with pytest.raises(Exception, match="not a secure parameter") as exc:
        secrets.rotate_secret(dev, "page-size", UI())
    assert exc.value.exit_code == 2
    with pytest.raises(OperationFailed, match="does not exist yet"):
        secrets.rotate_secret(dev, "pagination-key", UI())


def test_prod_rotation_needs_confirmation(project, aws_env, monkeypatch):
    use_account(monkeypatch, PROD_ACCOUNT)
    foundation("prod")
    assert cli(project, "secret", "ensure", "--env", "prod").returncode == 0
    name = "/prod/deployctl-demo/pagination-key"
    value = ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    refused = cli(project, "secret", "rotate", "--env", "prod", "pagination-key")
    assert refused.returncode == 4 and "--yes" in refused.stderr
    assert ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == value
    done = cli(project, "secret", "rotate", "--env", "prod", "pagination-key", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] != value


# -- never leaks -------------------------------------------------------------------------------


def test_values_appear_in_no_output_and_no_file(dev, project):
    outputs = []
    for args in (["secret", "ensure", "--env", "dev"], ["secret", "ensure", "--env", "dev", "--json"],
                 ["--debug", "secret", "ensure", "--env", "dev", "--json"]):
        run = cli(project, *args)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout + run.stderr)
    doc = json.loads(run.stdout)
    assert doc["command"] == "secret ensure" and doc["ok"] is True
    assert [s["status"] for s in doc["result"]["secrets"]] == ["kept"]
    values = [stored()["Value"]]

    for args in (["secret", "rotate", "--env", "dev", "pagination-key"],
                 ["--debug", "secret", "rotate", "--env", "dev", "pagination-key", "--json"]):
        run = cli(project, *args)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout + run.stderr)
        values.append(stored()["Value"])
    assert "invalidated: outstanding nextToken cursors issued before the rotation" in outputs[3]
    assert json.loads(run.stdout)["result"]["invalidates"].startswith("outstanding nextToken cursors")
    # a failing run with --debug (traceback) still shows no value
    run = cli(project, "--debug", "secret", "rotate", "--env", "dev", "nope", "--json")
    assert run.returncode == 2 and "Traceback" in run.stderr
    failed = json.loads(run.stdout)
    assert failed["command"] == "secret rotate" and failed["ok"] is False and failed["error"]["error"] == "usage"
    outputs.append(run.stdout + run.stderr)

    rendered = render.render(dev, allow_missing_artifacts=True)
    tfvars = rendered.tfvars_path.read_text()
    assert json.loads(tfvars)["parameters"]["pagination-key"] == {
        "description": "HMAC key signing the users API nextToken", "secure": True}
    assert len(set(values)) == 3
    for value in values:
        assert all(value not in text for text in outputs)
        assert files_containing(project, value) == []
        assert value not in tfvars
    module = "".join(p.read_text() for p in (ROOT / "terraform/modules/app_config").glob("*.tf"))
    # Terraform neither creates nor reads a secure value: no SecureString resource, no data source
    assert '"SecureString"' not in module and 'data "aws_ssm_parameter"' not in module


# -- delete (destroy) ---------------------------------------------------------------------------


def test_delete_secrets_for_destroy_and_prod_protection(dev, project, monkeypatch):
    secrets.ensure_secrets(dev, UI())
    ssm().put_parameter(Name="/dev/deployctl-demo/page-size", Value="20", Type="String")
    result = secrets.delete_secrets(dev, UI())
    assert result["deleted"] == ["pagination-key"] and result["absent"] == []
    assert [p["Name"] for p in ssm().describe_parameters()["Parameters"]] == ["/dev/deployctl-demo/page-size"]
    assert secrets.delete_secrets(dev, UI())["absent"] == ["pagination-key"]
    with pytest.raises(Refused, match="deletion_protection"):
        secrets.delete_secrets(load_env("prod", project), UI())


# -- the users handler with the generated key -------------------------------------------------

HANDLER_RUN = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from users import handler
    query = {"limit": "1"}
    if sys.argv[2]:
        query["nextToken"] = sys.argv[2]
    event = {"resource": "/users", "path": "/users", "httpMethod": "GET", "headers": {},
             "queryStringParameters": query, "pathParameters": None, "body": None,
             "requestContext": {"requestId": "r-1"}}
    out = handler.handler(event, None)
    print(json.dumps({"status": out["statusCode"], "body": json.loads(out["body"])}))
""")


def fresh_handler(cfg, token: str = "") -> tuple[dict, str]:
    """One cold start of the users handler in its own process (its own import, its own config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLE_", "PARAMETER_"))}
    env.update(naming.function_environment(cfg, "users"))
    proc = subprocess.run([sys.executable, "-c", HANDLER_RUN, str(ROOT / "lambda_src"), token],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    *logs, result = proc.stdout.strip().splitlines()  # the handler logs JSON lines to stdout, like in Lambda
    return json.loads(result), "\n".join(logs)


@pytest.fixture
def users_table(dev):
    from deployctl.local.server import create_tables

    ddb = boto3.client("dynamodb", region_name="eu-west-1")
    create_tables(dev, ddb)
    for i in range(3):
        ddb.put_item(TableName=naming.table_name(dev, "users"),
                     Item={"UserId": {"S": f"00000000-0000-4000-8000-00000000000{i}"}, "name": {"S": f"u{i}"}})
    ssm().put_parameter(Name="/dev/deployctl-demo/page-size", Value="20", Type="String")
    return dev


def test_two_cold_starts_accept_each_others_cursors_with_the_generated_key(users_table):
    secrets.ensure_secrets(users_table, UI())
    first, _ = fresh_handler(users_table)
    assert first["status"] == 200 and first["body"]["count"] == 1
    token = first["body"]["nextToken"]
    second, _ = fresh_handler(users_table, token)
    assert second["status"] == 200, second
    assert second["body"]["users"][0]["UserId"] != first["body"]["users"][0]["UserId"]


@pytest.mark.parametrize("placeholder", [None, "set-out-of-band"])
def test_a_deployed_function_without_a_real_key_fails_loudly(users_table, placeholder):
    if placeholder:
        ssm().put_parameter(Name=PARAM, Value=placeholder, Type="SecureString")
    result, logs = fresh_handler(users_table)
    assert result["status"] == 500 and result["body"]["message"] == "internal error"
    records = [json.loads(line) for line in logs.splitlines()]
    (line,) = [r for r in records if r["message"] == "pagination.key_unavailable"]
    assert line["level"] == "ERROR" and line["parameter"] == "pagination-key"
    assert line["reason"] == ("missing" if placeholder is None else "shorter than 16 characters (a placeholder)")
    assert "deployctl secret ensure" in line["fix"]
    assert "set-out-of-band" not in logs
