"""`deployctl up`: from an empty emulator to a working stack in one command, then idempotent.

A fresh moto server and project copy (the fixtures are per module; the copy is made a git
commit first, as a checkout is): one `up` creates everything (state bucket, foundation,
secrets, code, the stack, outputs); a second `up` uploads nothing and applies
nothing. `deployctl verify` then finds every function and layer identical to a rebuild of that
commit, and names the function whose code is swapped behind deployctl's back. The generated secret is checked to be real, shared by every Lambda
container (two fresh imports of the users handler accept each other's cursors),
and absent from every file, plan, state and command output.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from deployctl import naming
from deployctl.config import load_env

from . import api_checks

pytestmark = pytest.mark.e2e

RUNS: list = []


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.com", "GIT_COMMITTER_NAME": "e2e",
                "GIT_COMMITTER_EMAIL": "e2e@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_IDENTITY})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_up_from_an_empty_emulator(deployctl):
    # this module has its own moto server and project copy (module-scoped fixtures): both start empty
    assert deployctl.client("s3").list_buckets()["Buckets"] == []
    # a checkout: publish records this commit in the provenance and the manifest, verify rebuilds it
    _git(deployctl.root, "init", "-q", "-b", "main")
    _git(deployctl.root, "add", "-A")
    _git(deployctl.root, "commit", "-q", "-m", "e2e project")
    res = deployctl("up", "--env", "dev", "--yes")
    RUNS.append(res)
    steps = {s["step"]: s for s in res.result["steps"]}
    assert [s["step"] for s in res.result["steps"]] == ["state bucket", "foundation", "secrets", "publish", "stack",
                                                        "smoke test"]
    assert steps["state bucket"]["status"] == "done"
    assert steps["foundation"]["status"] == "done" and steps["foundation"]["applied"]
    assert steps["stack"]["status"] == "done" and steps["stack"]["applied"]
    assert steps["publish"]["bytes_uploaded"] > 0
    assert steps["smoke test"]["status"] == "passed", steps["smoke test"]  # served by moto_compat (8)
    assert res.result["outputs"]["health_url"].endswith("/dev/health")
    api_checks.check_api(deployctl, res.result["outputs"])
    api_checks.check_invoke(deployctl)
    assert res.result["changed"] is True


def test_second_up_uploads_nothing_and_applies_nothing(deployctl):
    res = deployctl("up", "--env", "dev", "--yes")
    RUNS.append(res)
    assert res.result["bytes_uploaded"] == 0
    assert res.result["applied"] is False and res.result["changed"] is False
    assert {s["step"]: s["status"] for s in res.result["steps"]} == {
        "state bucket": "ok", "foundation": "ok", "secrets": "ok", "publish": "ok", "stack": "ok",
        "smoke test": "passed"}


def test_verify_after_the_deploy_is_identical(deployctl):
    res = deployctl("verify", "--env", "dev")
    checks = res.result["checks"]
    assert res.result["identical"] is True, [c for c in checks if c["status"] != "identical"]
    assert res.result["commits"] == [_git(deployctl.root, "rev-parse", "HEAD")]
    cfg = load_env("dev", deployctl.root)
    for fn in cfg.functions:
        targets = {c["target"] for c in checks if c["kind"] == "function" and c["name"] == fn}
        assert {"rebuild", "s3 zip", "s3 sbom", "s3 provenance", "$LATEST"} <= targets, targets
        assert any(t.startswith("live v") for t in targets) and any(t.startswith("staging v") for t in targets)
    layer_versions = [c for c in checks if c["kind"] == "layer" and c["target"].startswith("version ")]
    assert layer_versions and all(c["name"] == "shared" for c in layer_versions)
    sbom = deployctl("sbom", "--env", "dev", "--function", "users").result["functions"]["users"]
    assert sbom["in_manifest"] is True
    purls = {c.get("purl", "") for layer in sbom["layers"] for c in (layer["sbom"] or {}).get("components", [])}
    assert any(p.startswith("pkg:pypi/aws-lambda-powertools@") for p in purls), purls


def _secret(deployctl) -> tuple[str, dict]:
    cfg = load_env("dev", deployctl.root)
    name = f"{naming.parameter_prefix(cfg)}pagination-key"
    param = deployctl.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    meta = deployctl.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"][0]
    return param["Value"], {"type": param["Type"], "key_id": meta.get("KeyId"), "version": param["Version"]}


def test_the_pagination_key_is_real_and_under_the_cmk(deployctl):
    value, meta = _secret(deployctl)
    cfg = load_env("dev", deployctl.root)
    assert meta["type"] == "SecureString"
    assert meta["key_id"] in {f"alias/{naming.kms_alias(cfg)}", naming.kms_alias(cfg)}
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert len(raw) == 32
    assert meta["version"] == 1  # the second up kept it


def test_the_secret_is_in_no_file_plan_state_or_output(deployctl):
    value, _ = _secret(deployctl)
    needle = value.encode()
    leaks = []
    for path in Path(deployctl.root).rglob("*"):
        if path.is_file() and not path.is_symlink() and "providers" not in path.parts:
            if needle in path.read_bytes():
                leaks.append(str(path.relative_to(deployctl.root)))
    assert leaks == []
    s3 = deployctl.client("s3")
    cfg = load_env("dev", deployctl.root)
    versions = s3.list_object_versions(Bucket=cfg.state_bucket()).get("Versions", [])
    assert versions, "the state bucket holds the state"
    for v in versions:
        body = s3.get_object(Bucket=cfg.state_bucket(), Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        assert needle not in body, v["Key"]
    for run in RUNS:
        assert value not in run.stdout and value not in run.stderr


_HANDLER_RUN = textwrap.dedent("""
    import json, sys, uuid
    sys.path.insert(0, sys.argv[1])
    from users import handler

    class Context:
        aws_request_id = "e2e"

    def call(method, resource, body=None, query=None):
        event = {"resource": resource, "path": resource, "httpMethod": method,
                 "headers": {"Content-Type": "application/json"}, "multiValueHeaders": None,
                 "queryStringParameters": query, "multiValueQueryStringParameters": None,
                 "pathParameters": None, "body": json.dumps(body) if body is not None else None,
                 "isBase64Encoded": False,
                 "requestContext": {"requestId": str(uuid.uuid4()), "stage": "dev",
                                    "identity": {"sourceIp": "127.0.0.1"}}}
        out = handler.handler(event, Context())
        return out["statusCode"], json.loads(out["body"] or "null")

    action = sys.argv[2]
    if action == "first-page":
        for i in range(3):
            status, body = call("POST", "/users", {"name": f"user {i}", "email": f"user{i}@example.com"})
            assert status == 201, (status, body)
        status, body = call("GET", "/users", query={"limit": "1"})
        print(json.dumps({"status": status, "body": body}))
    else:
        status, body = call("GET", "/users", query={"limit": "1", "nextToken": sys.argv[3]})
        print(json.dumps({"status": status, "body": body}))
""")


def _users_process(deployctl, *args: str) -> dict:
    cfg = load_env("dev", deployctl.root)
    env = dict(deployctl.env)
    env.update(naming.function_environment(cfg, "users"))
    proc = subprocess.run([sys.executable, "-c", _HANDLER_RUN, str(deployctl.root / "lambda_src"), *args],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_fresh_lambda_containers_accept_each_others_cursors(deployctl):
    first = _users_process(deployctl, "first-page")
    assert first["status"] == 200
    token = first["body"].get("nextToken")
    assert token, first
    second = _users_process(deployctl, "next-page", token)
    assert second["status"] == 200, second
    assert second["body"]["users"] and second["body"]["users"] != first["body"]["users"]


def test_verify_names_a_function_swapped_behind_deployctls_back(deployctl):
    """Last in this module: it leaves health-check's live alias on foreign code."""
    cfg = load_env("dev", deployctl.root)
    physical = naming.function_name(cfg, "health-check")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("health/handler.py", "def health_check(event, context):\n    return {'statusCode': 200}\n")
    lam = deployctl.client("lambda")
    version = lam.update_function_code(FunctionName=physical, ZipFile=buf.getvalue(), Publish=True)["Version"]
    lam.update_alias(FunctionName=physical, Name="live", FunctionVersion=version)
    res = deployctl("verify", "--env", "dev", expect=1)
    assert res.doc["ok"] is False and res.doc["error"]["error"] == "verify_failed"
    assert res.result["not_identical"] == ["function health-check"]
    assert "health-check" in res.doc["error"]["message"] and "health-check" in res.stderr
    live = [c for c in res.result["checks"] if c["name"] == "health-check" and c["target"].startswith("live")]
    assert live and live[0]["status"] == "differs"
