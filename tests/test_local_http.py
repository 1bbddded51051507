"""`deployctl local` started as a subprocess, exercised over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


class LocalServer:
    """A running `python -m deployctl local --port 0` and a tiny HTTP client for it."""

    def __init__(self, proc: subprocess.Popen, url: str, stderr: Path):
        self.proc = proc
        self.url = url
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.stderr = stderr

    def request(self, method: str, target: str, body: bytes | str | dict | None = None,
                headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for k, v in (headers or {"Content-Type": "application/json"}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, target: str, body=None, headers=None) -> tuple[int, dict | None]:
        status, _, data = self.request(method, target, body, headers)
        return status, (json.loads(data) if data else None)

    def log(self) -> str:
        return self.stderr.read_text()

    def wait_log(self, pattern: str, timeout: float = 10) -> re.Match | None:
        """The request line is logged after the response is sent: poll for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def start_local(*args: str, timeout: float = 30, ignore_sigint: bool = False) -> LocalServer:
    """Start the server on a free port; return once it printed its URL. ``ignore_sigint``
    starts it as a non-interactive shell starts a background job (``deployctl local &``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    errfile = Path(tempfile.mkstemp(prefix="deployctl-local-", suffix=".log")[1])
    with errfile.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "deployctl", "local", "--port", "0", *args],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=_ignore_sigint if ignore_sigint else None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+)\s*$", line)
            if found:
                return LocalServer(proc, found.group(1), errfile)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"deployctl local did not start:\n{errfile.read_text()}")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_local(server: LocalServer, sig: int = signal.SIGTERM) -> int:
    server.proc.send_signal(sig)
    try:
        return server.proc.wait(timeout=15)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.stdout.close()


@pytest.fixture(scope="module")
def local():
    server = start_local()
    yield server
    assert stop_local(server) == 0
    server.stderr.unlink()


# -- the server itself ------------------------------------------------------------------


def test_prints_url_and_routes_and_binds_loopback_only(local):
    assert local.host == "127.0.0.1"
    status, body = local.json("GET", "/health")
    assert status == 200 and body["status"] == "healthy" and body["environment"] == "dev"
    assert {c["name"]: c["status"] for c in body["checks"]} == {"config": "pass", "table:items": "pass"}
    assert local.wait_log(r"GET +/health 200 [\d.]+ms"), local.log()
    # moto listens on loopback only, on its own port
    if not _has("ss"):
        return
    conns = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    mine = [line for line in conns.splitlines() if f"pid={local.proc.pid}," in line]
    assert len(mine) >= 2, conns  # the HTTP front and the embedded moto server
    assert all(" 127.0.0.1:" in line for line in mine), mine


def _has(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None


def test_unknown_routes_are_api_gateways_403(local):
    for method, target in [("GET", "/nope"), ("GET", "/items/extra"), ("GET", "/users/a/b"), ("GET", "/ITEMS"),
                           ("GET", "/health/"), ("DELETE", "/items"), ("PATCH", f"/users/{uuid.uuid4()}"),
                           ("POST", "/health")]:
        status, headers, body = local.request(method, target)
        assert status == 403, (method, target)
        out = json.loads(body)
        assert out["message"] == "Missing Authentication Token", (method, target)
        assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
        assert out["requestId"] == headers["x-amzn-requestid"]


def test_methods_api_gateway_does_not_route_are_405_json(local):
    for method in ("TRACE", "FOO", "CONNECT"):
        status, headers, body = local.request(method, "/health")
        assert status == 405, method
        out = json.loads(body)
        assert out["message"] == "Method Not Allowed" and out["requestId"]
        assert headers["allow"] == "GET,OPTIONS"
    assert local.wait_log(r"FOO +/health 405"), local.log()


def test_head_answers_like_get_without_a_body(local):
    status, get_headers, get_body = local.request("GET", "/health")
    status_head, headers, body = local.request("HEAD", "/health")
    assert (status, status_head) == (200, 200) and body == b""
    assert int(headers["content-length"]) > 0 and headers["content-type"] == "application/json"
    assert headers["x-request-id"] != get_headers["x-request-id"]


def test_request_validation_happens_before_the_handler(local):
    status, headers, body = local.request("POST", "/items", {"name": ""})
    out = json.loads(body)
    assert (status, out["message"]) == (400, "Invalid request body") and out["requestId"]
    assert headers["x-amzn-errortype"] == "BadRequestException"
    assert not local.wait_log(r"POST +/items 400 [\d.]+ms +\[create-item\]", timeout=0.5)  # no function ran
    status, _, body = local.request("POST", "/users", {"name": "a", "email": "a@b.co", "phone": ""},
                                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert (status, json.loads(body)["message"]) == (400, "Invalid request body")
    # no model for text/plain: API Gateway passes the body on; the handler's own checks agree
    status, _, body = local.request("POST", "/items", json.dumps({"name": ""}), headers={"Content-Type": "text/plain"})
    assert (status, json.loads(body)["message"]) == (400, "validation failed")
    # schema-valid oddities reach the handler and are accepted
    status, _, body = local.request("POST", "/items", {"name": "\u001e"})
    assert status == 201 and json.loads(body)["name"] == "\u001e"
    # the handler's request id is API Gateway's request id
    status, headers, body = local.request("GET", "/items?limit=1")
    assert status == 200 and headers["x-request-id"] == headers["x-amzn-requestid"]


def test_malformed_requests_get_json_with_a_request_id(local):
    for raw, expected in [(b"GARBAGE\r\n\r\n", 400), (b"GET /health HTTP/9.9\r\n\r\n", 505),
                          (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
                          (b"POST /items HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
                          (b"POST /items HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
                          (b"POST /items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400)]:
        status, headers, body = _raw_exchange(local, raw)
        assert status == expected, (raw[:40], status, body)
        out = json.loads(body)
        assert out["message"] and out["requestId"], out
        assert headers.get("connection") == "close"
    assert "Traceback" not in local.log()


def _raw_exchange(local, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection((local.host, local.port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_keep_alive_serves_many_requests_on_one_connection(local):
    conn = http.client.HTTPConnection(local.host, local.port, timeout=10)
    try:
        conn.connect()
        sock = conn.sock
        for target in ("/health", "/nope", "/items?limit=1", "/health"):
            conn.request("GET", target)
            resp = conn.getresponse()
            assert resp.getheader("Connection") is None
            assert json.loads(resp.read())
            assert conn.sock is sock  # the same TCP connection every time
    finally:
        conn.close()


def test_client_disconnect_mid_body_is_one_log_line(local):
    with socket.create_connection((local.host, local.port), timeout=10) as s:
        s.sendall(b"POST /items HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na")
    assert local.wait_log(r"local: client 127\.0\.0\.1:\d+ disconnected"), local.log()
    assert "Traceback" not in local.log() and "BrokenPipe" not in local.log()
    assert local.json("GET", "/health")[0] == 200  # still serving


def test_stalled_client_is_timed_out():
    server = start_local("--client-timeout", "1")
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(b"POST /items HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            assert s.recv(1024) == b""  # the server closes the connection
            assert time.monotonic() - started < 8
        assert server.wait_log(r"local: client 127\.0\.0\.1:\d+ timed out"), server.log()
    finally:
        assert stop_local(server) == 0
    assert "Traceback" not in server.log()
    server.stderr.unlink()


def test_request_too_large_for_api_gateway_is_413(local):
    status, headers, body = _raw_exchange(
        local, b"POST /items HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 10485761\r\n\r\n")
    assert status == 413 and json.loads(body)["requestId"]


# -- items -------------------------------------------------------------------------------


def test_items_create_and_list_across_pages(local):
    made = []
    for i in range(5):
        status, item = local.json("POST", "/items", {"name": f"item {i}", "description": "d"})
        assert status == 201, item
        made.append(item["id"])
    seen, token = [], None
    while True:
        target = "/items?limit=2" + (f"&nextToken={token}" if token else "")
        status, page = local.json("GET", target)
        assert status == 200 and page["count"] == len(page["items"])
        seen += [i["id"] for i in page["items"]]
        token = page.get("nextToken")
        if not token:
            break
    mine = [i for i in seen if i in made]
    assert mine == list(reversed(made))  # newest first


def test_items_validation_errors(local):
    cases = [
        ({"description": "no name"}, 400),
        ({"name": ""}, 400),
        ({"name": "x" * 201}, 400),
        ({"name": " " + "x" * 200}, 400),
        ("{broken", 400),
        ("[]", 400),
        ("x" * (256 * 1024 + 1), 400),  # not JSON: API Gateway's validator answers first
    ]
    for body, expected in cases:
        status, out = local.json("POST", "/items", body)
        assert status == expected, (body if len(str(body)) < 50 else "big", out)
        assert out["message"] == "Invalid request body" and out["requestId"]
    # without a JSON content type no model applies: the handler's own limits answer
    status, out = local.json("POST", "/items", json.dumps({"name": "y" * (256 * 1024)}),
                             headers={"Content-Type": "text/plain"})
    assert status == 413 and out["requestId"]
    for query in ("limit=0", "limit=101", "limit=ten", "nextToken=bogus"):
        status, out = local.json("GET", f"/items?{query}")
        assert status == 400, query


# -- users -------------------------------------------------------------------------------


def test_users_full_crud(local):
    status, user = local.json("POST", "/users", {"name": "Ada", "email": "ada@example.com", "phone": "+1 555 0100"})
    assert status == 201
    uid = user["UserId"]
    assert local.json("GET", f"/users/{uid}") == (200, user)
    status, updated = local.json("PUT", f"/users/{uid}", {"address": "1 Analytical Way"})
    assert status == 200 and updated["address"] == "1 Analytical Way" and updated["email"] == "ada@example.com"
    assert local.json("GET", f"/users/{uid}")[1] == updated
    status, headers, body = local.request("DELETE", f"/users/{uid}")
    assert status == 204 and body == b""
    assert local.json("GET", f"/users/{uid}")[0] == 404
    assert local.json("PUT", f"/users/{uid}", {"name": "ghost"})[0] == 404
    assert local.json("DELETE", f"/users/{uid}")[0] == 404


def test_users_validation_errors(local):
    for body in ({"name": "x"}, {"name": "x", "email": "nope"}, {"name": "x", "email": "a@b.co", "role": "admin"}):
        status, out = local.json("POST", "/users", body)
        assert status == 400 and out["message"] == "Invalid request body", body
        status, out = local.json("POST", "/users", json.dumps(body), headers={"Content-Type": "text/plain"})
        assert status == 400 and out["details"], body  # the handler agrees
    uid = local.json("POST", "/users", {"name": "x", "email": "x@example.com"})[1]["UserId"]
    for body in ({}, {"UserId": str(uuid.uuid4())}, {"email": "nope"}):
        assert local.json("PUT", f"/users/{uid}", body)[0] == 400, body
    assert local.json("GET", "/users/not-a-uuid")[0] == 400
    assert local.json("GET", "/users?limit=1000")[0] == 400


def test_users_pagination_across_pages_and_tampering(local):
    made = {local.json("POST", "/users", {"name": f"p{i}", "email": f"p{i}@example.com"})[1]["UserId"]
            for i in range(5)}
    seen, token, tokens = [], None, []
    while True:
        status, page = local.json("GET", "/users?limit=2" + (f"&nextToken={token}" if token else ""))
        assert status == 200
        seen += [u["UserId"] for u in page["users"]]
        token = page.get("nextToken")
        if not token:
            break
        tokens.append(token)
    assert made <= set(seen) and len(seen) == len(set(seen))
    payload, mac = tokens[0].split(".")
    for bad in (payload, f"{payload}.{mac[::-1]}", f"{payload[:-2]}AA.{mac}"):
        assert local.json("GET", f"/users?nextToken={bad}")[0] == 400


# -- shutdown --------------------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_shuts_down_cleanly(sig, background):
    server = start_local(ignore_sigint=background)
    try:
        assert server.json("GET", "/health")[0] == 200
    finally:
        code = stop_local(server, sig)
    assert code == 0
    assert "stopped" in server.log() and "Traceback" not in server.log()
    with pytest.raises(OSError), socket.create_connection((server.host, server.port), timeout=2):
        pass
    server.stderr.unlink()


def test_port_in_use_is_one_line_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "deployctl", "local", "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot listen on 127.0.0.1" in proc.stderr and "--port" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["local", "--help"]])
def test_help_imports_none_of_the_local_servers_libraries(argv):
    code = (
        "import sys, json\n"
        "from deployctl.cli import main\n"
        f"try:\n    rc = main({argv!r})\nexcept SystemExit as exc:\n    rc = exc.code\n"
        "heavy = ['boto3', 'moto', 'werkzeug', 'jsonschema', 'jinja2', 'schemathesis']\n"
        "print(json.dumps({'rc': rc, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rc": 0, "loaded": []}, proc.stdout[-500:]
