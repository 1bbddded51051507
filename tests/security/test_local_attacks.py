"""Attacks on the HTTP front of `deployctl local` (issue 15, reproduction 8), over real sockets.

Each test starts (or shares) a real ``deployctl local`` subprocess on 127.0.0.1 and a free
port, sends what an attacking HTTP client would send, byte for byte, and asserts that the
server fails safely: the status, that the connection is closed, that no handler saw the
smuggled or truncated data, that threads stay bounded, that a slow client is cut, that the
log holds no raw control character. Every wait is bounded; nothing leaves 127.0.0.1.
Limits are set through the real command-line options (``--max-connections``,
``--header-timeout``), never through a test-only code path.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_local_http import LocalServer, start_local, stop_local

pytestmark = pytest.mark.slow

LIMIT = 10 * 1024 * 1024  # API Gateway's payload limit, the server's body limit
WAIT_S = 10.0  # the longest any exchange may take: a server that keeps the connection open fails


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def local():
    server = start_local()
    yield server
    assert stop_local(server) == 0
    assert "Traceback" not in server.log()
    server.stderr.unlink()


# -- helpers -------------------------------------------------------------------------------


def _read_until_closed(sock: socket.socket, wait: float = WAIT_S) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (True), or ``wait`` passes (False)."""
    data = b""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk


def _parse(data: bytes) -> list[Response]:
    """Every complete HTTP response in ``data`` (1xx interim answers skipped)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
        status = int(lines[0].split()[1])
        length = int(headers.get("content-length", "0"))
        body, data = rest[:length], rest[length:]
        if status >= 200:
            out.append(Response(status, headers, body))
    return out


def _exchange(server: LocalServer, raw: bytes, wait: float = WAIT_S) -> tuple[list[Response], bool]:
    """Send ``raw`` on a new connection; the responses, and whether the server closed the connection."""
    with socket.create_connection((server.host, server.port), timeout=wait) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: what it sent is still read
        data, closed = _read_until_closed(s, wait)
    return _parse(data), closed


def _assert_refused(responses: list[Response], closed: bool, status: int, what: object) -> Response:
    """One answer, ``status``, JSON with a request id, ``Connection: close``, and the connection closed."""
    assert [r.status for r in responses] == [status], (what, [(r.status, r.body[:200]) for r in responses])
    response = responses[0]
    out = response.json()
    assert out["message"] and out["requestId"] == response.headers["x-amzn-requestid"], (what, out)
    assert response.headers.get("connection") == "close", (what, response.headers)
    assert closed, (what, "the server kept the connection open")
    return response


def _smuggled(marker: str) -> bytes:
    """A complete request that creates an item named ``marker`` if a server ever runs it."""
    body = json.dumps({"name": marker}).encode()
    return (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _log_mark(server: LocalServer) -> int:
    return len(server.stderr.read_bytes())


def _log_since(server: LocalServer, mark: int) -> bytes:
    time.sleep(0.3)  # request lines are logged just after the response is sent
    return server.stderr.read_bytes()[mark:]


def _assert_no_handler_ran(server: LocalServer, mark: int, markers: list[str]) -> None:
    """No function was invoked since ``mark`` (no item was made), and no item carries a marker."""
    since = _log_since(server, mark).decode("utf-8", "replace")
    assert not re.search(r"ms  \[[a-z0-9-]+\]$", since, re.M), since[-2000:]  # "METHOD PATH STATUS TIME  [function]"
    assert " 201 " not in since, since[-2000:]
    listed = server.log().count("[get-items]")
    status, _, body = server.request("GET", "/items?limit=100")
    assert status == 200
    deadline = time.monotonic() + WAIT_S  # this request's own log line, before the next test takes its mark
    while server.log().count("[get-items]") == listed and time.monotonic() < deadline:
        time.sleep(0.05)
    names = {item["name"] for item in json.loads(body)["items"]}
    assert not names & set(markers), names & set(markers)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# -- body over the limit ---------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [LIMIT + LIMIT // 20 * 3, 1024 * 1024], ids=["one-chunk", "1MiB-chunks"])
def test_chunked_body_over_the_limit_is_413_and_closed(local, chunk_size):
    """11.5 MiB chunked: 413, closed; the handler never sees a truncated body, and nothing after the
    limit (here a complete request at the 10 MiB offset) is served as a new request."""
    marker = f"smuggled-{uuid.uuid4()}"
    total = LIMIT + LIMIT // 20 * 3  # 11.5 MiB
    data = bytearray(b"x" * total)
    smuggled = _smuggled(marker) + b"\r\n"
    data[LIMIT:LIMIT + len(smuggled)] = smuggled
    chunks = b"".join(b"%x\r\n" % len(data[i:i + chunk_size]) + bytes(data[i:i + chunk_size]) + b"\r\n"
                      for i in range(0, total, chunk_size))
    raw = (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    response = _assert_refused(responses, closed, 413, "chunked body over the limit")
    assert response.json()["message"] == "Request Too Long"
    assert response.headers["x-amzn-errortype"] == "RequestTooLongException"
    _assert_no_handler_ran(local, mark, [marker])


def test_content_length_over_the_limit_is_413_and_closed_without_reading_the_body(local):
    marker = f"smuggled-{uuid.uuid4()}"
    raw = (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
           b"Content-Length: " + str(LIMIT + 1).encode() + b"\r\n\r\n" + _smuggled(marker))
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    _assert_refused(responses, closed, 413, "Content-Length over the limit")
    _assert_no_handler_ran(local, mark, [marker])


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9", b"+5", b"0x5", b"5_0", b"-1", b"5.0", b"1e3", b"5 5", b"",
                                   b"9" * 5000])
def test_content_length_must_be_ascii_digits(local, value):
    """``Content-Length: ²`` passed ``str.isdigit()``; anything but ASCII digits is a 400, then close."""
    marker = f"smuggled-{uuid.uuid4()}"
    raw = (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + value + b"\r\n\r\n" + _smuggled(marker))
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    response = _assert_refused(responses, closed, 400, value[:20])
    assert "Content-Length" in response.json()["message"]
    _assert_no_handler_ran(local, mark, [marker])


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_content_length_and_transfer_encoding_together_are_400(local, order):
    """CL.TE / TE.CL smuggling: a request with both headers is refused, whatever their order."""
    marker = f"smuggled-{uuid.uuid4()}"
    smuggled = _smuggled(marker)
    body = b"0\r\n\r\n" + smuggled
    fields = [b"Content-Length: " + str(len(body)).encode(), b"Transfer-Encoding: chunked"]
    if order == "te-first":
        fields.reverse()
    raw = (b"POST /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" + b"\r\n".join(fields)
           + b"\r\n\r\n" + body)
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    response = _assert_refused(responses, closed, 400, order)
    assert "Content-Length and Transfer-Encoding" in response.json()["message"]
    _assert_no_handler_ran(local, mark, [marker])


@pytest.mark.parametrize("fields", [
    [b"Content-Length: 0", b"Content-Length: {n}"],
    [b"Content-Length: {n}", b"Content-Length: 0"],
    [b"Content-Length: {n}", b"Content-Length: {n}"],
    [b"Content-Length: 0, {n}"],
    [b"Content-Length: {n}, {n}"],
], ids=["repeated-0-n", "repeated-n-0", "repeated-same", "list-0-n", "list-same"])
def test_more_than_one_content_length_is_400(local, fields):
    """Two Content-Lengths (repeated, or a comma list): either reading could be a proxy's; refused."""
    marker = f"smuggled-{uuid.uuid4()}"
    body = _smuggled(marker)
    head = b"\r\n".join(f.replace(b"{n}", str(len(body)).encode()) for f in fields)
    raw = b"POST /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" + head + b"\r\n\r\n" + body
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    response = _assert_refused(responses, closed, 400, fields)
    assert "Content-Length" in response.json()["message"]
    _assert_no_handler_ran(local, mark, [marker])


@pytest.mark.parametrize("fields", [
    [b"Transfer-Encoding: chunked,"],
    [b"Transfer-Encoding: ,chunked"],
    [b"Transfer-Encoding: chunked, chunked"],
    [b"Transfer-Encoding: gzip, chunked"],
    [b"Transfer-Encoding: chunked, gzip"],
    [b"Transfer-Encoding: gzip"],
    [b"Transfer-Encoding: identity"],
    [b"Transfer-Encoding: xchunked"],
    [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
    [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"],
], ids=lambda f: b" | ".join(f).decode())
def test_transfer_encoding_other_than_exactly_chunked_is_400(local, fields):
    marker = f"smuggled-{uuid.uuid4()}"
    body = b"0\r\n\r\n" + _smuggled(marker)
    raw = (b"POST /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" + b"\r\n".join(fields)
           + b"\r\n\r\n" + body)
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    response = _assert_refused(responses, closed, 400, fields)
    assert "Transfer-Encoding" in response.json()["message"]
    _assert_no_handler_ran(local, mark, [marker])


@pytest.mark.parametrize("field", [
    b"Transfer-Encoding : chunked",  # whitespace before the colon: some parsers drop it, some strip it
    b"X-Pad: a\rTransfer-Encoding: chunked",  # a bare CR: some parsers end the line there
    b"X-Pad: a\r\n Transfer-Encoding: chunked",  # obs-fold
    b"X-Pad: a\x00b",
    b"X-Pad: a\x1bb",
    b"Transfer-Encoding\x0b: chunked",
    b" Transfer-Encoding: chunked",
], ids=lambda f: repr(f)[2:-1])
def test_malformed_header_lines_are_400(local, field):
    """A header line one parser reads as Transfer-Encoding and another does not: refused, not guessed."""
    marker = f"smuggled-{uuid.uuid4()}"
    body = b"0\r\n\r\n" + _smuggled(marker)
    raw = b"POST /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n" + field + b"\r\nContent-Type: text/plain\r\n\r\n" + body
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    _assert_refused(responses, closed, 400, field)
    _assert_no_handler_ran(local, mark, [marker])


@pytest.mark.parametrize("chunk", [
    b"0x5\r\nhello\r\n", b"+5\r\nhello\r\n", b"-5\r\nhello\r\n", b"5_0\r\nhello\r\n", b" 5\r\nhello\r\n",
    b"5 \r\nhello\r\n", b"g\r\nhello\r\n", b"\r\nhello\r\n", b"5\rX\r\nhello\r\n", b"5\r\nhelloEXTRA\r\n",
    b"5\r\nhello", b"00000000000000005\r\nhello\r\n", b"5;a\x1bb\r\nhello\r\n",
], ids=lambda c: repr(c)[2:-1])
def test_malformed_chunks_are_400(local, chunk):
    """Chunk sizes are hex digits (``int(x, 16)`` also takes ``0x5``, ``+5``, ``5_0``, `` 5``), followed
    by CRLF, and the data by CRLF; anything else is a 400, and nothing after it is served."""
    marker = f"smuggled-{uuid.uuid4()}"
    raw = (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n" + _smuggled(marker))
    mark = _log_mark(local)
    responses, closed = _exchange(local, raw)
    response = _assert_refused(responses, closed, 400, chunk)
    assert "chunk" in response.json()["message"]
    _assert_no_handler_ran(local, mark, [marker])


def test_well_formed_chunked_body_with_extensions_and_trailers_is_served_and_kept_alive(local):
    """The strict de-chunker still takes what RFC 9112 allows: extensions, trailers, LF-only lines,
    upper-case hex; the trailers are not read as the next request, which is served on the same
    connection."""
    body = json.dumps({"name": f"chunked-{uuid.uuid4()}"}).encode()
    parts = [body[:3], body[3:20], body[20:]]
    chunks = (b"%X;ext=1\r\n" % len(parts[0]) + parts[0] + b"\r\n" + b"%x\n" % len(parts[1]) + parts[1] + b"\n"
              + b"%x ; name=\"v\"\r\n" % len(parts[2]) + parts[2] + b"\r\n")
    raw = (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: Chunked\r\n\r\n" + chunks + b"0\r\nX-Trailer: 1\r\nGET /health HTTP/1.1\r\n\r\n"
           b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    responses, closed = _exchange(local, raw)
    assert [r.status for r in responses] == [400], responses  # "GET /health HTTP/1.1" is not a trailer field
    raw = raw.replace(b"GET /health HTTP/1.1\r\n\r\n", b"\r\n", 1)
    responses, closed = _exchange(local, raw)
    assert [r.status for r in responses] == [201, 200], responses
    assert responses[0].json()["name"] == json.loads(body)["name"] and closed


# -- floods and slow clients -------------------------------------------------------------------


_PROC = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
DEFAULT_MAX_CONNECTIONS = 64  # deployctl local's documented default (docs/local.md)


@_PROC
def test_connections_over_the_cap_get_503_and_threads_stay_bounded():
    """At most --max-connections are served (a thread each); every further connection is answered
    503 and closed by the accepting thread; once the held ones go, their slots come back."""
    server = start_local("--max-connections", "4", "--header-timeout", "60")
    try:
        _flood(server, cap=4, extra=200)
    finally:
        assert stop_local(server) == 0
    assert "Traceback" not in server.log()
    server.stderr.unlink()


@_PROC
def test_500_partial_requests_do_not_make_500_threads_by_default():
    """The reproduction as it was run: no option, 500 partial requests (they made 502 threads)."""
    server = start_local()
    try:
        _flood(server, cap=DEFAULT_MAX_CONNECTIONS, extra=500 - DEFAULT_MAX_CONNECTIONS)
    finally:
        assert stop_local(server) == 0
    assert "Traceback" not in server.log()
    server.stderr.unlink()


def _flood(server: LocalServer, cap: int, extra: int) -> None:
    held: list[socket.socket] = []
    refused: list[socket.socket] = []
    try:
        assert server.json("GET", "/health")[0] == 200
        time.sleep(0.5)
        idle = _threads(server.proc.pid)
        for _ in range(cap):  # partial requests: each holds a connection and its thread (accepted first)
            s = socket.create_connection((server.host, server.port), timeout=WAIT_S)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(s)
        for _ in range(extra):
            refused.append(socket.create_connection((server.host, server.port), timeout=WAIT_S))
        peak = _threads(server.proc.pid)
        answers = _read_all(refused)
        peak = max(peak, _threads(server.proc.pid))
        assert peak <= idle + cap + 2, (idle, peak)
        for data, closed in answers:
            _assert_refused(_parse(data), closed, 503, "over the cap")
        log = server.log()
        assert "refused with 503" in log and log.count("refused with 503") < extra
        for s in held:  # the held ones give up: their slots come back
            s.close()
        held.clear()
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                status = server.json("GET", "/health")[0]
            except (ConnectionError, json.JSONDecodeError):
                status = 0
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        for s in held + refused:
            s.close()


def _read_all(socks: list[socket.socket], wait: float = WAIT_S) -> list[tuple[bytes, bool]]:
    """Read every socket until the server closes it, all within one ``wait``."""
    data = {s: b"" for s in socks}
    closed = {s: False for s in socks}
    for s in socks:
        s.setblocking(False)
    deadline = time.monotonic() + wait
    while not all(closed.values()):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([s for s in socks if not closed[s]], [], [], left)
        for s in ready:
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                data[s] += chunk
            else:
                closed[s] = True
    return [(data[s], closed[s]) for s in socks]


def test_headers_trickled_in_are_cut_at_the_header_deadline():
    """One byte every 20 s kept a connection for 80 s (the timeout was per read). With
    --header-timeout 1, a client that trickles its headers is answered 408 and closed well before
    the bound, although each byte arrives long before the per-read --client-timeout."""
    server = start_local("--header-timeout", "1", "--client-timeout", "30")
    try:
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 1000 + b"\r\n\r\n"
        with socket.create_connection((server.host, server.port), timeout=WAIT_S) as s:
            started = time.monotonic()
            sent = 0
            while time.monotonic() - started < WAIT_S and sent < len(request):
                ready, _, _ = select.select([s], [], [], 0.2)
                if ready:
                    break  # the server answered (or closed)
                try:
                    s.sendall(request[sent:sent + 1])
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += 1
            data, closed = _read_until_closed(s, WAIT_S)
            elapsed = time.monotonic() - started
        assert sent < len(request), "the whole request was trickled in and never cut"
        assert closed and elapsed < WAIT_S, elapsed
        response = _assert_refused(_parse(data), closed, 408, "slow headers")
        assert "headers" in response.json()["message"]
        # an idle keep-alive connection is not cut by the header deadline: it waits for --client-timeout
        with socket.create_connection((server.host, server.port), timeout=WAIT_S) as s:
            ready, _, _ = select.select([s], [], [], 2.5)
            assert not ready, "an idle connection was closed by the header deadline"
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data, closed = _read_until_closed(s)
            assert [r.status for r in _parse(data)] == [200] and closed
    finally:
        assert stop_local(server) == 0
    assert "Traceback" not in server.log()
    server.stderr.unlink()


# -- log injection ---------------------------------------------------------------------------

_RAW_CONTROLS = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9\xaa-\xae]|\xe2\x81[\xa6-\xa9]")


def test_log_lines_escape_control_characters(local):
    """CR/LF, ESC, DEL, C1, line separators and bidi overrides from the decoded path, the method or a
    malformed request line are written escaped: one request, one log line, no terminal escapes."""
    paths = [b"/nope%0d%0aGET%20/forged%20200%200.1ms", b"/nope%1b[31mred%1b[0m", b"/nope%7f%00", b"/nope%c2%85nel",
             b"/nope%e2%80%a8ls%e2%80%aerlo", b"/nope%ff%fe", b"/users/%1b]0;title%07"]
    mark = _log_mark(local)
    for path in paths:
        responses, _ = _exchange(local, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert responses and responses[0].status in (400, 403), (path, responses)
    for line in (b"GET /nope\x1b[2J HTTP/1.1", b"G\x1bET /nope HTTP/1.1", b"GET /nope\rX HTTP/1.1",
                 b"GE\x85T /nope HTTP/1.1"):
        responses, closed = _exchange(local, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert responses and closed, line
    since = _log_since(local, mark)
    assert not _RAW_CONTROLS.search(since), since[-3000:]
    text = since.decode("utf-8")
    assert "/nope\\x0d\\x0aGET /forged 200 0.1ms" in text, text[-3000:]
    assert "/nope\\x1b[31mred\\x1b[0m" in text and "\\x7f\\x00" in text and "\\x85nel" in text
    assert "\\u2028ls\\u202erlo" in text and "/nope\ufffd\ufffd 403" in text  # werkzeug decodes %ff as U+FFFD
    assert "\\x1b[2J" in text  # the malformed request line, escaped too
    assert not re.search(r"^GET /forged", text, re.M)
