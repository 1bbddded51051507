"""`deployctl invoke` against a deployed function, and API Gateway's Lambda proxy on the emulator.

The emulator is the e2e suite's moto server (tests/e2e/moto_compat.py, as a subprocess on
127.0.0.1), whose Lambda executor runs the code moto holds (fetched from its S3 by the function's
configuration, with its layer versions) in the runtime-faithful worker. The functions are created
with boto3 from the zips `deployctl package` builds for tests/fixtures/runtime_demo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import FAKE_CREDENTIALS, ROOT, free_port
from deployctl.config import load_env
from deployctl.infra.up import emulator_url, smoke_test
from test_runtime import FIXTURE, IMPORT_ERROR, cli, needs_312

ACCOUNT = "123456789012"  # moto's


@pytest.fixture(scope="module")
def compat_moto(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests/e2e/moto_compat.py"), str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def deployed(compat_moto, tmp_path_factory):
    """echo (with a layer) and greet deployed to moto from their built zips, each with a `live` alias,
    and a REST API whose POST /echo is an AWS_PROXY integration to echo:live."""
    import boto3

    root = tmp_path_factory.mktemp("rt") / "project"
    shutil.copytree(FIXTURE, root)
    (root / "terraform/envs/dev/env.toml").write_text(f'[aws]\naccount_id = "{ACCOUNT}"\n')
    cfg = load_env("dev", root)
    from deployctl.artifacts import packaging

    zips = {a.function: a.path.read_bytes() for a in packaging.build(cfg, ["echo", "greet"]).functions}

    def client(service):
        return boto3.client(service, endpoint_url=compat_moto, region_name="eu-west-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing")

    s3, lam, iam, apigw = client("s3"), client("lambda"), client("iam"), client("apigateway")
    s3.create_bucket(Bucket="code", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    s3.put_object(Bucket="code", Key="layers/extra.zip", Body=_layer_zip())
    layer = lam.publish_layer_version(LayerName="extra", Content={"S3Bucket": "code", "S3Key": "layers/extra.zip"},
                                      CompatibleRuntimes=["python3.12"])["LayerVersionArn"]
    arns = {}
    for name, data in zips.items():
        s3.put_object(Bucket="code", Key=f"lambda/{name}.zip", Body=data)
        physical = f"rtdemo-dev-{name}"
        lam.create_function(FunctionName=physical, Runtime="python3.12", Role=role,
                            Handler=cfg.functions[name]["handler"], Timeout=5, MemorySize=256,
                            Code={"S3Bucket": "code", "S3Key": f"lambda/{name}.zip"},
                            Environment={"Variables": {"GREETING": "from moto"}},
                            Layers=[layer] if name == "echo" else [])
        version = lam.publish_version(FunctionName=physical)["Version"]
        arns[name] = lam.create_alias(FunctionName=physical, Name="live", FunctionVersion=version)["AliasArn"]
    api = apigw.create_rest_api(name="rtdemo")["id"]
    root_id = next(r["id"] for r in apigw.get_resources(restApiId=api)["items"] if r["path"] == "/")
    for path, fn, method in (("echo", "echo", "POST"), ("greet", "greet", "GET")):
        rid = apigw.create_resource(restApiId=api, parentId=root_id, pathPart=path)["id"]
        apigw.put_method(restApiId=api, resourceId=rid, httpMethod=method, authorizationType="NONE")
        apigw.put_integration(restApiId=api, resourceId=rid, httpMethod=method, type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{arns[fn]}/invocations")
    apigw.create_deployment(restApiId=api, stageName="dev")
    return {"root": root, "endpoint": compat_moto, "api": api, "lambda": lam}


def _layer_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("python/extra_mod.py", "VALUE = 'from the layer'\n")
    return buf.getvalue()


def _env_moto(deployed) -> dict[str, str]:
    return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": deployed["endpoint"]}


@needs_312
def test_invoke_the_deployed_live_alias_prints_status_body_and_log_tail(deployed):
    doc = cli(deployed["root"], "invoke", "--env", "dev", "--function", "echo", "--event", "-",
              stdin=json.dumps({"ping": 1}), **_env_moto(deployed))
    result = doc["result"]
    assert doc["ok"] and result["status_code"] == 200 and result["qualifier"] == "live" and not result["local"]
    body = json.loads(result["payload"]["body"])
    assert body["event"] == {"ping": 1} and body["python"] == "3.12" and body["greeting"] == "from moto"
    assert body["context"]["memory_limit_in_mb"] == "256"
    assert any(p.endswith("/python") for p in body["sys_path"][1:3])  # the layer version, as /opt/python
    assert "START RequestId:" in result["log"] and "REPORT RequestId:" in result["log"]
    assert result["account_guard"]["checked"] is True


@needs_312
def test_invoke_a_route_and_a_function_error_of_the_deployed_function(deployed):
    doc = cli(deployed["root"], "invoke", "--env", "dev", "--route", "POST /echo", "--body", '{"name": "n"}',
              **_env_moto(deployed))
    event = json.loads(doc["result"]["payload"]["body"])["event"]
    assert event["resource"] == "/echo" and json.loads(event["body"]) == {"name": "n"}
    bad = cli(deployed["root"], "invoke", "--env", "dev", "--function", "greet", expect=1, **_env_moto(deployed))
    assert bad["result"]["payload"]["errorType"] == "Runtime.ImportModuleError"
    assert bad["result"]["payload"]["errorMessage"] == IMPORT_ERROR
    assert bad["error"]["error"] == "failed" and bad["result"]["function_error"]


@needs_312
def test_api_gateway_lambda_proxy_serves_requests_at_the_emulators_url(deployed):
    url = emulator_url(f"https://{deployed['api']}.execute-api.eu-west-1.amazonaws.com/dev/echo",
                       deployed["endpoint"])
    assert url == f"{deployed['endpoint']}/restapis/{deployed['api']}/dev/_user_request_/echo"
    req = urllib.request.Request(url + "?q=1", data=b'{"name": "x"}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        body = json.loads(resp.read())
    event = body["event"]
    assert event["requestContext"]["stage"] == "dev" and event["queryStringParameters"] == {"q": "1"}
    assert event["requestContext"]["apiId"] == deployed["api"] and event["httpMethod"] == "POST"
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url.replace("/echo", "/greet"), timeout=60)
    assert exc.value.code == 502 and json.loads(exc.value.read()) == {"message": "Internal server error"}
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url.replace("/echo", "/nothing"), timeout=60)
    assert exc.value.code == 403


@needs_312
def test_ups_smoke_test_runs_on_the_emulator(deployed, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", deployed["endpoint"])
    result = smoke_test(f"https://{deployed['api']}.execute-api.eu-west-1.amazonaws.com/dev/greet")
    assert result["status"] == "failed" and result["http_status"] == 502  # it really ran the broken function
    assert "_user_request_/greet" in result["url"]


def test_emulator_url_leaves_other_urls_alone():
    assert emulator_url("https://example.com/dev/health", "http://localhost:4566") == "https://example.com/dev/health"
    assert emulator_url("https://abc123.execute-api.us-east-1.amazonaws.com/prod/a/b?x=1", "http://h:1/") == (
        "http://h:1/restapis/abc123/prod/_user_request_/a/b?x=1")


@needs_312
def test_the_e2e_api_helper_reaches_the_stage_and_the_log_stream_names_the_version(deployed):
    import boto3

    sys.path.insert(0, str(ROOT / "tests"))
    from e2e import api_checks

    class _Moto:
        endpoint = deployed["endpoint"]

    class _Deployctl:
        moto = _Moto()

    logs = boto3.client("logs", endpoint_url=deployed["endpoint"], region_name="eu-west-1", **{
        k.lower(): v for k, v in FAKE_CREDENTIALS.items() if k.startswith("AWS_") and "REGION" not in k})

    def streams() -> set[str]:
        return {s["logStreamName"] for s in logs.describe_log_streams(logGroupName="/aws/lambda/rtdemo-dev-echo")
                ["logStreams"]}

    before = streams()
    outputs = {"health_url": f"https://{deployed['api']}.execute-api.eu-west-1.amazonaws.com/dev/health"}
    base = api_checks.api_base(_Deployctl(), outputs)
    assert base.endswith(f"/restapis/{deployed['api']}/dev/_user_request_") and "//" not in base.split("://", 1)[1]
    status, body, _ = api_checks.request("POST", f"{base}/echo", {"name": "v"})
    assert status == 200 and body["event"]["path"] == "/echo"
    cli(deployed["root"], "invoke", "--env", "dev", "--function", "echo", **_env_moto(deployed))  # Qualifier=live
    new = streams() - before
    assert len(new) == 2 and all("[1]" in name for name in new), new  # live -> version 1, as Lambda names them
