"""Shared fixtures: the project root, a real moto server over HTTP, AWS env vars.

The moto server is a real HTTP server on 127.0.0.1 (ThreadedMotoServer binds
0.0.0.0 unless told otherwise) reached by boto3 through AWS_ENDPOINT_URL, the
same way deployctl reaches AWS. One server per session; `moto_reset` clears it.
"""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

# scripts/test runs several pytest processes in the background, and a non-interactive shell starts
# background commands with SIGINT ignored; an ignored signal stays ignored across exec, so every
# child a test starts (the deployctl CLI, terraform stand-ins) would ignore the Ctrl-C the test sends
# it. Python's own SIGINT handling here means children start with the default disposition again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _user_cache_dir(tmp_path_factory):
    """deployctl's per-user files under XDG_CACHE_HOME (the gate cache's key) live in a session tmp
    dir, never the real ~/.cache; the runtime SDK install stays where it was (it is slow to make)."""
    from deployctl.local import runtime

    mp = pytest.MonkeyPatch()
    mp.setenv(runtime.SDK_CACHE_ENV, str(runtime.sdk_cache_root()))
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _cwd_is_the_checkout(monkeypatch):
    """deployctl finds its project from the working directory (there is no other fallback):
    every test starts in this checkout, wherever pytest was started from."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a real moto server, running for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_reset(moto_endpoint):
    """Empty the moto server before a test."""
    req = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    return moto_endpoint


@pytest.fixture
def aws_env(monkeypatch, moto_reset):
    """Point boto3 (in this process and in subprocesses that inherit os.environ) at moto."""
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    return dict(os.environ)
