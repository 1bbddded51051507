"""deployctl verify and deployctl sbom against a real moto server over HTTP, from real git commits.

The "deployed" state is made the way deployctl makes it: terraform's resources (test_publish's
stand-in), `publish-lambda --deploy` from a committed git checkout, `promote`. Then AWS is changed
behind deployctl's back in the ways verify must catch."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import boto3
import pytest

from deployctl.artifacts import aliases, attest, bytecode, manifest, provenance, publish
from deployctl.artifacts import verify as core
from deployctl.config import load_env
from deployctl.errors import Refused
from deployctl.ui import UI
from test_package import make_project
from test_publish import BUCKET, FUNCTIONS, invoke, terraform_applied, use_account
from test_sbom import git, git_project, wheel  # noqa: F401 - wheel: a fixture


@pytest.fixture
def aws_env(aws_env, monkeypatch):
    use_account(monkeypatch, "111111111111")
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    return dict(os.environ)


def committed_project(dest: Path) -> Path:
    project = make_project(dest)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "fixture")
    return project


def deploy(cfg) -> None:
    publish.publish(cfg, deploy=True)
    for fn in FUNCTIONS:
        aliases.promote(cfg, fn, ui=UI(assume_yes=True))


@pytest.fixture
def deployed(tmp_path, aws_env):
    project = committed_project(tmp_path / "proj")
    terraform_applied()
    cfg = load_env("dev", project)
    deploy(cfg)
    return cfg


def by(result: dict, name: str, target_prefix: str) -> list[dict]:
    return [c for c in result["checks"] if c["name"] == name and c["target"].startswith(target_prefix)]


def tampered(cfg, fn: str) -> bytes:
    """The function's published zip with its handler module edited."""
    entry = manifest.load_manifest(cfg)["functions"][fn]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=entry["key"])["Body"].read()
    src = zipfile.ZipFile(io.BytesIO(body))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():  # same names, modes and timestamps: only the handler's bytes change
            data = src.read(info.filename)
            if info.filename == f"svc/{fn}.py":
                data += b"\n# added behind deployctl's back\n"
            out.writestr(info, data)
    return buf.getvalue()


def test_a_fresh_deploy_is_identical_everywhere(deployed):
    result = core.verify(deployed)
    assert result["identical"] is True, [c for c in result["checks"] if c["status"] != "identical"]
    for fn in FUNCTIONS:
        targets = {c["target"] for c in result["checks"] if c["name"] == fn}
        assert {"rebuild", "s3 zip", "s3 zip (current version)", "s3 sbom", "s3 provenance", "$LATEST"} <= targets
        assert any(t.startswith("live v") for t in targets) and any(t.startswith("staging v") for t in targets)
    assert result["commits"] == [git(deployed.root, "rev-parse", "HEAD")]


def test_the_cli_exits_0_with_the_checks_in_the_envelope(deployed):
    res = invoke(["verify", "--env", "dev", "--json"], deployed.root)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["command"] == "verify" and doc["result"]["identical"] is True


def test_code_swapped_behind_deployctls_back_is_named_and_fails(deployed):
    lam = boto3.client("lambda")
    physical = "demo-dev-beta"
    version = lam.update_function_code(FunctionName=physical, ZipFile=tampered(deployed, "beta"), Publish=True)["Version"]
    lam.update_alias(FunctionName=physical, Name="live", FunctionVersion=version)
    result = core.verify(deployed)
    assert result["identical"] is False and result["not_identical"] == ["function beta"]
    live = by(result, "beta", "live")[0]
    assert live["status"] == "differs" and "no deployctl publish recorded" in live["detail"]
    latest = by(result, "beta", "$LATEST")[0]
    assert latest["status"] == "differs"
    res = invoke(["verify", "--env", "dev", "--json"], deployed.root)
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["error"]["error"] == "verify_failed" and doc["error"]["exit_code"] == 1
    assert "function beta" in doc["error"]["message"] and doc["result"]["checks"]
    assert "beta" in res.stderr and res.stderr.count("\n") >= 1
    human = invoke(["verify", "--env", "dev", "--function", "beta"], deployed.root)
    assert human.exit_code == 1
    rows = [line for line in human.stdout.splitlines() if line.startswith("beta") and "differs" in line]
    assert rows and any("live" in r for r in rows), human.stdout
    assert [ln for ln in human.stderr.splitlines() if ln.startswith("error:")] == [
        "error: env dev: not identical to the rebuild: function beta (see each check's detail; re-publish and "
        "deploy from a commit to make AWS run what was reviewed)"]


def test_an_overwritten_s3_object_differs_and_names_the_first_differing_file(deployed):
    entry = manifest.load_manifest(deployed)["functions"]["alpha"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=entry["key"], Body=tampered(deployed, "alpha"))
    result = core.verify(deployed, ["alpha"])
    current = by(result, "alpha", "s3 zip (current version)")[0]
    assert current["status"] == "differs" and current["first_difference"] == "svc/alpha.py"
    pinned = by(result, "alpha", "s3 zip")[0]
    assert pinned["target"] == "s3 zip" and pinned["status"] == "identical"  # the pinned version is untouched
    assert result["identical"] is False


def test_forged_provenance_names_a_commit_whose_rebuild_is_other_code(deployed):
    """A zip uploaded beside a provenance that claims the manifest's commit: the rebuild disagrees."""
    s3, lam = boto3.client("s3"), boto3.client("lambda")
    body = tampered(deployed, "alpha")
    sha = hashlib.sha256(body).hexdigest()
    key = f"lambda/alpha/{sha}.zip"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    commit = git(deployed.root, "rev-parse", "HEAD")
    claim = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": key, "digest": {"sha256": sha}}],
             "predicateType": "https://slsa.dev/provenance/v1",
             "predicate": {"buildDefinition": {"buildType": "urn:x", "externalParameters": {
                 "source": {"commit": commit, "path": "", "repository": "", "dirty": False}},
                 "internalParameters": {"sourceDateEpoch": "315532800"}}}}
    s3.put_object(Bucket=BUCKET, Key=attest.sidecar_key(key, attest.PROVENANCE_SUFFIX), Body=json.dumps(claim))
    version = lam.update_function_code(FunctionName="demo-dev-alpha", S3Bucket=BUCKET, S3Key=key, Publish=True)["Version"]
    lam.update_alias(FunctionName="demo-dev-alpha", Name="live", FunctionVersion=version)
    live = by(core.verify(deployed, ["alpha"]), "alpha", "live")[0]
    assert live["status"] == "differs" and commit[:12] in live["detail"]
    assert live["first_difference"] == "svc/alpha.py"


def test_an_earlier_publish_still_live_is_rebuilt_from_its_own_commit(deployed):
    first = git(deployed.root, "rev-parse", "HEAD")
    (deployed.root / "lambda_src/svc/beta.py").write_text(
        (deployed.root / "lambda_src/svc/beta.py").read_text() + "\nRELEASE = 2\n")
    git(deployed.root, "commit", "-q", "-am", "beta: release 2")
    publish.publish(deployed, ["beta"], deploy=True)  # staging gets it, live stays on the first release
    result = core.verify(deployed, ["beta"])
    assert result["identical"] is True, [c for c in result["checks"] if c["status"] != "identical"]
    live = by(result, "beta", "live")[0]
    assert "earlier publish" in live["detail"] and first[:12] in live["detail"]
    assert len(result["commits"]) == 2


def test_without_a_recorded_commit_it_is_unverifiable(tmp_path, aws_env):
    project = make_project(tmp_path / "plain")  # not a git checkout
    terraform_applied()
    cfg = load_env("dev", project)
    deploy(cfg)
    result = core.verify(cfg, ["gamma"])
    rebuild = by(result, "gamma", "rebuild")[0]
    assert rebuild["status"] == "unverifiable" and "no source commit" in rebuild["detail"]
    assert result["identical"] is False
    live = by(result, "gamma", "live")[0]
    assert live["status"] != "identical"


def test_a_commit_missing_from_the_clone_is_unverifiable(deployed):
    data = manifest.load_manifest(deployed)
    data["functions"]["gamma"]["source"]["commit"] = "f" * 40
    manifest.write_manifest(deployed, data)
    result = core.verify(deployed, ["gamma"])
    rebuild = by(result, "gamma", "rebuild")[0]
    assert rebuild["status"] == "unverifiable" and "not in this clone" in rebuild["detail"]


def test_a_rebuild_by_another_bytecode_compiler_is_unverifiable_naming_the_python_it_needs(deployed, monkeypatch):
    """The zips' .pyc are the compiler's bytes: a machine without the recorded Python cannot rebuild them."""
    recorded = provenance_of(deployed, "gamma")["bytecode"]
    if recorded in (None, "none"):
        pytest.skip("no python3.12 compiled the deployed bytecode on this machine")
    version = recorded.split("/")[1]
    monkeypatch.setenv(bytecode.ENV_VAR, "none")  # this rebuild would ship no .pyc
    result = core.verify(deployed, ["gamma"])
    assert result["identical"] is False
    gamma = [c for c in result["checks"] if c["name"] == "gamma"]
    assert gamma and all(c["status"] == "unverifiable" for c in gamma), gamma  # never "differs"
    rebuild = by(result, "gamma", "rebuild")[0]
    assert rebuild["detail"].startswith(f"needs python {version}: ") and recorded in rebuild["detail"]
    assert "DEPLOYCTL_LAMBDA_PYTHON" in rebuild["detail"]
    live = by(result, "gamma", "live")[0]
    assert f"needs python {version}" in live["detail"]
    monkeypatch.delenv(bytecode.ENV_VAR)  # the recorded compiler again: identical
    assert core.verify(deployed, ["gamma"])["identical"] is True


def provenance_of(cfg, fn: str) -> dict:
    rec = manifest.load_manifest(cfg)["functions"][fn]["provenance"]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=rec["key"], VersionId=rec["version_id"])["Body"].read()
    return provenance.summary(body)


def test_a_prod_publish_refuses_inputs_that_differ_from_the_commit(tmp_path, aws_env, monkeypatch):
    project = committed_project(tmp_path / "proj")
    (project / "lambda_src/svc/alpha.py").write_text("def handler(event, context):\n    return 1\n")
    use_account(monkeypatch, "333333333333")
    cfg = load_env("prod", project)
    with pytest.raises(Refused, match=r"differ from commit .*lambda_src/svc/alpha.py"):
        publish.publish(cfg)
    assert boto3.client("s3").list_buckets()["Buckets"] == []  # refused before anything was touched
    res = invoke(["publish-lambda", "--env", "prod", "--json"], project)
    assert res.exit_code == 4 and json.loads(res.stdout)["error"]["error"] == "refused"


def test_publish_records_and_uploads_the_documents_and_a_rerun_uploads_nothing(deployed):
    data = manifest.load_manifest(deployed)
    s3 = boto3.client("s3")
    for fn in FUNCTIONS:
        entry = data["functions"][fn]
        assert entry["source"]["commit"] == git(deployed.root, "rev-parse", "HEAD") and entry["source"]["dirty"] is False
        for what, suffix in (("sbom", ".cdx.json"), ("provenance", ".intoto.json")):
            rec = entry[what]
            assert rec["key"] == entry["key"].removesuffix(".zip") + suffix
            obj = s3.get_object(Bucket=BUCKET, Key=rec["key"], VersionId=rec["version_id"])
            body = obj["Body"].read()
            assert hashlib.sha256(body).hexdigest() == rec["sha256"] and obj["ServerSideEncryption"] == "aws:kms"
    again = publish.publish(deployed)
    assert again["bytes_uploaded"] == 0 and again["documents_bytes_uploaded"] == 0


def test_sbom_follows_the_live_alias(deployed):
    res = invoke(["sbom", "--env", "dev", "--function", "alpha", "--json"], deployed.root)
    assert res.exit_code == 0, res.output
    item = json.loads(res.stdout)["result"]["functions"]["alpha"]
    entry = manifest.load_manifest(deployed)["functions"]["alpha"]
    assert item["in_manifest"] is True and item["sha256"] == entry["sha256"]
    assert item["sbom"]["metadata"]["component"]["hashes"][0]["content"] == entry["sha256"]
    lam = boto3.client("lambda")
    version = lam.update_function_code(FunctionName="demo-dev-alpha", ZipFile=tampered(deployed, "alpha"),
                                       Publish=True)["Version"]
    lam.update_alias(FunctionName="demo-dev-alpha", Name="live", FunctionVersion=version)
    item = core.deployed_sbom(deployed, ["alpha"])["functions"]["alpha"]
    assert item["sbom"] is None and item["in_manifest"] is False and "no SBOM" in item["reason"]
    assert base64.b64decode(lam.get_function_configuration(FunctionName="demo-dev-alpha", Qualifier=version)
                            ["CodeSha256"]).hex() == item["sha256"]


def test_an_attached_layer_version_is_rebuilt_and_compared(tmp_path, aws_env, wheel):  # noqa: F811 - the fixture
    project = git_project(tmp_path / "proj", wheel)
    terraform_applied()
    cfg = load_env("dev", project)
    deploy(cfg)
    entry = manifest.load_manifest(cfg)["layers"]["tiny"]
    lam = boto3.client("lambda")
    good = lam.publish_layer_version(LayerName="demo-dev-tiny", Content={
        "S3Bucket": BUCKET, "S3Key": entry["key"], "S3ObjectVersion": entry["version_id"]})["LayerVersionArn"]
    lam.update_function_configuration(FunctionName="demo-dev-alpha", Layers=[good])
    result = core.verify(cfg, ["alpha"])
    layer_checks = [c for c in result["checks"] if c["kind"] == "layer"]
    assert {c["target"] for c in layer_checks} >= {"rebuild", "s3 zip", "s3 sbom", "s3 provenance",
                                                   f"version {good.rsplit(':', 1)[-1]}"}
    assert result["identical"] is True, [c for c in result["checks"] if c["status"] != "identical"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("python/licdep/__init__.py", "VALUE = 'not the reviewed one'\n")
    bad = lam.publish_layer_version(LayerName="demo-dev-tiny", Content={"ZipFile": buf.getvalue()})["LayerVersionArn"]
    lam.update_function_configuration(FunctionName="demo-dev-alpha", Layers=[bad])
    result = core.verify(cfg, ["alpha"])
    assert result["not_identical"] == ["layer tiny"]
    assert [c["status"] for c in result["checks"] if c["target"] == f"version {bad.rsplit(':', 1)[-1]}"] == ["differs"]
