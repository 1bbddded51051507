"""deployctl publish-lambda against a real moto server over HTTP."""

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

from deployctl.artifacts import manifest, packaging, publish
from deployctl.cli import cli
from deployctl.config import Settings, load_env
from deployctl.errors import OperationFailed, UsageError
from deployctl.ui import UI

FIXTURE = Path(__file__).parent / "fixtures" / "lambda_src_demo"
FUNCTIONS = ("alpha", "beta", "gamma")
BUCKET = "demo-dev-artifacts-111111111111"


def placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("placeholder.py", "def handler(event, context):\n    return None\n")
    return buf.getvalue()


def terraform_applied(env: str = "dev", *, aliases: bool = True, bucket: bool = True, kms: bool = True) -> None:
    """What the foundation + env apply would have created: bucket, KMS alias, functions, aliases."""
    account = {"dev": "111111111111", "prod": "333333333333"}[env]
    if bucket:
        s3 = boto3.client("s3")
        name = f"demo-{env}-artifacts-{account}"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if kms:
        kms_client = boto3.client("kms")
        key = kms_client.create_key(Description=f"demo-{env}")["KeyMetadata"]["KeyId"]
        kms_client.create_alias(AliasName=f"alias/demo-{env}", TargetKeyId=key)
    iam = boto3.client("iam")
    role = iam.create_role(RoleName=f"demo-{env}-lambda", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }))["Role"]["Arn"]
    lam = boto3.client("lambda")
    for fn in FUNCTIONS:
        name = f"demo-{env}-{fn}"
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="placeholder.handler",
                            Code={"ZipFile": placeholder_zip()}, Publish=True)
        if aliases:
            for alias in ("live", "staging"):
                lam.create_alias(FunctionName=name, Name=alias, FunctionVersion="1")


def alias_state(env: str = "dev") -> dict:
    lam = boto3.client("lambda")
    out = {}
    for fn in FUNCTIONS:
        for alias in ("live", "staging"):
            a = lam.get_alias(FunctionName=f"demo-{env}-{fn}", Name=alias)
            out[f"{fn}:{alias}"] = (a["FunctionVersion"], a.get("RoutingConfig"), a.get("Description"))
    return out


def use_account(monkeypatch, account: str) -> None:
    """Act as a principal of ``account`` on moto (an assumed role; moto keeps one world per account)."""
    sts = boto3.client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/deployctl-tests",
                            RoleSessionName="deployctl-tests")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3.client() re-reads the variables


@pytest.fixture
def aws_env(aws_env, monkeypatch):
    """conftest's moto env, with credentials of the dev fixture's account (the account guard checks it)."""
    use_account(monkeypatch, "111111111111")
    return dict(os.environ)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def cfg(project, aws_env, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    terraform_applied()
    return load_env("dev", project)


def invoke(args: list[str], root: Path):
    env = {"DEPLOYCTL_ROOT": str(root)}
    return CliRunner().invoke(cli, args, obj=Settings.from_environ(env), env=env, catch_exceptions=False)


# -- uploads and the manifest ------------------------------------------------------------------


def test_first_publish_uploads_everything_and_records_the_manifest(cfg):
    result = publish.publish(cfg)
    arts = {a.function: a for a in packaging.package(cfg)}
    s3 = boto3.client("s3")
    data = manifest.load_manifest(cfg)
    assert data["schema"] == 1 and data["env"] == "dev" and set(data["functions"]) == set(FUNCTIONS)
    for fn in FUNCTIONS:
        entry, art = data["functions"][fn], arts[fn]
        assert entry["bucket"] == BUCKET
        assert entry["key"] == f"lambda/{fn}/{art.sha256}.zip"
        assert entry["sha256"] == art.sha256 and entry["code_sha256"] == art.code_sha256
        assert entry["size"] == art.size and entry["published_at"].endswith("Z")
        obj = s3.get_object(Bucket=BUCKET, Key=entry["key"], VersionId=entry["version_id"])
        assert obj["Body"].read() == art.path.read_bytes()
        assert obj["ServerSideEncryption"] == "aws:kms"
        key_arn = boto3.client("kms").describe_key(KeyId="alias/demo-dev")["KeyMetadata"]["Arn"]
        assert obj["SSEKMSKeyId"] == key_arn
        assert obj["Metadata"]["sha256"] == art.sha256
        assert result["functions"][fn]["uploaded"] is True
    assert result["bytes_uploaded"] == sum(a.size for a in arts.values()) + result["documents_bytes_uploaded"]
    assert result["deployed"] == {}


def test_second_publish_uploads_nothing_and_leaves_the_manifest_byte_identical(cfg):
    publish.publish(cfg)
    before = manifest.manifest_path(cfg).read_bytes()
    versions_before = boto3.client("s3").list_object_versions(Bucket=BUCKET)["Versions"]
    result = publish.publish(cfg)
    assert result["bytes_uploaded"] == 0
    assert not any(f["uploaded"] for f in result["functions"].values())
    assert manifest.manifest_path(cfg).read_bytes() == before
    assert len(boto3.client("s3").list_object_versions(Bucket=BUCKET)["Versions"]) == len(versions_before)


def test_changed_function_gets_a_new_key_others_untouched(cfg, project):
    publish.publish(cfg)
    first = manifest.load_manifest(cfg)["functions"]
    (project / "lambda_src/shared/fmt.py").write_text("def dumps(value):\n    return str(value)\n")
    result = publish.publish(cfg)
    second = manifest.load_manifest(cfg)["functions"]
    assert [fn for fn, f in result["functions"].items() if f["uploaded"]] == ["beta"]
    assert second["beta"]["key"] != first["beta"]["key"]
    assert second["alpha"] == first["alpha"] and second["gamma"] == first["gamma"]


def test_one_function_run_keeps_the_other_manifest_entries(cfg, project):
    publish.publish(cfg)
    first = manifest.load_manifest(cfg)["functions"]
    (project / "lambda_src/other/gamma.py").write_text("def handler(event, context):\n    return {'statusCode': 200}\n")
    publish.publish(cfg, ["gamma"])
    second = manifest.load_manifest(cfg)["functions"]
    assert second["gamma"]["sha256"] != first["gamma"]["sha256"]
    assert {k: v for k, v in second.items() if k != "gamma"} == {k: v for k, v in first.items() if k != "gamma"}


def test_a_different_object_under_the_key_is_replaced(cfg):
    art = packaging.package(cfg, ["gamma"])[0]
    key = f"lambda/gamma/{art.sha256}.zip"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"not the zip")
    result = publish.publish(cfg, ["gamma"])
    assert result["functions"]["gamma"]["uploaded"] is True
    entry = manifest.load_manifest(cfg)["functions"]["gamma"]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key, VersionId=entry["version_id"])["Body"].read()
    assert body == art.path.read_bytes()


def test_missing_bucket_and_kms_key_are_clear_errors(project, aws_env):
    cfg = load_env("dev", project)
    with pytest.raises(OperationFailed, match=f"artifact bucket '{BUCKET}' does not exist") as exc:
        publish.publish(cfg)
    assert "foundation" in exc.value.hint
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(OperationFailed, match="does not have versioning enabled"):
        publish.publish(cfg)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(OperationFailed, match="KMS key 'alias/demo-dev' does not exist"):
        publish.publish(cfg)
    assert not manifest.manifest_path(cfg).exists()


def test_credentials_of_another_account_are_refused_before_anything_changes(cfg, project, monkeypatch):
    """Function and bucket names do not say which account they are in: the account guard does."""
    use_account(monkeypatch, "999999999999")
    result = invoke(["publish-lambda", "--env", "dev", "--deploy", "--json"], project)
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["command"] == "publish-lambda" and doc["env"] == "dev"
    error = doc["error"]
    assert error["error"] == "refused" and "999999999999" in error["message"] and "111111111111" in error["message"]
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error:")] == [f"error: {error['where']}: "
                                                                                   f"{error['message']} ({error['hint']})"]
    use_account(monkeypatch, "111111111111")
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)
    assert not manifest.manifest_path(cfg).exists()


def test_a_bad_wait_setting_is_a_one_line_config_error_before_any_upload(cfg, project, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_LAMBDA_WAIT_S", "five minutes")
    for args in (["publish-lambda", "--env", "dev", "--deploy"], ["promote", "--env", "dev", "--function", "alpha"]):
        result = invoke(args, project)
        if args[0] == "promote":  # promote waits for nothing: the setting does not concern it
            assert result.exit_code == 0 and "nothing to do" in result.stderr, result.output
            continue
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert result.stderr.splitlines() == ["error: DEPLOYCTL_LAMBDA_WAIT_S: must be a number of seconds between "
                                              "1 and 3600, found 'five minutes' (unset it to wait the default 300 s)"]
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


def test_a_concurrent_publish_of_the_same_env_is_refused_not_merged_away(cfg, project):
    """Each run rewrites the whole manifest it read: a second run at the same time would drop entries."""
    publish.publish(cfg, ["alpha"])
    before = manifest.manifest_path(cfg).read_bytes()
    with manifest.locked(cfg) as path:  # another run holds the env's publish lock
        result = invoke(["publish-lambda", "--env", "dev", "--function", "beta"], project)
        assert result.exit_code == 4, result.output
        assert f"another publish-lambda for env 'dev' is running (pid {os.getpid()})" in result.stderr
        assert path.read_bytes() == before
    result = invoke(["publish-lambda", "--env", "dev", "--function", "beta"], project)
    assert result.exit_code == 0, result.output
    assert set(manifest.load_manifest(cfg)["functions"]) == {"alpha", "beta"}


def test_a_failed_manifest_write_leaves_no_temp_file(cfg, monkeypatch):
    publish.publish(cfg)
    before = manifest.manifest_path(cfg).read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest.os, "fsync", disk_full)  # the one edge we cannot provoke for real
    data = manifest.load_manifest(cfg)
    data["functions"]["alpha"]["published_at"] = "2000-01-01T00:00:00Z"
    with pytest.raises(OperationFailed, match="could not write the manifest: No space left on device"):
        manifest.write_manifest(cfg, data)
    assert manifest.manifest_path(cfg).read_bytes() == before
    assert [p.name for p in manifest.manifest_path(cfg).parent.iterdir() if p.name.startswith(".")] == []


def test_unknown_function_is_refused_before_any_aws_call(cfg):
    with pytest.raises(UsageError, match="unknown function 'nope'"):
        publish.publish(cfg, ["nope"])
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


def test_a_broken_manifest_stops_the_run_before_uploading(cfg):
    path = manifest.manifest_path(cfg)
    path.write_text("{not json")
    with pytest.raises(Exception, match="not valid JSON"):
        publish.publish(cfg)
    assert path.read_text() == "{not json"
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


# -- --deploy ------------------------------------------------------------------------------------


def test_deploy_updates_code_publishes_versions_and_moves_staging_only(cfg):
    live_before = {k: v for k, v in alias_state().items() if k.endswith(":live")}
    result = publish.publish(cfg, deploy=True)
    arts = {a.function: a for a in packaging.package(cfg)}
    lam = boto3.client("lambda")
    state = alias_state()
    for fn in FUNCTIONS:
        name = f"demo-dev-{fn}"
        dep = result["deployed"][fn]
        assert dep["version"] == "2" and dep["staging_before"] == "1" and not dep["skipped"]
        assert state[f"{fn}:staging"][0] == "2"
        assert lam.get_function_configuration(FunctionName=name, Qualifier="2")["CodeSha256"] == arts[fn].code_sha256
    assert {k: v for k, v in state.items() if k.endswith(":live")} == live_before

    again = publish.publish(cfg, deploy=True)
    assert all(d["skipped"] and d["version"] == "2" for d in again["deployed"].values())
    versions = lam.list_versions_by_function(FunctionName="demo-dev-alpha")["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "1", "2"]


def test_deploy_creates_a_missing_staging_alias(project, aws_env, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    terraform_applied(aliases=False)
    cfg = load_env("dev", project)
    result = publish.publish(cfg, ["gamma"], deploy=True)
    assert result["deployed"]["gamma"]["staging_before"] is None
    assert boto3.client("lambda").get_alias(FunctionName="demo-dev-gamma", Name="staging")["FunctionVersion"] == "2"


def test_deploy_to_a_missing_function_fails_and_records_nothing(cfg):
    boto3.client("lambda").delete_function(FunctionName="demo-dev-gamma")
    with pytest.raises(OperationFailed, match="function 'demo-dev-gamma' does not exist"):
        publish.publish(cfg, deploy=True)
    assert not manifest.manifest_path(cfg).exists()
    lam = boto3.client("lambda")
    for fn in ("alpha", "beta"):
        assert lam.get_alias(FunctionName=f"demo-dev-{fn}", Name="staging")["FunctionVersion"] == "1"


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_publish_json_and_human(cfg, project):
    result = invoke(["publish-lambda", "--env", "dev", "--json"], project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["result"]
    assert data["env"] == "dev" and data["bucket"] == BUCKET and set(data["functions"]) == set(FUNCTIONS)
    assert "\r" not in result.stderr  # no progress bar off a terminal
    human = invoke(["publish-lambda", "--env", "dev", "--deploy"], project)
    assert human.exit_code == 0, human.output
    assert "0 bytes uploaded" in human.stdout and "v1 -> v2" in human.stdout


def test_cli_publish_needs_an_env(project):
    result = invoke(["publish-lambda"], project)
    assert result.exit_code == 2 and "no environment given" in result.stderr


def test_progress_bar_only_on_a_terminal(cfg, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stdin", Tty())
    publish.publish(cfg, ui=UI(err=err))
    assert "upload [" in err.getvalue() and "3/3" in err.getvalue()
    quiet = Tty()
    publish.publish(cfg, ui=UI(json_mode=True, err=quiet))
    assert "upload [" not in quiet.getvalue()


# -- fewer requests, same guards -------------------------------------------------------------------


def test_a_key_the_manifest_does_not_know_is_written_conditionally_and_kept_when_it_holds_the_bytes(cfg):
    """A new key is written with If-None-Match: * at once (no HEAD first); if it holds these bytes
    already (published from another checkout), it is kept: no second version."""
    art = packaging.package(cfg, ["gamma"])[0]
    key = f"lambda/gamma/{art.sha256}.zip"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=art.path.read_bytes(), ChecksumSHA256=art.code_sha256,
                  Metadata={"sha256": art.sha256})
    result = publish.publish(cfg, ["gamma"])
    assert result["functions"]["gamma"]["uploaded"] is False
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]) == 1
    assert manifest.load_manifest(cfg)["functions"]["gamma"]["key"] == key


def test_an_unversioned_bucket_is_refused_from_the_upload_answer_and_nothing_is_recorded(project, aws_env):
    """No GetBucketVersioning probe any more: an object without a VersionId is the refusal."""
    terraform_applied(bucket=False)
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    cfg = load_env("dev", project)
    before = alias_state()
    with pytest.raises(OperationFailed, match=rf"artifact bucket '{BUCKET}' does not have versioning enabled "
                                              r"\(S3 returned no VersionId for lambda/"):
        publish.publish(cfg, deploy=True)
    assert not manifest.manifest_path(cfg).exists() and alias_state() == before


def test_a_missing_bucket_is_said_from_the_upload_and_nothing_is_recorded(project, aws_env):
    """No HeadBucket probe any more: the upload's NoSuchBucket says it, in the same words."""
    terraform_applied(bucket=False)
    cfg = load_env("dev", project)
    with pytest.raises(OperationFailed, match=f"artifact bucket '{BUCKET}' does not exist") as exc:
        publish.publish(cfg, deploy=True)
    assert "foundation" in exc.value.hint
    assert not manifest.manifest_path(cfg).exists()


def test_publish_deploy_promote_moves_live_in_the_same_run_as_promote_does(cfg, project):
    result = invoke(["publish-lambda", "--env", "dev", "--function", "gamma", "--promote", "--json"], project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["result"]
    assert data["deployed"]["gamma"]["version"] == "2" and data["deployed"]["gamma"]["staging_before"] == "1"
    [promoted] = data["promoted"]
    assert promoted["before"] == {"version": "1", "weights": {}} and promoted["after"] == {"version": "2", "weights": {}}
    state = alias_state()
    assert state["gamma:staging"][0] == "2" and state["gamma:live"][0] == "2"
    assert json.loads(state["gamma:live"][2]) == {"deployctl_previous": ["1"]}  # rollback finds version 1
    assert state["alpha:live"][0] == "1"  # only the functions published
    human = invoke(["publish-lambda", "--env", "dev", "--function", "gamma", "--promote"], project)
    assert human.exit_code == 0, human.output
    assert "v2 (unchanged)" in human.stdout and "live unchanged" in human.stdout


def test_publish_promote_refuses_while_a_rollout_is_unfinished_and_changes_nothing(cfg, project):
    """The unfinished-rollout refusal runs beside the build now: it still comes before any upload."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=cfg.state_bucket(), CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=cfg.state_bucket(), Key="deployctl/rollouts/dev/gamma.json", Body=json.dumps(
        {"function": "gamma", "function_name": "demo-dev-gamma", "from": "1", "to": "2", "step": 0,
         "steps": [{"weight": 100, "bake_s": 0}], "deadline": "2999-01-01T00:00:00+00:00"}).encode())
    before = alias_state()
    result = invoke(["publish-lambda", "--env", "dev", "--function", "gamma", "--promote"], project)
    assert result.exit_code == 4 and "unfinished rollout of gamma" in result.stderr, result.output
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert alias_state() == before and not manifest.manifest_path(cfg).exists()


def test_publish_promote_after_a_failed_deploy_moves_no_alias(cfg, project):
    boto3.client("lambda").delete_function(FunctionName="demo-dev-gamma")
    result = invoke(["publish-lambda", "--env", "dev", "--promote"], project)
    assert result.exit_code == 1 and "function 'demo-dev-gamma' does not exist" in result.stderr, result.output
    lam = boto3.client("lambda")
    for fn in ("alpha", "beta"):
        for alias in ("live", "staging"):
            assert lam.get_alias(FunctionName=f"demo-dev-{fn}", Name=alias)["FunctionVersion"] == "1"
    assert not manifest.manifest_path(cfg).exists()


def test_strategy_belongs_to_promote(cfg, project):
    result = invoke(["publish-lambda", "--env", "dev", "--strategy", "AllAtOnce"], project)
    assert result.exit_code == 2 and "--strategy belongs to --promote" in result.stderr, result.output
