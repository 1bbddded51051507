"""Faults mid-run: the manifest and both aliases stay exactly as they were (slow: ~40 s).

A private moto server (not the shared session one) sits behind a small fault
proxy: deployctl talks to the proxy over HTTP; the proxy forwards to moto, or
throttles, denies, drops the connection, rewrites a response, lets a
"concurrent deployer" act, or stops the moto server itself mid-run. The test
then checks the state directly on moto.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from conftest import FAKE_CREDENTIALS, free_port
from deployctl.artifacts import aliases, manifest, publish
from deployctl.cli import cli
from deployctl.config import Settings, load_env
from deployctl.errors import OperationFailed
from test_publish import FIXTURE, FUNCTIONS, placeholder_zip, terraform_applied, use_account

pytestmark = pytest.mark.slow

FAKE = FAKE_CREDENTIALS


class PrivateMoto:
    """A ThreadedMotoServer of this module only, which a test may stop mid-run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def ensure_running(self) -> None:
        if self.server is None:
            self.start()  # moto keeps its state in-process: what happened before the stop is still there


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


@dataclass
class Rule:
    """``when(request)`` selects requests; ``times`` how many (None = all); ``action`` what happens."""

    when: Callable[[Request], bool]
    action: str  # "throttle-s3", "throttle-lambda", "deny", "drop", "error500", "stop", "rewrite", "after"
    times: int | None = None
    rewrite: Callable[[dict], dict] | None = None
    after: Callable[[], None] | None = None
    hits: int = 0


@dataclass
class FaultProxy:
    moto: PrivateMoto
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def start(self) -> str:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, dict(self.headers), body)
                rule = proxy.match(req)
                action = rule.action if rule else "pass"
                proxy.log.append((self.command, self.path.split("?")[0], action))
                if action == "throttle-s3":
                    return self.reply(503, b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
                                      "application/xml")
                if action == "throttle-lambda":
                    return self.reply(429, json.dumps({"message": "Rate exceeded"}).encode(), "application/json",
                                      {"x-amzn-ErrorType": "TooManyRequestsException"})
                if action == "deny":
                    if "/2015-03-31/" in self.path:
                        return self.reply(403, json.dumps({"message": "not allowed"}).encode(), "application/json",
                                          {"x-amzn-ErrorType": "AccessDeniedException"})
                    return self.reply(403, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
                                      "application/xml")
                if action == "error500":
                    return self.reply(500, b"<Error><Code>InternalError</Code><Message>boom</Message></Error>",
                                      "application/xml")
                if action == "drop":
                    return self.drop()
                if action == "stop":
                    proxy.moto.stop()
                try:
                    status, headers, data = proxy.forward(req)
                except OSError:
                    return self.drop()
                if action == "rewrite" and rule.rewrite:
                    data = json.dumps(rule.rewrite(json.loads(data))).encode()
                if action == "after" and rule.after:
                    rule.after()
                return self.reply(status, data, headers.get("Content-Type", "application/octet-stream"),
                                  {k: v for k, v in headers.items() if k.lower().startswith(("x-amz", "etag"))})

            def reply(self, status, data, ctype, extra=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def match(self, req: Request) -> Rule | None:
        for rule in self.rules:
            if rule.when(req) and (rule.times is None or rule.hits < rule.times):
                rule.hits += 1
                return rule
        return None

    def forward(self, req: Request) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.moto.port, timeout=30)
        try:
            headers = {k: v for k, v in req.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
            conn.request(req.method, req.path, body=req.body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def s3_put(req: Request) -> bool:
    return req.method == "PUT" and "/lambda/" in req.path


def lambda_op(method: str, suffix: str, function: str = "") -> Callable[[Request], bool]:
    return lambda r: r.method == method and "/2015-03-31/functions/" in r.path and \
        r.path.split("?")[0].endswith(suffix) and f"demo-dev-{function}" in r.path


@pytest.fixture(scope="module")
def moto():
    server = PrivateMoto()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "proj"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def world(moto, project, monkeypatch):
    """Terraform 'applied' on the private moto, one successful publish + deploy done, and a proxy in front."""
    moto.ensure_running()
    urllib.request.urlopen(urllib.request.Request(f"{moto.url}/moto-api/reset", method="POST"), timeout=10).read()
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "2")
    use_account(monkeypatch, "111111111111")  # the dev fixture's account (the account guard checks it)
    terraform_applied()
    cfg = load_env("dev", project)
    publish.publish(cfg, deploy=True)  # staging -> 2 everywhere, live -> 1, a manifest on disk
    aliases.promote(cfg, "alpha", weight=20)  # live of alpha: a canary, with history
    # the next publish has new code for every function (shared code for alpha/beta, gamma itself)
    (project / "lambda_src/shared/__init__.py").write_text('"""Shared code, v2."""\n')
    (project / "lambda_src/other/gamma.py").write_text("def handler(event, context):\n    return {'statusCode': 201}\n")
    proxy = FaultProxy(moto)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.start())
    w = World(cfg=cfg, proxy=proxy, moto=moto, manifest=manifest.manifest_path(cfg).read_bytes(),
              aliases=snapshot(moto))
    yield w
    proxy.stop()
    moto.ensure_running()


@dataclass
class World:
    cfg: object
    proxy: FaultProxy
    moto: PrivateMoto
    manifest: bytes
    aliases: dict

    def unchanged(self) -> None:
        """The manifest is byte-identical and both aliases of every function are exactly as before."""
        assert manifest.manifest_path(self.cfg).read_bytes() == self.manifest
        self.moto.ensure_running()
        assert snapshot(self.moto) == self.aliases
        assert not list(manifest.manifest_path(self.cfg).parent.glob(".artifacts.json.*")), "temp file left behind"


def direct(moto: PrivateMoto, service: str):
    return boto3.client(service, endpoint_url=moto.url, region_name="eu-west-1")


def snapshot(moto: PrivateMoto) -> dict:
    lam = direct(moto, "lambda")
    out = {}
    for fn in FUNCTIONS:
        for alias in ("live", "staging"):
            a = lam.get_alias(FunctionName=f"demo-dev-{fn}", Name=alias)
            out[f"{fn}:{alias}"] = (a["FunctionVersion"], json.dumps(a.get("RoutingConfig"), sort_keys=True),
                                    a.get("Description"))
    return out


def invoke(args: list[str], root: Path):
    env = {"DEPLOYCTL_ROOT": str(root)}
    return CliRunner().invoke(cli, args, obj=Settings.from_environ(env), env=env, catch_exceptions=False)


# -- uploads ---------------------------------------------------------------------------------------


def test_moto_stopped_mid_upload(world):
    world.proxy.rules.append(Rule(s3_put, "stop", times=1))
    with pytest.raises(OperationFailed, match="network error talking to AWS") as exc:
        publish.publish(world.cfg, deploy=True)
    assert exc.value.hint and "nothing was recorded" in exc.value.hint
    world.unchanged()


def test_moto_stopped_mid_run_via_cli_is_one_line(world, project):
    world.proxy.rules.append(Rule(s3_put, "stop", times=1))
    result = invoke(["publish-lambda", "--env", "dev", "--deploy"], project)
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("==>")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    world.unchanged()


def test_connection_dropped_on_every_upload(world):
    world.proxy.rules.append(Rule(s3_put, "drop"))
    with pytest.raises(OperationFailed, match=r"upload \w+: network error"):
        publish.publish(world.cfg, deploy=True)
    assert sum(1 for m, p, a in world.proxy.log if a == "drop") >= 2  # retried
    world.unchanged()


def test_throttling_is_retried_with_backoff(world, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_MAX_ATTEMPTS", "3")
    world.proxy.rules.append(Rule(s3_put, "throttle-s3", times=2))
    world.proxy.rules.append(Rule(lambda_op("PUT", "/code", "gamma"), "throttle-lambda", times=1))
    result = publish.publish(world.cfg, deploy=True)
    assert result["bytes_uploaded"] > 0 and result["deployed"]["gamma"]["version"] == "3"
    assert [a for _m, _p, a in world.proxy.log].count("throttle-s3") == 2
    assert [a for _m, _p, a in world.proxy.log].count("throttle-lambda") == 1
    assert manifest.manifest_path(world.cfg).read_bytes() != world.manifest


def test_persistent_throttling_fails_cleanly(world):
    world.proxy.rules.append(Rule(s3_put, "throttle-s3"))
    with pytest.raises(OperationFailed, match=r"throttled by AWS \(SlowDown\) after 2 attempt"):
        publish.publish(world.cfg, deploy=True)
    world.unchanged()


def test_access_denied(world, project):
    world.proxy.rules.append(Rule(s3_put, "deny"))
    result = invoke(["publish-lambda", "--env", "dev"], project)
    assert result.exit_code == 1 and "access denied (AccessDenied)" in result.stderr
    world.unchanged()


def test_server_errors_are_retried_then_reported(world):
    world.proxy.rules.append(Rule(s3_put, "error500"))
    with pytest.raises(OperationFailed, match="InternalError"):
        publish.publish(world.cfg)
    world.unchanged()


# -- deploy ----------------------------------------------------------------------------------------


def test_update_that_ends_failed(world):
    def failed(conf: dict) -> dict:
        conf.update(LastUpdateStatus="Failed", LastUpdateStatusReason="Unzipped size must be smaller than 262144000 bytes",
                    LastUpdateStatusReasonCode="InvalidZipFileException")
        return conf

    after_update = {"seen": False}

    def in_progress(conf: dict) -> dict:  # as AWS answers an update: InProgress; the poll then sees it fail
        after_update["seen"] = True
        conf["LastUpdateStatus"] = "InProgress"
        return conf

    world.proxy.rules.append(Rule(lambda_op("PUT", "/code", "beta"), "rewrite", rewrite=in_progress))
    world.proxy.rules.append(Rule(lambda r: after_update["seen"] and lambda_op("GET", "/configuration", "beta")(r)
                                  and "Qualifier" not in r.path, "rewrite", rewrite=failed))
    with pytest.raises(OperationFailed, match=r"ended Failed \(InvalidZipFileException\)"):
        publish.publish(world.cfg, deploy=True)
    world.unchanged()


def test_an_update_answered_failed_is_not_published_and_changes_nothing(world):
    def failed(conf: dict) -> dict:
        conf.update(LastUpdateStatus="Failed", LastUpdateStatusReason="bad zip",
                    LastUpdateStatusReasonCode="InvalidZipFileException")
        return conf

    world.proxy.rules.append(Rule(lambda_op("PUT", "/code", "gamma"), "rewrite", rewrite=failed))
    with pytest.raises(OperationFailed, match=r"code update of 'demo-dev-gamma' ended Failed \(InvalidZipFileException\)"):
        publish.publish(world.cfg, deploy=True)
    assert not [p for m, p, _a in world.proxy.log if m == "POST" and p.endswith("demo-dev-gamma/versions")]
    world.unchanged()


def test_an_update_answered_successful_is_not_polled_and_each_alias_is_read_once(world):
    """The update's own answer says Successful: no GetFunctionConfiguration after it; the staging
    move is guarded by the RevisionId of the one ListAliases read before the update."""
    result = publish.publish(world.cfg, deploy=True)
    assert all(not d["skipped"] for d in result["deployed"].values())
    for fn in FUNCTIONS:
        calls = [(m, p) for m, p, _a in world.proxy.log if f"/functions/demo-dev-{fn}/" in p + "/"]
        assert calls == [("GET", f"/2015-03-31/functions/demo-dev-{fn}/configuration"),
                         ("GET", f"/2015-03-31/functions/demo-dev-{fn}/aliases"),
                         ("PUT", f"/2015-03-31/functions/demo-dev-{fn}/code"),
                         ("POST", f"/2015-03-31/functions/demo-dev-{fn}/versions"),
                         ("PUT", f"/2015-03-31/functions/demo-dev-{fn}/aliases/staging")], calls
    assert snapshot(world.moto)["alpha:staging"][0] == "3"


def test_code_sha256_mismatch_from_a_concurrent_deployer(world):
    def someone_else_deploys() -> None:
        direct(world.moto, "lambda").update_function_code(FunctionName="demo-dev-gamma", ZipFile=placeholder_zip())

    world.proxy.rules.append(Rule(lambda_op("PUT", "/code", "gamma"), "after", after=someone_else_deploys))
    with pytest.raises(OperationFailed, match="CodeSha256 mismatch on 'demo-dev-gamma'"):
        publish.publish(world.cfg, deploy=True)
    world.unchanged()


def test_alias_move_failing_midway_restores_the_ones_already_moved(world):
    world.proxy.rules.append(Rule(lambda r: r.method == "PUT" and r.path.endswith("demo-dev-gamma/aliases/staging"),
                                  "error500"))
    with pytest.raises(OperationFailed) as exc:
        publish.publish(world.cfg, deploy=True)
    assert "staging aliases restored" in exc.value.hint
    moved = [p for m, p, a in world.proxy.log if m == "PUT" and p.endswith("/aliases/staging") and a == "pass"]
    assert len(moved) >= 4  # alpha and beta moved, then moved back
    world.unchanged()


def test_publish_version_dropped(world):
    world.proxy.rules.append(Rule(lambda_op("POST", "/versions", "beta"), "drop"))
    with pytest.raises(OperationFailed, match="network error"):
        publish.publish(world.cfg, deploy=True)
    world.unchanged()


# -- promote / rollback ------------------------------------------------------------------------------


def test_promote_and_rollback_leave_live_alone_when_the_update_fails(world):
    world.proxy.rules.append(Rule(lambda r: r.method == "PUT" and r.path.endswith("/aliases/live"), "stop"))
    with pytest.raises(OperationFailed, match="network error"):
        aliases.promote(world.cfg, "alpha")
    world.unchanged()
    world.proxy.rules[:] = [Rule(lambda r: r.method == "PUT" and r.path.endswith("/aliases/live"), "throttle-lambda")]
    with pytest.raises(OperationFailed, match="throttled"):
        aliases.rollback(world.cfg, "alpha")
    world.unchanged()


# -- the requests of the code path to live -----------------------------------------------------------


def test_promote_reads_the_aliases_once_and_trusts_the_answer_of_its_update(world):
    """ListAliases (not GetFunction + GetAlias twice), the version's existence, one guarded UpdateAlias;
    its answer is the result (no read-back)."""
    result = aliases.promote(world.cfg, "beta")
    assert result["after"] == {"version": "2", "weights": {}} and result["changed"]
    calls = [(m, p) for m, p, _a in world.proxy.log if "/functions/demo-dev-beta" in p]
    assert calls == [("GET", "/2015-03-31/functions/demo-dev-beta/aliases"),
                     ("GET", "/2015-03-31/functions/demo-dev-beta/configuration"),
                     ("PUT", "/2015-03-31/functions/demo-dev-beta/aliases/live")], calls
    assert snapshot(world.moto)["beta:live"][0] == "2"


def test_publish_deploy_promote_makes_each_request_once(world, project):
    """One process for the pair: one STS check and one KMS lookup for the run, per function six Lambda
    calls, each new object written once (If-None-Match, no HEAD first), the rollout records listed once."""
    result = invoke(["publish-lambda", "--env", "dev", "--promote", "--json"], project)
    assert result.exit_code == 0, result.output
    log = [(m, p) for m, p, _a in world.proxy.log]
    assert log.count(("POST", "/")) == 2  # sts:GetCallerIdentity and kms:DescribeKey, once each
    assert sum(1 for m, p in log if m == "GET" and p.startswith("/demo-tfstate-")) == 1  # unfinished rollouts
    puts = [p for m, p in log if m == "PUT" and p.startswith("/demo-dev-artifacts-")]
    assert len(puts) == len(set(puts)) == 3 * len(FUNCTIONS)  # zip, SBOM, provenance of each new function zip
    assert not [p for m, p in log if m == "HEAD"]  # every key was new: no HEAD before a conditional put
    for fn in FUNCTIONS:
        calls = [(m, p.rsplit("/", 1)[-1]) for m, p in log if f"/functions/demo-dev-{fn}/" in p + "/"]
        assert calls == [("GET", "configuration"), ("GET", "aliases"), ("PUT", "code"), ("POST", "versions"),
                         ("PUT", "staging"), ("PUT", "live")], calls
    moto_now = snapshot(world.moto)
    assert all(moto_now[f"{fn}:live"][0] == moto_now[f"{fn}:staging"][0] == "3" for fn in FUNCTIONS)
