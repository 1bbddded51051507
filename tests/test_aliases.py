"""deployctl promote / rollback against a real moto server over HTTP."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from deployctl.artifacts import aliases
from deployctl.cli import cli
from deployctl.config import Settings, load_env
from deployctl.errors import OperationFailed, Refused, UsageError
from test_publish import use_account

FIXTURE = Path(__file__).parent / "fixtures" / "lambda_src_demo"


def code(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("svc/alpha.py", f"def handler(event, context):\n    return {n}\n")
    return buf.getvalue()


def function_with_versions(env: str, n: int = 3) -> str:
    """demo-<env>-alpha with versions 1..n, live -> 1 and staging -> n (what deploys leave behind)."""
    iam = boto3.client("iam")
    role = iam.create_role(RoleName=f"demo-{env}-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }))["Role"]["Arn"]
    lam = boto3.client("lambda")
    name = f"demo-{env}-alpha"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="svc.alpha.handler",
                        Code={"ZipFile": code(1)}, Publish=True)
    for i in range(2, n + 1):
        lam.update_function_code(FunctionName=name, ZipFile=code(i))
        lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="managed by terraform")
    lam.create_alias(FunctionName=name, Name="staging", FunctionVersion=str(n))
    return name


def live(name: str) -> dict:
    a = boto3.client("lambda").get_alias(FunctionName=name, Name="live")
    weights = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return {"version": a["FunctionVersion"], "weights": weights, "history": aliases.parse_history(a.get("Description"))}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def aws_env(aws_env, monkeypatch):
    """conftest's moto env, with credentials of the dev fixture's account (the account guard checks it)."""
    use_account(monkeypatch, "111111111111")
    return dict(os.environ)


@pytest.fixture
def dev(project, aws_env, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    return load_env("dev", project), function_with_versions("dev")


def invoke(args: list[str], root: Path):
    env = {"DEPLOYCTL_ROOT": str(root)}
    return CliRunner().invoke(cli, args, obj=Settings.from_environ(env), env=env, catch_exceptions=False)


def test_promote_points_live_at_staging_and_records_history(dev):
    cfg, name = dev
    result = aliases.promote(cfg, "alpha")
    assert result["before"] == {"version": "1", "weights": {}}
    assert result["after"] == {"version": "3", "weights": {}}
    assert result["changed"] is True
    assert live(name) == {"version": "3", "weights": {}, "history": ["1"]}
    assert boto3.client("lambda").get_alias(FunctionName=name, Name="staging")["FunctionVersion"] == "3"


def test_weighted_promote_then_complete_then_rollback(dev):
    cfg, name = dev
    canary = aliases.promote(cfg, "alpha", weight=10)
    assert canary["after"] == {"version": "1", "weights": {"3": 0.1}}
    assert live(name) == {"version": "1", "weights": {"3": 0.1}, "history": ["1"]}
    aliases.promote(cfg, "alpha", weight=50)
    assert live(name) == {"version": "1", "weights": {"3": 0.5}, "history": ["1"]}
    aliases.promote(cfg, "alpha")
    assert live(name) == {"version": "3", "weights": {}, "history": ["1"]}
    back = aliases.rollback(cfg, "alpha")
    assert back["before"] == {"version": "3", "weights": {}} and back["after"] == {"version": "1", "weights": {}}
    assert live(name) == {"version": "1", "weights": {}, "history": []}
    with pytest.raises(Refused, match="no earlier live version"):
        aliases.rollback(cfg, "alpha")
    assert live(name)["version"] == "1"


def test_rollback_during_a_canary_drops_the_canary(dev):
    cfg, name = dev
    aliases.promote(cfg, "alpha", weight=25)
    aliases.rollback(cfg, "alpha")
    assert live(name) == {"version": "1", "weights": {}, "history": []}


def test_history_is_a_stack(dev):
    cfg, name = dev
    aliases.promote(cfg, "alpha", version="2")
    aliases.promote(cfg, "alpha", version="3")
    assert live(name) == {"version": "3", "weights": {}, "history": ["2", "1"]}
    aliases.rollback(cfg, "alpha")
    assert live(name)["version"] == "2"
    aliases.rollback(cfg, "alpha")
    assert live(name) == {"version": "1", "weights": {}, "history": []}


def test_history_fits_the_description_limit():
    text = aliases.render_history([str(10000 + i) for i in range(100)])
    assert len(text) <= 256 and aliases.parse_history(text)[0] == "10000"
    assert aliases.parse_history("managed by terraform") == []


def test_promote_edge_cases(dev):
    cfg, name = dev
    aliases.promote(cfg, "alpha")
    again = aliases.promote(cfg, "alpha")
    assert again["changed"] is False and live(name)["history"] == ["1"]
    with pytest.raises(UsageError, match="already live"):
        aliases.promote(cfg, "alpha", weight=10)
    with pytest.raises(OperationFailed, match="version 9 of function"):
        aliases.promote(cfg, "alpha", version="9")
    with pytest.raises(UsageError, match="published version number"):
        aliases.promote(cfg, "alpha", version="$LATEST")
    with pytest.raises(UsageError, match="unknown function 'nope'"):
        aliases.promote(cfg, "nope")
    with pytest.raises(OperationFailed, match="function 'demo-dev-beta' does not exist"):
        aliases.promote(cfg, "beta")
    assert live(name) == {"version": "3", "weights": {}, "history": ["1"]}


def test_cli_prints_before_and_after(dev, project):
    _cfg, name = dev
    result = invoke(["promote", "--env", "dev", "--function", "alpha", "--weight", "10"], project)
    assert result.exit_code == 0, result.output
    assert "before: v1" in result.stdout and "after:  v1 +10% v3" in result.stdout
    result = invoke(["rollback", "--env", "dev", "--function", "alpha", "--json"], project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["result"]
    assert data["action"] == "rollback" and data["after"] == {"version": "1", "weights": {}}


def test_prod_needs_confirmation(project, aws_env, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    use_account(monkeypatch, "333333333333")  # the prod fixture's account
    name = function_with_versions("prod")
    result = invoke(["promote", "--env", "prod", "--function", "alpha"], project)
    assert result.exit_code == 4 and "needs confirmation" in result.stderr and "--yes" in result.stderr
    assert live(name) == {"version": "1", "weights": {}, "history": []}
    result = invoke(["promote", "--env", "prod", "--function", "alpha", "--yes"], project)
    assert result.exit_code == 0, result.output
    assert live(name)["version"] == "3"
    result = invoke(["rollback", "--env", "prod", "--function", "alpha"], project)
    assert result.exit_code == 4 and live(name)["version"] == "3"
    result = invoke(["rollback", "--env", "prod", "--function", "alpha", "-y"], project)
    assert result.exit_code == 0 and live(name)["version"] == "1"


def test_promote_and_rollback_refuse_credentials_of_another_account(dev, project, monkeypatch):
    """Same function names in every account: prod's promote with dev credentials must not move dev's live."""
    _cfg, name = dev
    invoke(["promote", "--env", "dev", "--function", "alpha"], project)
    assert live(name) == {"version": "3", "weights": {}, "history": ["1"]}
    use_account(monkeypatch, "333333333333")
    function_with_versions("dev")  # a look-alike function in the other account
    for args in (["promote", "--env", "dev", "--function", "alpha", "--version", "2"],
                 ["rollback", "--env", "dev", "--function", "alpha"]):
        result = invoke(args, project)
        assert result.exit_code == 4, result.output
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "account 333333333333" in errors[0] and "lives in account 111111111111" in errors[0]
        assert live(name) == {"version": "1", "weights": {}, "history": []}  # the other account's: untouched
    use_account(monkeypatch, "111111111111")
    assert live(name) == {"version": "3", "weights": {}, "history": ["1"]}


def test_bad_flag_values_are_one_line_usage_errors(dev, project):
    for args, needle in ((["--weight", "0"], "'--weight': 0 is not in the range"),
                         (["--weight", "100"], "'--weight': 100 is not in the range"),
                         (["--version", "abc"], "not a published version number: 'abc'")):
        result = invoke(["promote", "--env", "dev", "--function", "alpha", *args, "--json"], project)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and needle in result.stderr
        assert json.loads(result.stdout)["error"]["error"] == "usage"
    result = invoke(["promote", "--env", "dev"], project)
    assert result.exit_code == 2 and result.stderr == "error: Missing option '--function'. (see 'deployctl promote --help')\n"
    assert live(dev[1])["version"] == "1"


def test_promote_imports_no_packaging_or_supply_chain_code():
    """promote's process loads the light Lambda reads, not publish's packaging, SBOM and provenance code."""
    import subprocess
    import sys

    code = ("import sys; import deployctl.commands.artifacts, deployctl.artifacts.aliases, deployctl.delivery.rollout; "
            "print(sorted(m for m in sys.modules if m.startswith(('deployctl.artifacts.publish', "
            "'deployctl.artifacts.packaging', 'deployctl.artifacts.attest', 'cyclonedx', 'in_toto_attestation'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]", out
