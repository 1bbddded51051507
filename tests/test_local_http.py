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


def start_local(*args: str, timeout: float = 30) -> LocalServer:
    """Start the server on a free port; return once it printed its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    errfile = Path(tempfile.mkstemp(prefix="deployctl-local-", suffix=".log")[1])
    with errfile.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "deployctl", "local", "--port", "0", *args],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
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
    assert status == 200 and body["status"] == "ok" and body["environment"] == "dev"
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


def test_unknown_paths_are_404_and_wrong_methods_405(local):
    for target in ("/nope", "/items/extra", "/users/a/b", "/ITEMS", "/health/"):
        status, headers, body = local.request("GET", target)
        assert status == 404, target
        assert json.loads(body)["message"] == "not found"
    status, headers, body = local.request("DELETE", "/items")
    assert status == 405 and headers["allow"] == "GET,POST,OPTIONS"
    assert json.loads(body)["message"] == "method not allowed"
    status, headers, _ = local.request("PATCH", f"/users/{uuid.uuid4()}")
    assert status == 405 and headers["allow"] == "DELETE,GET,PUT,OPTIONS"


def test_cors_preflight(local):
    origin = "http://localhost:3000"
    status, headers, body = local.request("OPTIONS", "/users", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == origin
    assert "POST" in headers["access-control-allow-methods"]
    assert "Content-Type" in headers["access-control-allow-headers"]
    status, headers, _ = local.request("OPTIONS", "/users", headers={"Origin": "https://evil.example"})
    assert status == 204 and "access-control-allow-origin" not in headers
    status, headers, _ = local.request("GET", "/items", headers={"Origin": origin})
    assert headers["access-control-allow-origin"] == origin


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
        ("{broken", 400),
        ("[]", 400),
        ("x" * (256 * 1024 + 1), 413),
    ]
    for body, expected in cases:
        status, out = local.json("POST", "/items", body)
        assert status == expected, (body if len(str(body)) < 50 else "big", out)
        assert out["message"] and out["requestId"]
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
        assert status == 400 and out["details"], body
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_shuts_down_cleanly(sig):
    server = start_local()
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
