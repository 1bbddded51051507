"""The built zips run as Lambda runs them: `deployctl invoke --local`, `deployctl local --artifacts`,
`deployctl event`, and the runtime worker (deployctl/local/runtime.py) itself.

Real components only: the zips `deployctl package` builds from tests/fixtures/runtime_demo, a real
python3.12 worker process (pyenv's or PATH's), the real CLI as a subprocess, real HTTP. The SDK the
worker gets (boto3/botocore as the Lambda runtime bundles them) is installed once into the user cache
by pip and reused offline afterwards.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from deployctl.config import load_env
from deployctl.errors import ToolMissing
from deployctl.local import runtime

FIXTURE = ROOT / "tests/fixtures/runtime_demo"
IMPORT_ERROR = "Unable to import module 'greet.handler': No module named 'greet.formats'"


def _has_python312() -> bool:
    try:
        runtime.find_interpreter("python3.12")
    except ToolMissing:
        return False
    return True


needs_312 = pytest.mark.skipif(not _has_python312(), reason="no python3.12 on this machine (pyenv or PATH)")


@pytest.fixture
def project(tmp_path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(FIXTURE, dest)
    return dest


def _env(root: Path, **extra: str) -> dict[str, str]:
    # (the SDK install's place stays: conftest points it at the one the suite already made)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "DEPLOYCTL_")) or k == runtime.SDK_CACHE_ENV}
    env.update({"DEPLOYCTL_ROOT": str(root), "AWS_EC2_METADATA_DISABLED": "true", **extra})
    return env


def cli(root: Path, *args: str, stdin: str | None = None, expect: int = 0, **extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "deployctl", *args, "--json"], cwd=root, env=_env(root, **extra),
                          input=stdin, capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    doc = json.loads(proc.stdout)
    doc["_stderr"] = proc.stderr
    return doc


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _spec(handler: str, files: dict[str, str], layers: list[dict[str, str]] = (), timeout_s: float = 5.0):
    return runtime.FunctionSpec(name="t-fn", handler=handler, runtime="python3.12",
                                code=runtime.Code(_zip(files), [_zip(layer) for layer in layers]),
                                timeout_s=timeout_s)


# -- the acceptance case: a zip that leaves out a module its handler imports ------------------------


@needs_312
def test_a_zip_missing_a_module_fails_invoke_local_with_lambdas_import_error_but_not_in_process_local(project):
    # the built zip of `greet` lacks greet/formats.py: the handler loads it by name, which packaging cannot see
    cfg = load_env("dev", project)
    from deployctl.artifacts import packaging

    built = packaging.build(cfg, ["greet"]).functions[0]
    names = zipfile.ZipFile(built.path).namelist()
    assert sorted(n for n in names if n.endswith(".py")) == ["greet/__init__.py", "greet/handler.py"]
    # the bytecode shipped beside them (when a python3.12 compiled it) is theirs only
    assert {n for n in names if not n.endswith(".py")} <= {"greet/__pycache__/__init__.cpython-312.pyc",
                                                          "greet/__pycache__/handler.cpython-312.pyc"}

    doc = cli(project, "invoke", "--local", "--function", "greet", expect=1)
    result = doc["result"]
    assert doc["ok"] is False and doc["error"]["error"] == "failed" and doc["error"]["exit_code"] == 1
    assert result["function_error"] == "Unhandled"
    assert result["payload"] == {"errorMessage": IMPORT_ERROR, "errorType": "Runtime.ImportModuleError",
                                 "requestId": "", "stackTrace": []}
    assert f"[ERROR] Runtime.ImportModuleError: {IMPORT_ERROR}" in result["log"]
    assert "Init Duration:" in result["log"]
    assert IMPORT_ERROR in doc["_stderr"]  # the one error line

    # the in-process `deployctl local` imports lambda_src/ itself and never notices
    from deployctl.local.server import LocalApp

    app = LocalApp(cfg)
    app.load_handlers()
    reply = app.invoke("greet", {"httpMethod": "GET", "path": "/greet"}, "r1")
    assert reply.status == 200 and json.loads(reply.body) == {"message": "hello, world"}


# -- the execution environment ---------------------------------------------------------------------


@needs_312
def test_invoke_local_runs_the_built_zip_on_python312_with_only_lambdas_path_and_sdk(project):
    event = {"hello": "world"}
    doc = cli(project, "invoke", "--local", "--function", "echo", "--event", "-", stdin=json.dumps(event))
    result = doc["result"]
    assert doc["ok"] and result["status_code"] == 200 and result["function_error"] is None and result["local"]
    body = json.loads(result["payload"]["body"])
    assert body["event"] == event
    assert body["python"] == "3.12"
    boto3_pin, botocore_pin = runtime.RUNTIME_SDK["python3.12"]
    assert (body["boto3"], body["botocore"]) == (boto3_pin, botocore_pin)
    path = body["sys_path"]
    task = Path(path[0])
    assert (task / "echo" / "handler.py").is_file() and task.is_relative_to(project / ".deployctl/cache/runtime")
    assert Path(path[1]) == runtime.ensure_sdk("python3.12")
    assert all("site-packages" not in p and ".venv" not in p for p in path[2:]), path  # stdlib only after that
    assert not os.access(task / "echo" / "handler.py", os.W_OK) or os.geteuid() == 0  # read-only code
    # /var/task is the zip as shipped (its __pycache__ included) and nothing else: no bytecode written
    from deployctl.artifacts import packaging

    shipped = zipfile.ZipFile(packaging.build(load_env("dev", project), ["echo"]).functions[0].path).namelist()
    assert any(n.endswith(".cpython-312.pyc") for n in shipped)
    assert sorted(p.relative_to(task).as_posix() for p in task.rglob("*") if p.is_file()) == sorted(shipped)
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "rtdemo-dev-echo" and env["_HANDLER"] == "echo.handler.handler"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["HOME"] is None and env["VIRTUAL_ENV"] is None  # nothing inherited from deployctl's process
    assert body["greeting"] == "hello"  # the function's configured environment
    ctx = body["context"]
    assert ctx["function_name"] == "rtdemo-dev-echo" and ctx["memory_limit_in_mb"] == "128"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:111111111111:function:rtdemo-dev-echo"
    assert 0 < ctx["remaining_ms"] <= 5000 and ctx["aws_request_id"]
    log = result["log"].splitlines()
    assert log[0] == "echo: init" and log[1].startswith("START RequestId: ") and log[2] == "echo: invocation 1"
    assert log[3].startswith("END RequestId: ") and log[4].startswith("REPORT RequestId: ")
    assert "\tInit Duration: " in log[4] and result["init_duration_ms"] > 0


@needs_312
def test_a_worker_is_warm_and_reused_and_a_cold_start_reports_init_duration(tmp_path):
    files = {"app.py": "N = [0]\ndef handler(event, context):\n    N[0] += 1\n    return {'n': N[0]}\n"}
    spec = _spec("app.handler", files)
    with runtime.Runtime("python3.12", tmp_path / "cache") as rt:
        first, second = rt.invoke(spec, {}), rt.invoke(spec, {})
        assert (json.loads(first.payload), json.loads(second.payload)) == ({"n": 1}, {"n": 2})
        assert first.init_duration_ms is not None and "Init Duration" in first.log
        assert second.init_duration_ms is None and "Init Duration" not in second.log
        other = _spec("app.handler", {**files, "extra.py": ""})  # new code: a new environment
        assert json.loads(rt.invoke(other, {}).payload) == {"n": 1}


@needs_312
def test_lambdas_error_shapes(tmp_path):
    with runtime.Runtime("python3.12", tmp_path / "cache") as rt:
        inv = rt.invoke(_spec("app.nothere", {"app.py": "x = 1\n"}), {}, request_id="req-1")
        assert inv.function_error == "Unhandled"
        assert json.loads(inv.payload) == {"errorMessage": "Handler 'nothere' missing on module 'app'",
                                           "errorType": "Runtime.HandlerNotFound", "requestId": "req-1",
                                           "stackTrace": []}
        inv = rt.invoke(_spec("nodots", {"app.py": ""}), {})
        assert json.loads(inv.payload)["errorType"] == "Runtime.MalformedHandlerName"
        assert json.loads(inv.payload)["errorMessage"].startswith("Bad handler 'nodots': ")
        inv = rt.invoke(_spec("app.handler", {"app.py": "def handler(e, c):\n    raise KeyError('k')\n"}), {},
                        request_id="req-2")
        doc = json.loads(inv.payload)
        assert (doc["errorType"], doc["errorMessage"], doc["requestId"]) == ("KeyError", "'k'", "req-2")
        assert doc["stackTrace"] and "app.py" in doc["stackTrace"][0] and "lambda_worker" not in "".join(doc["stackTrace"])
        assert "[ERROR] KeyError: 'k'" in inv.log
        inv = rt.invoke(_spec("app.handler", {"app.py": "def handler(e, c):\n    return object()\n"}), {})
        assert json.loads(inv.payload)["errorType"] == "Runtime.MarshalError"
        # a module the layer provides is importable from /opt/python, one it does not is Lambda's import error
        layered = _spec("app.handler", {"app.py": "import helper\ndef handler(e, c):\n    return helper.X\n"},
                        layers=[{"python/helper.py": "X = 'from the layer'\n"}])
        assert json.loads(rt.invoke(layered, {}).payload) == "from the layer"
        unlayered = _spec("app.handler", {"app.py": "import helper\ndef handler(e, c):\n    return 1\n"})
        assert json.loads(rt.invoke(unlayered, {}).payload)["errorMessage"] == (
            "Unable to import module 'app': No module named 'helper'")
        # the dev venv's packages are not there either (click is a deployctl dependency)
        venv_only = _spec("app.handler", {"app.py": "import click\ndef handler(e, c):\n    return 1\n"})
        assert json.loads(rt.invoke(venv_only, {}).payload)["errorType"] == "Runtime.ImportModuleError"


@needs_312
def test_a_timeout_is_lambdas_and_discards_the_environment(tmp_path):
    files = {"app.py": "import time\nN = [0]\ndef handler(e, c):\n    N[0] += 1\n    time.sleep(e.get('s', 0))\n"
                       "    return N[0]\n"}
    spec = _spec("app.handler", files, timeout_s=1.0)
    with runtime.Runtime("python3.12", tmp_path / "cache") as rt:
        assert json.loads(rt.invoke(spec, {}).payload) == 1
        inv = rt.invoke(spec, {"s": 5}, request_id="slow")
        assert inv.function_error == "Unhandled"
        assert json.loads(inv.payload) == {"errorType": "Sandbox.Timedout",
                                           "errorMessage": "RequestId: slow Error: Task timed out after 1.00 seconds"}
        again = rt.invoke(spec, {})
        assert json.loads(again.payload) == 1 and again.init_duration_ms is not None  # a new, cold environment


def test_a_missing_interpreter_is_one_line_naming_the_version(project, tmp_path):
    with pytest.raises(ToolMissing) as exc:
        old = dict(os.environ)
        try:
            os.environ.update({"PATH": str(tmp_path), "PYENV_ROOT": str(tmp_path), "HOME": str(tmp_path)})
            os.environ.pop(runtime.INTERPRETER_ENV, None)
            runtime.find_interpreter("python3.99")
        finally:
            os.environ.clear()
            os.environ.update(old)
    assert "no Python 3.99 interpreter" in exc.value.message and "pyenv install 3.99" in exc.value.hint
    # through the CLI: an interpreter of another version named by DEPLOYCTL_LAMBDA_PYTHON, exit 3
    doc = cli(project, "invoke", "--local", "--function", "echo", expect=3,
              DEPLOYCTL_LAMBDA_PYTHON=sys.executable)
    assert doc["error"]["error"] == "tool_missing" and "is not a Python 3.12 interpreter" in doc["error"]["message"]
    assert len([ln for ln in doc["_stderr"].splitlines() if ln.startswith("error:")]) == 1


# -- deployctl event --------------------------------------------------------------------------------


def test_event_builds_the_rest_proxy_event_and_rejects_what_api_gateway_rejects():
    doc = cli(ROOT, "event", "--route", "GET /users/{userId}", "--path", "userId=u 1", "--query", "a=1",
              "--query", "a=2", "--env", "dev")
    assert doc["result"]["function"] == "users"
    ev = doc["result"]["event"]
    assert ev["resource"] == "/users/{userId}" and ev["path"] == "/users/u%201"
    assert ev["pathParameters"] == {"userId": "u 1"} and ev["httpMethod"] == "GET"
    assert ev["queryStringParameters"] == {"a": "2"} and ev["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert ev["multiValueHeaders"]["Accept"] == ["application/json"] and ev["body"] is None
    ctx = ev["requestContext"]
    assert ctx["stage"] == "dev" and ctx["path"] == "/dev/users/u%201" and ctx["resourcePath"] == "/users/{userId}"
    assert ctx["httpMethod"] == "GET" and ctx["requestId"] and ctx["identity"]["sourceIp"] == "127.0.0.1"

    post = cli(ROOT, "event", "--route", "POST /items", "--body", '{"name": "first"}')["result"]["event"]
    assert post["body"] == '{"name": "first"}' and post["headers"]["Content-Type"] == "application/json"

    bad = cli(ROOT, "event", "--route", "POST /items", "--body", '{"nope": 1}', expect=2)
    assert bad["error"]["message"] == "API Gateway would answer 400 Invalid request body"
    missing = cli(ROOT, "event", "--route", "DELETE /items", expect=2)
    assert missing["error"]["message"] == "API Gateway would answer 403 Missing Authentication Token"
    assert "GET /items" in missing["error"]["hint"]
    no_param = cli(ROOT, "event", "--route", "GET /users/{userId}", expect=2)
    assert "userId" in no_param["error"]["message"] and no_param["error"]["where"] == "--path"


# -- deployctl local --artifacts ------------------------------------------------------------------


@needs_312
def test_local_artifacts_serves_the_built_zips_behind_the_same_gateway_checks(project):
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "local", "--artifacts", "--port", "0"],
                            cwd=project, env=_env(project), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:]
        url = line.split()[-1]  # "deployctl local: serving ... on http://127.0.0.1:PORT"

        def call(method, path, body=None):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, body = call("POST", "/echo", {"name": "a"})
        assert status == 200 and json.loads(body["event"]["body"]) == {"name": "a"}
        assert body["python"] == "3.12" and body["invocations"] == 1
        assert call("POST", "/echo", {"name": "b"})[1]["invocations"] == 2  # the same warm worker
        assert call("POST", "/echo", {"name": ""})[0] == 400  # the gateway's validation, before any worker
        status, body = call("GET", "/greet")
        assert status == 502 and body["message"] == "Internal server error"  # the import error, as API Gateway answers
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert IMPORT_ERROR in err


def test_a_zip_entry_outside_the_code_directory_is_refused_and_nothing_is_written(tmp_path):
    from deployctl.errors import OperationFailed

    cache = tmp_path / "cache"
    for name in ("../escaped.py", "/tmp/absolute-escape.py", "a/../../escaped2.py"):
        code = runtime.Code(_zip({"ok.py": "", name: "x = 1\n"}))
        with pytest.raises(OperationFailed, match="escapes the code directory"):
            code.layout(cache)
    assert not (tmp_path / "escaped.py").exists() and not (cache / "escaped2.py").exists()
    assert not Path("/tmp/absolute-escape.py").exists()
    assert not list((cache / "task").glob("*/ok.py"))  # nothing half-unpacked is left as a layout
