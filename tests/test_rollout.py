"""`deployctl promote --strategy` and `deployctl rollout`: watched rollouts against the moto server.

The emulator is the e2e suite's moto server (tests/e2e/moto_compat.py), whose Lambda executor runs
the deployed zips, so the pre-traffic invocation really runs the new version. Each test deploys the
runtime_demo fixture's functions from their built zips with version 1 on `live` and version 2 on
`staging`, creates the covering alarms under the names terraform/modules/monitoring gives them and
the env's state bucket, and drives the real CLI as a subprocess. The bake times are seconds long
through the fixture's [rollout] config (poll_s = 1), not through any test-only code path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from conftest import FAKE_CREDENTIALS
from test_invoke_deployed import compat_moto  # noqa: F401 - the shared moto server with the Lambda executor
from test_runtime import FIXTURE, needs_312

pytestmark = needs_312

ACCOUNT = "123456789012"  # moto's
PREFIX = "rtdemo-dev"
STATE_BUCKET = f"rtdemo-tfstate-{ACCOUNT}-eu-west-1"
ERRORS_ALARM = f"{PREFIX}-lambda-echo-errors"
ENV_TOML = f"""
[aws]
account_id = "{ACCOUNT}"

[rollout]
strategy = "Quick"
poll_s = 1
error_rate_percent = 10

[rollout.strategies.Quick]
steps = [{{ weight = 50, bake_s = 3 }}, {{ weight = 100, bake_s = 0 }}]

[rollout.strategies.Slow]
steps = [{{ weight = 20, bake_s = 40 }}, {{ weight = 100, bake_s = 0 }}]

[rollout.functions.echo]
smoke_route = "POST /echo"
smoke_body = '{{"name": "smoke"}}'
"""


def _client(endpoint, service):
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", aws_session_token="testing")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout") / "project"
    shutil.copytree(FIXTURE, root)
    (root / "terraform/envs/dev/env.toml").write_text(ENV_TOML)
    from deployctl.artifacts import packaging
    from deployctl.config import load_env

    cfg = load_env("dev", root)
    zips = {a.function: a.path.read_bytes() for a in packaging.build(cfg, ["echo", "greet"]).functions}
    return root, zips


@pytest.fixture
def env(compat_moto, project):  # noqa: F811
    """A clean emulator with echo and greet at v1 on live and v2 on staging, alarms OK, a state bucket."""
    urllib.request.urlopen(urllib.request.Request(f"{compat_moto}/moto-api/reset", method="POST"), timeout=10).read()
    root, zips = project
    s3, lam, iam, cw = (_client(compat_moto, s) for s in ("s3", "lambda", "iam", "cloudwatch"))
    where = {"LocationConstraint": "eu-west-1"}
    s3.create_bucket(Bucket="code", CreateBucketConfiguration=where)
    s3.create_bucket(Bucket=STATE_BUCKET, CreateBucketConfiguration=where)
    s3.put_bucket_versioning(Bucket=STATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    handlers = {"echo": "echo.handler.handler", "greet": "greet.handler.handler"}
    for name, data in zips.items():
        s3.put_object(Bucket="code", Key=f"lambda/{name}.zip", Body=data)
        physical = f"{PREFIX}-{name}"
        lam.create_function(FunctionName=physical, Runtime="python3.12", Role=role, Handler=handlers[name],
                            Timeout=5, MemorySize=128, Code={"S3Bucket": "code", "S3Key": f"lambda/{name}.zip"})
        v1 = lam.publish_version(FunctionName=physical, Description="v1")["Version"]
        lam.update_function_configuration(FunctionName=physical, Description="second build")
        v2 = lam.publish_version(FunctionName=physical, Description="v2")["Version"]
        assert (v1, v2) == ("1", "2")
        lam.create_alias(FunctionName=physical, Name="live", FunctionVersion="1")
        lam.create_alias(FunctionName=physical, Name="staging", FunctionVersion="2")
        for kind, metric, dims in (("errors", "Errors", {"FunctionName": physical}),
                                   ("throttles", "Throttles", {"FunctionName": physical}),
                                   ("dlq-depth", "ApproximateNumberOfMessagesVisible", {"QueueName": f"{physical}-dlq"})):
            cw.put_metric_alarm(AlarmName=f"{PREFIX}-lambda-{name}-{kind}", MetricName=metric,
                                Namespace="AWS/SQS" if kind == "dlq-depth" else "AWS/Lambda", Statistic="Sum",
                                Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()], Period=60,
                                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    for alarm, metric in ((f"{PREFIX}-api-5xx", "5XXError"), (f"{PREFIX}-api-p99-latency", "Latency")):
        cw.put_metric_alarm(AlarmName=alarm, MetricName=metric, Namespace="AWS/ApiGateway", Statistic="Sum",
                            Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanOrEqualToThreshold")
    return {"root": root, "endpoint": compat_moto, "lambda": lam, "s3": s3, "cloudwatch": cw}


def _environ(env) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    out.update(FAKE_CREDENTIALS)
    out.update({"DEPLOYCTL_ROOT": str(env["root"]), "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ENDPOINT_URL": env["endpoint"]})
    return out


def run(env, *args: str, expect: int = 0) -> dict:
    proc = subprocess.run([sys.executable, "-m", "deployctl", *args, "--env", "dev", "--json"], cwd=env["root"],
                          env=_environ(env), capture_output=True, text=True, timeout=120)
    assert proc.returncode == expect, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    doc = json.loads(proc.stdout)  # nothing on stdout but the one envelope
    doc["_stderr"] = proc.stderr
    return doc


def start(env, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deployctl", *args, "--env", "dev", "--json"], cwd=env["root"],
                            env=_environ(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, expect: int) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == expect, (proc.returncode, out[-3000:], err[-3000:])
    doc = json.loads(out)
    doc["_stderr"] = err
    return doc


def live(env, function: str = "echo") -> dict:
    alias = env["lambda"].get_alias(FunctionName=f"{PREFIX}-{function}", Name="live")
    return {"version": alias["FunctionVersion"],
            "weights": (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {},
            "description": alias.get("Description", "")}


def record(env, function: str = "echo") -> dict | None:
    try:
        body = env["s3"].get_object(Bucket=STATE_BUCKET, Key=f"deployctl/rollouts/dev/{function}.json")["Body"]
    except env["s3"].exceptions.NoSuchKey:
        return None
    return json.loads(body.read())


def wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def canary_started(env, proc: subprocess.Popen) -> None:
    wait_for(lambda: live(env)["weights"] == {"2": 0.2} or proc.poll() is not None, "the first step's weight")
    assert proc.poll() is None, proc.communicate()


def test_a_healthy_canary_reaches_100_percent_with_every_step_in_the_envelope(env):
    doc = run(env, "promote", "--function", "echo", "--strategy", "config")
    (result,) = doc["result"]["rollouts"]
    assert result["outcome"] == "promoted" and result["strategy"] == "Quick" and result["engine"] == "lambda-alias"
    assert result["pre_traffic"]["ok"] and result["pre_traffic"]["status_code"] == 200
    assert [(s["weight"], s["bake_s"], s["outcome"]) for s in result["steps"]] == [(50, 3, "passed"), (100, 0, "passed")]
    first = result["steps"][0]
    assert len(first["readings"]) >= 3  # at once, then every poll_s through the 3 s bake
    assert first["readings"][0]["alarms"][ERRORS_ALARM] == "OK" and f"{PREFIX}-api-5xx" in first["readings"][0]["alarms"]
    assert first["started"] <= first["ended"]
    state = live(env)
    assert state["version"] == "2" and state["weights"] == {}
    assert json.loads(state["description"])["deployctl_previous"][0] == "1"  # `rollback` undoes it
    assert record(env) is None
    assert run(env, "rollout", "status")["result"]["rollouts"] == []


def test_a_covering_alarm_going_off_mid_bake_rolls_back_within_one_poll(env):
    proc = start(env, "promote", "--function", "echo", "--strategy", "Slow")
    canary_started(env, proc)
    env["cloudwatch"].set_alarm_state(AlarmName=ERRORS_ALARM, StateValue="ALARM", StateReason="Threshold Crossed",
                                      StateReasonData=json.dumps({"recentDatapoints": [3.0]}))
    fired = time.monotonic()
    doc = finish(proc, 1)
    assert time.monotonic() - fired < 10  # the bake had 40 s to go: it stopped at the next poll (poll_s = 1)
    assert live(env) == {**live(env), "version": "1", "weights": {}}
    assert doc["ok"] is False and doc["error"]["exit_code"] == 1
    assert f"{ERRORS_ALARM} fired (value 3.0, threshold 1.0)" in doc["error"]["message"]
    (result,) = doc["result"]["rollouts"]
    assert result["outcome"] == "rolled_back" and result["breach"]["signal"] == ERRORS_ALARM
    assert result["steps"][0]["outcome"] == "breach" and result["steps"][0]["readings"][-1]["alarms"][ERRORS_ALARM] == "ALARM"
    assert record(env) is None


def test_the_new_versions_error_rate_crossing_the_threshold_rolls_back(env):
    proc = start(env, "promote", "--function", "echo", "--strategy", "Slow")
    canary_started(env, proc)
    dims = [{"Name": "FunctionName", "Value": f"{PREFIX}-echo"}, {"Name": "Resource", "Value": f"{PREFIX}-echo:live"},
            {"Name": "ExecutedVersion", "Value": "2"}]
    now = datetime.now(UTC)
    env["cloudwatch"].put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Invocations", "Dimensions": dims, "Value": 20, "Timestamp": now},
        {"MetricName": "Errors", "Dimensions": dims, "Value": 5, "Timestamp": now},
        # the old version's errors are not the new version's
        {"MetricName": "Errors", "Dimensions": [*dims[:2], {"Name": "ExecutedVersion", "Value": "1"}], "Value": 1,
         "Timestamp": now}])
    fired = time.monotonic()
    doc = finish(proc, 1)
    assert time.monotonic() - fired < 10
    assert live(env)["version"] == "1" and live(env)["weights"] == {}
    assert doc["result"]["rollouts"][0]["breach"] == {
        "signal": "error-rate", "value": 25.0, "threshold": 10.0,
        "detail": "version 2: 5 errors in 20 invocations (ExecutedVersion, since the rollout started)"}
    assert "error-rate fired (value 25.0, threshold 10.0)" in doc["error"]["message"]


def test_a_firing_alarm_refuses_the_start_and_ignore_alarm_records_why(env):
    env["cloudwatch"].set_alarm_state(AlarmName=ERRORS_ALARM, StateValue="ALARM", StateReason="Threshold Crossed",
                                      StateReasonData=json.dumps({"recentDatapoints": [7.0]}))
    doc = run(env, "promote", "--function", "echo", "--strategy", "Quick", expect=4)
    assert doc["error"]["error"] == "refused" and ERRORS_ALARM in doc["error"]["message"]
    assert "value 7.0, threshold 1.0" in doc["error"]["message"] and "--ignore-alarm" in doc["error"]["hint"]
    assert live(env)["version"] == "1" and record(env) is None
    run(env, "promote", "--function", "echo", "--strategy", "Quick", "--ignore-alarm", ERRORS_ALARM, expect=2)

    proc = start(env, "promote", "--function", "echo", "--strategy", "Quick", "--ignore-alarm", ERRORS_ALARM,
                 "--reason", "hotfix for the errors alarm")
    held = wait_for(lambda: record(env), "the rollout record")
    assert held["ignored_alarms"] == [{"name": ERRORS_ALARM, "reason": "hotfix for the errors alarm"}]
    assert {"function", "from", "to", "step", "started", "by", "deadline"} <= set(held)
    doc = finish(proc, 0)
    assert doc["result"]["rollouts"][0]["ignored_alarms"] == held["ignored_alarms"]
    state = live(env)
    assert state["version"] == "2"
    assert json.loads(state["description"])["deployctl_note"] == f"ignored {ERRORS_ALARM}: hotfix for the errors alarm"


def test_sigint_mid_bake_rolls_back_and_exits_130(env):
    proc = start(env, "promote", "--function", "echo", "--strategy", "Slow")
    canary_started(env, proc)
    proc.send_signal(signal.SIGINT)
    doc = finish(proc, 130)
    assert doc["error"]["error"] == "interrupted" and doc["result"]["rollouts"][0]["outcome"] == "interrupted"
    assert live(env)["version"] == "1" and live(env)["weights"] == {} and record(env) is None


def test_a_killed_runner_leaves_a_record_that_status_shows_abort_undoes_and_resume_finishes(env):
    proc = start(env, "promote", "--function", "echo", "--strategy", "Slow")
    canary_started(env, proc)
    proc.kill()
    proc.communicate()
    # its lease has not run out (2 polls + 3 s): resume waits for the runner
    assert "its runner is alive" in run(env, "rollout", "resume", expect=4)["error"]["hint"]
    assert live(env)["weights"] == {"2": 0.2}
    shown = run(env, "rollout", "status", "--function", "echo")["result"]["rollouts"]
    assert [(r["function"], r["from"], r["to"], r["step"]) for r in shown] == [("echo", "1", "2", 0)]
    assert shown[0]["live"] == {"version": "1", "weights": {"2": 0.2}} and shown[0]["by"] and shown[0]["deadline"]
    # the others see it in one line and refuse
    refused = run(env, "promote", "--function", "echo", "--yes", expect=4)
    assert "unfinished rollout of echo v1 -> v2 at step 1/2 (20%)" in refused["error"]["message"]
    assert run(env, "publish-lambda", "--function", "echo", "--deploy", expect=4)["error"]["error"] == "refused"
    assert "up refused: unfinished rollout of echo" in run(env, "up", "--yes", expect=4)["error"]["message"]
    doctor = subprocess.run([sys.executable, "-m", "deployctl", "doctor", "--env", "dev", "--json"], cwd=env["root"],
                            env=_environ(env), capture_output=True, text=True, timeout=120)
    check = json.loads(doctor.stdout)["result"]["checks"]["rollouts"]  # a warning, whatever else doctor finds
    assert check["ok"] is False and check["required"] is False and "unfinished rollout of echo" in check["detail"]
    # abort undoes it at once, lease or not
    aborted = run(env, "rollout", "abort")["result"]["rollouts"]
    assert [(r["function"], r["outcome"]) for r in aborted] == [("echo", "aborted")]
    assert live(env)["version"] == "1" and live(env)["weights"] == {} and record(env) is None

    proc = start(env, "promote", "--function", "echo", "--strategy", "Quick")
    wait_for(lambda: live(env)["weights"] == {"2": 0.5}, "the first step")
    proc.kill()
    proc.communicate()
    deadline = datetime.fromisoformat(record(env)["deadline"])
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 1)  # the dead runner's lease runs out
    doc = run(env, "rollout", "resume", "--function", "echo")
    (result,) = doc["result"]["rollouts"]
    assert result["outcome"] == "promoted" and [s["weight"] for s in result["steps"]] == [50, 100]
    assert live(env)["version"] == "2" and live(env)["weights"] == {} and record(env) is None


def test_abort_with_nothing_to_abort_exits_0(env):
    assert run(env, "rollout", "abort")["result"]["rollouts"] == []  # what the workflow runs after a failed job


def test_two_runners_on_one_function_the_second_refuses(env):
    first = start(env, "promote", "--function", "echo", "--strategy", "Slow")
    canary_started(env, first)
    owner = record(env)["by"]
    second = run(env, "promote", "--function", "echo", "--strategy", "Quick", expect=4)
    assert second["error"]["error"] == "refused" and owner in second["error"]["message"]
    assert live(env)["weights"] == {"2": 0.2}  # the second moved nothing
    first.send_signal(signal.SIGTERM)
    assert finish(first, 130)["result"]["rollouts"][0]["outcome"] == "interrupted"
    assert live(env)["version"] == "1"


def test_the_record_is_written_only_under_guard(env):
    from deployctl.config import load_env
    from deployctl.delivery.record import LostOwnership, RecordStore

    cfg = load_env("dev", env["root"])
    store = RecordStore(cfg, s3=env["s3"])
    etag = store.create("echo", {"function": "echo", "step": 0})
    with pytest.raises(LostOwnership):
        store.create("echo", {"function": "echo", "step": 0})  # If-None-Match: *
    mine = store.replace("echo", {"function": "echo", "step": 1}, etag)
    with pytest.raises(LostOwnership):
        store.replace("echo", {"function": "echo", "step": 2}, etag)  # a stale ETag: someone else's view
    with pytest.raises(LostOwnership):
        store.delete("echo", etag)
    store.delete("echo", mine)
    assert record(env) is None


def test_all_rolls_out_every_moved_function_in_parallel_and_a_failing_pre_traffic_check_moves_nothing(env):
    doc = run(env, "promote", "--all", "--strategy", "Quick", expect=1)
    echo, greet = doc["result"]["rollouts"]  # both had staging (v2) ahead of live (v1); each its own state
    assert echo["function"] == "echo" and echo["outcome"] == "promoted"
    assert greet["outcome"] == "failed" and greet["steps"] == []
    assert greet["pre_traffic"]["request"] == "GET /greet" and greet["pre_traffic"]["function_error"]
    assert "greet: pre-traffic check of v2 failed" in doc["error"]["message"]
    assert "no traffic was moved" in doc["error"]["message"]
    assert live(env, "greet") == {**live(env, "greet"), "version": "1", "weights": {}}
    assert live(env, "echo")["version"] == "2" and record(env, "greet") is None and record(env, "echo") is None


def test_sams_strategy_names_and_custom_steps_from_config(tmp_path):
    from deployctl.artifacts.aliases import parse_history, parse_note, render_history
    from deployctl.config import load_env
    from deployctl.delivery.strategy import SAM_STRATEGIES, Step, resolve, sam_steps
    from deployctl.errors import ConfigError, UsageError

    assert sam_steps("Canary10Percent5Minutes") == [Step(10, 300), Step(100, 0)]
    assert sam_steps("Linear10PercentEvery3Minutes") == [*(Step(w, 180) for w in range(10, 100, 10)), Step(100, 0)]
    assert sam_steps("AllAtOnce") == [Step(100, 0)] and all(sam_steps(n)[-1].weight == 100 for n in SAM_STRATEGIES)
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    env_toml = root / "terraform/envs/dev/env.toml"
    env_toml.write_text(ENV_TOML)
    cfg = load_env("dev", root)
    assert resolve(cfg, "echo") == ("Quick", [Step(50, 3), Step(100, 0)])  # [rollout] strategy
    with pytest.raises(UsageError, match="unknown strategy 'Canary'"):
        resolve(cfg, "echo", "Canary")
    falling = ENV_TOML.replace("{ weight = 50, bake_s = 3 }, { weight = 100", "{ weight = 50, bake_s = 3 }, { weight = 40")
    assert falling != ENV_TOML
    env_toml.write_text(falling)
    with pytest.raises(ConfigError, match=r"rollout\.strategies\.Quick\.steps': expected weights rising"):
        load_env("dev", root)
    env_toml.write_text(ENV_TOML + '\n[rollout.functions.nope]\nstrategy = "AllAtOnce"\n')
    with pytest.raises(ConfigError, match=r"rollout\.functions\.nope"):
        load_env("dev", root)
    # the reason of an ignored alarm fits the alias Description (256 characters) with the history
    text = render_history([str(v) for v in range(20)], "ignored x: " + "why " * 100)
    assert len(text) <= 256 and parse_history(text)[:3] == ["0", "1", "2"] and parse_note(text).startswith("ignored x")


def test_publish_lambda_promote_with_a_strategy_runs_the_same_watched_rollout(env):
    """One process for publish and rollout: the record, the pre-traffic check and the steps of
    `promote --strategy config`, after the deploy moved staging."""
    s3, kms = env["s3"], _client(env["endpoint"], "kms")
    bucket = f"{PREFIX}-artifacts-{ACCOUNT}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kms.create_alias(AliasName=f"alias/{PREFIX}", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    manifest = env["root"] / "terraform/envs/dev/artifacts.json"
    try:
        doc = run(env, "publish-lambda", "--function", "echo", "--promote", "--strategy", "config")
    finally:
        manifest.unlink(missing_ok=True)  # the module's project: other tests start without a manifest
    deployed = doc["result"]["deployed"]["echo"]["version"]
    (result,) = doc["result"]["promoted"]
    assert result["outcome"] == "promoted" and result["strategy"] == "Quick" and result["to"] == deployed
    assert result["pre_traffic"]["ok"] and result["pre_traffic"]["status_code"] == 200
    assert [(s["weight"], s["outcome"]) for s in result["steps"]] == [(50, "passed"), (100, "passed")]
    assert live(env)["version"] == deployed and record(env) is None
