"""deployctl status and deployctl prune against a real moto server over HTTP, through the real CLI."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from deployctl.artifacts import buildcache
from deployctl.cli import cli
from deployctl.config import Settings, load_env
from deployctl.infra import records
from test_aliases import code, function_with_versions
from test_publish import use_account

FIXTURE = Path(__file__).parent / "fixtures" / "lambda_src_demo"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def aws_env(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    use_account(monkeypatch, "111111111111")
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    return dict(os.environ)


def run(args: list[str], root: Path, stdin: str | None = None):
    env = {"DEPLOYCTL_ROOT": str(root)}
    return CliRunner().invoke(cli, args, obj=Settings.from_environ(env), env=env, input=stdin,
                              catch_exceptions=False)


def write_manifest(root: Path, env: str, functions: dict[str, str]) -> None:
    """The manifest with each function's code at ``code_sha256`` (base64, as Lambda reports it)."""
    entries = {fn: {"bucket": "demo-artifacts-bucket", "key": f"lambda/{fn}/{base64.b64decode(sha).hex()}.zip",
                    "version_id": "v1", "sha256": base64.b64decode(sha).hex(), "code_sha256": sha, "size": 1,
                    "published_at": "2026-01-01T00:00:00Z"}
               for fn, sha in functions.items()}
    (root / f"terraform/envs/{env}/artifacts.json").write_text(
        json.dumps({"schema": 1, "env": env, "functions": entries, "layers": {}}), encoding="utf-8")


# -- status -------------------------------------------------------------------------------------------


def test_status_shows_code_versions_weights_alarms_apply_and_drift(project, aws_env):
    name = function_with_versions("dev", 3)  # live -> 1, staging -> 3
    lam = boto3.client("lambda")
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}})
    sha = {v: lam.get_function_configuration(FunctionName=name, Qualifier=v)["CodeSha256"] for v in ("1", "3")}
    assert sha["1"] != sha["3"]
    write_manifest(project, "dev", {"alpha": sha["3"]})  # the manifest has version 3's code
    cw = boto3.client("cloudwatch")
    for alarm in ("demo-dev-lambda-alpha-errors", "demo-dev-api-5xx", "other-app-in-alarm"):
        cw.put_metric_alarm(AlarmName=alarm, Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum",
                            Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    for alarm in ("demo-dev-lambda-alpha-errors", "other-app-in-alarm"):
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    cfg = load_env("dev", project)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=cfg.state_bucket(), CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=cfg.state_bucket(), Key=cfg.state_key(), Body=b"{}")
    records.record_apply(cfg, status="applied", bundle_meta={"fingerprint": "f" * 64}, account={"arn": "arn:x"})
    records.record_drift(cfg, [{"address": "module.t.aws_dynamodb_table.this"}])

    res = run(["status", "--env", "dev", "--json"], project)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["command"] == "status" and doc["env"] == "dev"
    st = doc["result"]
    alpha = st["functions"]["alpha"]
    assert alpha["deployed"] and alpha["manifest_code_sha256"] == sha["3"]
    live, staging = alpha["live"], alpha["staging"]
    assert live["version"] == "1" and live["weights"] == {"3": 0.1}
    assert [(r["version"], r["weight"]) for r in live["routes"]] == [("1", 0.9), ("3", 0.1)]
    assert live["code_sha256"] == sha["1"] and live["matches_manifest"] is False
    assert live["routes"][1]["matches_manifest"] is True
    assert staging["version"] == "3" and staging["matches_manifest"] is True
    assert st["functions"]["beta"]["deployed"] is False  # not deployed: said, not an error
    assert [a["name"] for a in st["alarms"]] == ["demo-dev-lambda-alpha-errors"]
    assert st["rollouts"] == [] and alpha["rollouts"] == []
    assert st["last_apply"]["state"]["key"] == cfg.state_key()
    assert st["last_apply"]["record"]["principal"] == "arn:x" and st["last_apply"]["record"]["status"] == "applied"
    assert st["last_drift"]["drift"] is True

    human = run(["status", "--env", "dev"], project)
    assert human.exit_code == 0
    assert "v1 90% " + sha["1"][:12] + " !=" in human.stdout
    assert "demo-dev-lambda-alpha-errors" in human.stdout and "other-app" not in human.stdout
    assert "DRIFT in 1 resource(s)" in human.stdout
    assert len(human.stdout.splitlines()) <= 24  # one screen


def test_status_of_an_env_never_deployed_or_checked(project, aws_env):
    res = run(["status", "--env", "dev", "--json"], project)
    st = json.loads(res.stdout)["result"]
    assert res.exit_code == 0
    assert all(not f["deployed"] for f in st["functions"].values())
    assert st["last_apply"] == {"state": None, "record": None} and st["last_drift"] is None


def test_status_refuses_another_accounts_credentials(project, aws_env, monkeypatch):
    use_account(monkeypatch, "222222222222")
    res = run(["status", "--env", "dev", "--json"], project)
    assert res.exit_code == 4 and json.loads(res.stdout)["error"]["error"] == "refused"


# -- prune --------------------------------------------------------------------------------------------


def versions(name: str) -> list[str]:
    vs = boto3.client("lambda").list_versions_by_function(FunctionName=name)["Versions"]
    return sorted((v["Version"] for v in vs if v["Version"].isdigit()), key=int)


def test_prune_keeps_alias_weight_history_and_the_newest_n(project, aws_env):
    name = function_with_versions("dev", 9)  # live -> 1, staging -> 9
    lam = boto3.client("lambda")
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                     RoutingConfig={"AdditionalVersionWeights": {"4": 0.1}},
                     Description=json.dumps({"deployctl_previous": ["3"]}))
    res = run(["prune", "--env", "dev", "--keep", "2", "--dry-run", "--json"], project)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)["result"]
    alpha = data["functions"]["alpha"]
    assert alpha["delete"] == ["1", "5", "6", "7"]
    assert set(alpha["kept"]) == {"2", "3", "4", "8", "9"}
    assert "alias live history (rollback)" in alpha["kept"]["3"] and "alias live canary weight" in alpha["kept"]["4"]
    assert data["dry_run"] and data["deleted"] == [] and versions(name) == [str(i) for i in range(1, 10)]

    res = run(["prune", "--env", "dev", "--keep", "2", "--json"], project)
    data = json.loads(res.stdout)["result"]
    assert res.exit_code == 0
    assert sorted(data["deleted"]) == sorted(f"{name}:{v}" for v in ("1", "5", "6", "7"))
    assert versions(name) == ["2", "3", "4", "8", "9"]
    # a second run has nothing left to delete
    again = json.loads(run(["prune", "--env", "dev", "--keep", "2", "--json"], project).stdout)["result"]
    assert again["to_delete"] == 0 and again["deleted"] == []


def test_prune_keep_comes_from_config(project, aws_env):
    (project / "terraform/envs/dev/env.toml").write_text(
        (project / "terraform/envs/dev/env.toml").read_text() + "\n[lambda]\nkeep_versions = 3\n")
    name = function_with_versions("dev", 6)  # live 1, staging 6
    res = run(["prune", "--env", "dev", "--json"], project)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["result"]["keep"] == 3
    assert versions(name) == ["1", "4", "5", "6"]
    bad = project / "terraform/envs/dev/env.toml"
    bad.write_text(bad.read_text().replace("keep_versions = 3", "keep_versions = 0"))
    res = run(["prune", "--env", "dev", "--json"], project)
    assert res.exit_code == 2 and "lambda.keep_versions" in json.loads(res.stdout)["error"]["message"]


def test_prune_deletes_unused_layer_versions_but_not_attached_ones(project, aws_env):
    (project / "terraform/envs/defaults.toml").write_text(
        (project / "terraform/envs/defaults.toml").read_text()
        + '\n[layers.shared]\nrequirements = "layers/shared/requirements.txt"\n')
    req = project / "lambda_src/layers/shared/requirements.txt"
    req.parent.mkdir(parents=True, exist_ok=True)
    req.write_text("")
    lam = boto3.client("lambda")
    arns = [lam.publish_layer_version(LayerName="demo-dev-shared", Content={"ZipFile": code(i)})["LayerVersionArn"]
            for i in range(1, 6)]
    name = function_with_versions("dev", 2)
    lam.update_function_configuration(FunctionName=name, Layers=[arns[0]])  # $LATEST uses layer version 1
    res = run(["prune", "--env", "dev", "--keep", "2", "--json"], project)
    assert res.exit_code == 0, res.output
    layer = json.loads(res.stdout)["result"]["layers"]["shared"]
    assert layer["delete"] == ["2", "3"]
    left = [v["Version"] for v in lam.list_layer_versions(LayerName="demo-dev-shared")["LayerVersions"]]
    assert sorted(left) == [1, 4, 5]


def test_prune_in_prod_asks_and_refuses_without_an_answer(project, aws_env, monkeypatch):
    use_account(monkeypatch, "333333333333")
    name = function_with_versions("prod", 4)
    res = run(["prune", "--env", "prod", "--keep", "1", "--json"], project)
    assert res.exit_code == 4 and json.loads(res.stdout)["error"]["error"] == "refused"
    assert versions(name) == ["1", "2", "3", "4"]
    res = run(["prune", "--env", "prod", "--keep", "1", "--yes", "--json"], project)
    assert res.exit_code == 0 and versions(name) == ["1", "4"]


def test_build_cache_is_trimmed_to_the_newest_entries(tmp_path):
    cache = tmp_path / "cache"
    old = time.time() - 10 * 86400
    for kind in ("package", "layers"):
        (cache / kind).mkdir(parents=True)
        for i in range(6):
            for ext in (".zip", ".json"):
                p = cache / kind / f"h{i}{ext}"
                p.write_bytes(b"x" * 10)
                os.utime(p, (old + i, old + i))
    (cache / "deps" / "tree0" / "pkg").mkdir(parents=True)
    (cache / "deps" / "tree0" / "pkg" / "m.py").write_text("x")
    os.utime(cache / "deps" / "tree0", (old, old))
    out = buildcache.trim(cache, keep=2, protect=["h1"])
    assert sorted(p.name for p in (cache / "package").iterdir()) == sorted(
        f"h{i}{e}" for i in (1, 4, 5) for e in (".zip", ".json"))
    assert "package/h0" in out["removed"] and "layers/h0" in out["removed"] and out["bytes_freed"] > 0
    assert (cache / "deps" / "tree0").is_dir()  # the newest 2 of its kind
    # anything changed within the last hour stays whatever the count: a concurrent build may read it
    for p in (cache / "layers").iterdir():
        os.utime(p, None)
    removed = buildcache.trim(cache, keep=1)["removed"]
    assert sorted(removed) == ["package/h1", "package/h4"]  # the old ones beyond 1; no fresh layer entry
    assert len(list((cache / "layers").iterdir())) == 6


@pytest.mark.slow
def test_apply_records_when_which_commit_and_who_for_status(tmp_path, monkeypatch):
    """The real plan -> apply on the provider-free fixture root leaves the record status reads."""
    from tf_helpers import copy_project, run_cli

    project = copy_project("project", tmp_path)
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert run_cli(project, "plan", "--env", "dev").code == 0
    assert records.last_apply(load_env("dev", project)) is None  # a plan is not an apply
    run = run_cli(project, "apply", "--env", "dev", "--json")
    assert run.code == 0, run.err
    rec = records.last_apply(load_env("dev", project))
    assert rec["status"] == "applied" and rec["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert rec["actor"] == "github:octocat" and rec["fingerprint"] and rec["at"].endswith("+00:00")
