"""deployctl logs against a real moto server over HTTP, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from deployctl.cli import cli
from deployctl.config import Settings, load_env
from deployctl.ops import logs as core
from test_publish import use_account

FIXTURE = Path(__file__).parent / "fixtures" / "lambda_src_demo"
ALPHA = "/aws/lambda/demo-dev-alpha"
BETA = "/aws/lambda/demo-dev-beta"
API = "/aws/apigateway/demo-dev/dev/access"

POWERTOOLS = {"level": "INFO", "location": "handler:12", "message": "item.created", "timestamp": "2026-01-01 00:00:00",
              "service": "demo", "requestId": "req-1", "function": "alpha", "itemId": "abc", "ms": 12}
ACCESS = {"requestId": "api-req-9", "httpMethod": "POST", "path": "/items", "resourcePath": "/items", "status": "201",
          "responseLatency": "33", "errorMessage": "-"}


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


def put(group: str, *messages: str, stream: str = "2026/01/01/[$LATEST]abc", at_ms: int | None = None) -> None:
    client = boto3.client("logs")
    try:
        client.create_log_group(logGroupName=group)
    except client.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        client.create_log_stream(logGroupName=group, logStreamName=stream)
    except client.exceptions.ResourceAlreadyExistsException:
        pass
    now = at_ms or int(time.time() * 1000)
    client.put_log_events(logGroupName=group, logStreamName=stream,
                          logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def run(args: list[str], root: Path, **extra_env: str):
    env = {"DEPLOYCTL_ROOT": str(root), **extra_env}
    return CliRunner().invoke(cli, args, obj=Settings.from_environ(env), env=env, catch_exceptions=False)


@pytest.fixture
def logged(project, aws_env):
    put(ALPHA, "START RequestId: req-1 Version: 3", json.dumps(POWERTOOLS),
        json.dumps({**POWERTOOLS, "level": "ERROR", "message": "boom", "requestId": "req-2"}),
        "END RequestId: req-1")
    put(API, json.dumps(ACCESS), stream="api")
    return project


def test_json_passes_the_records_through_in_the_envelope(logged):
    res = run(["logs", "--env", "dev", "--json"], logged)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["command"] == "logs"
    result = doc["result"]
    assert result["groups"]["alpha"] == ALPHA and result["groups"]["api"] == API
    # beta and gamma never ran: their groups do not exist, which is said, not an error
    assert BETA in result["missing"]
    events = result["events"]
    assert [e["source"] for e in events].count("alpha") == 4
    records = [e["record"] for e in events if e["record"] and e["source"] == "alpha"]
    assert records[0] == POWERTOOLS
    api = [e for e in events if e["source"] == "api"]
    assert api[0]["record"]["requestId"] == "api-req-9" and api[0]["group"] == API
    assert all(e["eventId"] for e in events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)


def test_human_lines_are_readable_without_colour_off_a_terminal(logged):
    res = run(["logs", "--env", "dev", "--function", "alpha"], logged)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 4  # only alpha: no API line
    info = next(ln for ln in lines if "item.created" in ln)
    # time, level, function, request id, message, then the extra keys
    parts = info.split()
    assert parts[0].endswith("Z") and parts[1] == "INFO" and parts[2] == "alpha" and parts[3] == "req-1"
    assert parts[4] == "item.created" and "itemId=abc" in parts[5:] and "ms=12" in parts[5:]
    assert "location=" not in info and "service=" not in info
    assert any(ln.split()[1:3] == ["alpha", "START"] for ln in lines)  # non-JSON lines shown plainly
    assert "\x1b[" not in res.stdout


def test_colour_is_forced_only_without_no_color(logged):
    coloured = run(["logs", "--env", "dev", "--function", "alpha"], logged, FORCE_COLOR="1")
    assert "\x1b[31;1mERROR" in coloured.stdout
    plain = run(["logs", "--env", "dev", "--function", "alpha"], logged, FORCE_COLOR="1", NO_COLOR="1")
    assert "\x1b[" not in plain.stdout and "ERROR" in plain.stdout


def test_api_access_log_and_filter(logged):
    res = run(["logs", "--env", "dev", "--api"], logged)
    assert res.exit_code == 0, res.output
    assert res.stdout.split()[1:6] == ["API", "api-req-9", "POST", "/items", "201"]
    res = run(["logs", "--env", "dev", "--function", "alpha", "--filter", "boom", "--json"], logged)
    events = json.loads(res.stdout)["result"]["events"]
    assert [e["record"]["message"] for e in events] == ["boom"]


def test_since_leaves_out_older_lines(logged):
    put(ALPHA, json.dumps({**POWERTOOLS, "message": "old"}), stream="old", at_ms=int((time.time() - 3600) * 1000))
    recent = json.loads(run(["logs", "--env", "dev", "--function", "alpha", "--since", "10m", "--json"],
                            logged).stdout)["result"]["events"]
    assert "old" not in [(e["record"] or {}).get("message") for e in recent]
    older = json.loads(run(["logs", "--env", "dev", "--function", "alpha", "--since", "2h", "--json"],
                           logged).stdout)["result"]["events"]
    assert "old" in [(e["record"] or {}).get("message") for e in older]


def test_bad_flags_are_one_line_usage_errors(logged):
    res = run(["logs", "--env", "dev", "--since", "yesterday", "--json"], logged)
    assert res.exit_code == 2 and json.loads(res.stdout)["error"]["where"] == "--since"
    res = run(["logs", "--env", "dev", "--function", "nope", "--json"], logged)
    assert res.exit_code == 2 and "nope" in json.loads(res.stdout)["error"]["message"]
    res = run(["logs", "--env", "dev", "--function", "alpha", "--api", "--json"], logged)
    assert res.exit_code == 2


def test_other_accounts_credentials_are_refused(logged, monkeypatch):
    use_account(monkeypatch, "222222222222")
    res = run(["logs", "--env", "dev", "--json"], logged)
    assert res.exit_code == 4 and json.loads(res.stdout)["error"]["error"] == "refused"


def test_follower_dedupes_by_event_id_and_backs_off(logged):
    cfg = load_env("dev", logged)
    waits: list[float] = []
    follower = core.Follower(boto3.client("logs"), core.log_groups(cfg, ["alpha"]), core.parse_since("10m"),
                             interval=(0.1, 0.5), sleep=waits.append)
    got: list[str] = []
    follower.run(lambda ev: got.append(ev.event_id), polls=4)
    assert len(got) == 4 and len(set(got)) == 4  # every event once, though each poll re-asks the look-back window
    assert waits[0] == 0.1 and waits[1] > waits[0] and max(waits) <= 0.5


def test_follow_prints_new_lines_then_exits_0_on_ctrl_c(logged, aws_env):
    env = {**aws_env, "DEPLOYCTL_ROOT": str(logged), "DEPLOYCTL_LOGS_POLL_S": "0.1", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "logs", "--env", "dev", "--function", "alpha",
                             "--follow", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        seen = []
        for _ in range(4):  # what was there before
            seen.append(json.loads(proc.stdout.readline()))
        put(ALPHA, json.dumps({**POWERTOOLS, "message": "after-start"}), stream="later")
        line = json.loads(proc.stdout.readline())
        assert line["record"]["message"] == "after-start" and line["source"] == "alpha"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rest = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    ids = [e["eventId"] for e in seen + [line] + rest]
    assert len(ids) == len(set(ids)) == 5  # JSON Lines, each event once, no envelope
    assert "Traceback" not in err
