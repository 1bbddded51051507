"""The HTTP front of `deployctl local`: werkzeug's threaded WSGI server, with keep-alive.

werkzeug builds the WSGI environ and runs the app (``LocalApp.wsgi``), on top
of ``http.server``. What reaches the app is decided here, in ``_Handler``,
because werkzeug's development server is lenient where a server facing any
HTTP client must not be (request smuggling, floods, slow clients):

* framing (RFC 9112): the request line and every header line are checked
  before ``http.server`` parses them (field names are tokens; no control
  characters, no bare CR, no whitespace before the colon, no obs-fold).
  ``Content-Length`` is one header of ASCII digits; ``Transfer-Encoding`` is
  one header that says ``chunked``; both at once is a 400. Chunked bodies are
  de-chunked here, strictly (hex sizes, CRLF after each chunk, trailers read
  and dropped), not by werkzeug's ``DechunkedInput`` (which takes ``0x10`` or
  ``1_0`` as sizes and leaves trailers to be read as the next request).
* the body is read here, whole, before the app runs, and handed over as
  ``wsgi.input`` (a ``BytesIO``): the app never reads the socket. A body over
  ``max_body`` (API Gateway's 10 MB) is not read: the app is called with
  ``deployctl.body_too_large`` set and answers 413.
* every refusal closes the connection (``Connection: close``), after a short
  lingering drain of what the client still sends, so that it reads the answer
  instead of a reset.
* a total deadline for the request line and headers (``header_timeout``),
  counted from their first byte: a client that trickles them in is answered
  408 and closed. Idle keep-alive connections and stalled bodies keep the
  per-read ``timeout``.
* at most ``max_connections`` connections are served at once (one thread
  each); the accepting thread answers any further one 503 and closes it.
* keep-alive: werkzeug always sends ``Connection: close`` (its ``run_wsgi``
  also drains the socket after each response, which would swallow the next
  pipelined request).
* one send per response: status line, headers and body go out in a single
  ``write``; ``TCP_NODELAY`` is set on every connection as well, so Nagle's
  algorithm never holds back a response (the 40 ms delayed-ACK stall).
* log lines: whatever the client controls (method, path, request line,
  header values in messages) is written with control characters escaped
  (:func:`escape`).

Every answer is JSON with a request id, including malformed requests
(``send_error``); a client that disconnects or stalls (socket ``timeout``)
costs one log line, never a traceback.
"""

from __future__ import annotations

import email.utils
import io
import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from http import HTTPStatus

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

Log = Callable[[str], None]

MAX_LINE = 65536  # request line or header line (http.server's limit)
MAX_FIELDS = 100  # header lines (http.client's limit), and trailer lines
MAX_CHUNK_LINE = 4096  # chunk size line with its extensions
LINGER_S = 2.0  # after a refusal: how long what the client still sends is read and dropped
_TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
# a field line: token ":" value, the value without control characters (HTAB allowed), LF or CRLF at the end
_FIELD_LINE = re.compile(_TCHAR + rb"+:[\t\x20-\x7e\x80-\xff]*\r?\n")
# method SP target SP version, no control characters (http.server then parses it; it splits on any
# whitespace, so a target holding e.g. \x85 or \xa0 is its "Bad request syntax")
_REQUEST_LINE = re.compile(_TCHAR + rb"+ [\x21-\x7e\x80-\xff]+ HTTP/[0-9]\.[0-9]\r?\n")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[\t\x20-\x7e\x80-\xff]*)?\r?\n")
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only (str.isdigit() also takes "²" and "٣")


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


class _Reject(Exception):
    """A request that cannot be served: answered ``code`` with ``message``, then the connection closes."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class HeaderDeadline(TimeoutError):
    """The request line and headers did not all arrive within ``header_timeout``."""


class _Reader(io.RawIOBase):
    """The connection's raw input, with a total deadline while a request head is read.

    ``start_head`` arms it: the deadline starts with the first byte that arrives
    (waiting for a request on an idle keep-alive connection is bounded by the
    per-read ``idle`` timeout alone), and each later read waits at most what is
    left of it. ``end_head`` disarms it. The socket timeout is changed only while
    a head trickles in, so a request that arrives in one piece costs no extra call.
    """

    def __init__(self, sock: socket.socket, idle: float | None, head: float):
        self._sock = sock
        self._idle = idle
        self._head = head
        self._timeout = idle
        self._in_head = False
        self._deadline: float | None = None

    def readable(self) -> bool:
        return True

    def start_head(self) -> None:
        self._in_head, self._deadline = True, None

    def end_head(self) -> None:
        self._in_head, self._deadline = False, None
        self._set_timeout(self._idle)

    def _set_timeout(self, value: float | None) -> None:
        if value != self._timeout:
            self._sock.settimeout(value)
            self._timeout = value

    def readinto(self, buffer) -> int:
        if not self._in_head:
            return self._sock.recv_into(buffer)
        if self._deadline is None:
            n = self._sock.recv_into(buffer)  # may wait the idle timeout for a new request
            self._deadline = time.monotonic() + self._head
            return n
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise HeaderDeadline("request headers not received in time")
        self._set_timeout(left if self._idle is None else min(left, self._idle))
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            if time.monotonic() >= self._deadline - 0.001:
                raise HeaderDeadline("request headers not received in time") from None
            raise


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY on each connection
    timeout = 30.0  # socket timeout: idle keep-alive and stalled clients are dropped
    server: Server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # socketserver's makefile: replaced (closing it releases its hold on the socket)
        self._reader = _Reader(self.connection, self.timeout, self.server.header_timeout)
        self.rfile = io.BufferedReader(self._reader, io.DEFAULT_BUFFER_SIZE)
        self._linger = False

    def finish(self) -> None:
        super().finish()
        if self._linger:
            _linger(self.connection)

    def handle_one_request(self) -> None:
        """One request: head within the deadline, strictly framed; then ``run_wsgi``."""
        self.command, self.requestline, self.request_version = "", "", self.default_request_version
        self.raw_requestline = b""
        self._expect_continue = False
        reader = self._reader
        reader.start_head()
        try:
            line = self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if not line:
                self.close_connection = True
                return
            if len(line) > MAX_LINE:
                raise _Reject(414, "Request-URI Too Long")
            if not line.endswith(b"\n"):
                raise ConnectionAbortedError("client closed the connection mid-request")
            if not _REQUEST_LINE.fullmatch(line):
                raise _Reject(400, "malformed request line")
            head = self._read_fields(MAX_LINE, 431, "header")
        except HeaderDeadline:
            self.send_error(408, "request headers not received in time")
            return
        except _Reject as exc:
            self.send_error(exc.code, exc.message)
            return
        finally:
            reader.end_head()
        rfile, self.rfile = self.rfile, io.BytesIO(head)
        try:  # http.server parses the checked lines (request line, version, Connection, Expect)
            parsed = self.parse_request()
        finally:
            self.rfile = rfile
        if parsed:
            self.run_wsgi()

    def _read_fields(self, max_line: int, too_long: int, what: str) -> bytes:
        """Header (or trailer) lines up to the empty line, each checked; their bytes, empty line included."""
        lines = []
        while True:
            line = self.rfile.readline(max_line + 1)
            if len(line) > max_line:
                raise _Reject(too_long, f"{what} line too long")
            if not line.endswith(b"\n"):
                raise ConnectionAbortedError(f"client closed the connection mid-{what}")
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)
            if len(lines) > MAX_FIELDS:
                raise _Reject(431, f"too many {what} lines")
            if not _FIELD_LINE.fullmatch(line):
                raise _Reject(400, f"malformed {what} line")

    def handle_expect_100(self) -> bool:
        self._expect_continue = True  # sent by _read_body once the framing is known to be acceptable
        return True

    def _framing(self) -> tuple[str, int]:
        """How the body is delimited: ("none", 0), ("length", n) or ("chunked", 0); else ``_Reject``."""
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if lengths and codings:
            raise _Reject(400, "both Content-Length and Transfer-Encoding")
        if codings:
            if len(codings) > 1 or codings[0].strip(" \t").lower() != "chunked":
                raise _Reject(400, "unsupported Transfer-Encoding (only a single 'chunked' is accepted)")
            if self.request_version == "HTTP/1.0":
                raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
            return "chunked", 0
        if not lengths:
            return "none", 0
        if len(lengths) > 1:
            raise _Reject(400, "more than one Content-Length")
        value = lengths[0].strip(" \t")
        if not _DIGITS.fullmatch(value):
            raise _Reject(400, "invalid Content-Length (ASCII digits only)")
        return "length", int(value)

    def _read_body(self, framing: str, length: int) -> bytes | None:
        """The whole body, or None when it is over ``max_body`` (then it is not read)."""
        limit = self.server.max_body
        if framing == "none":
            return b""
        if framing == "length" and length > limit:
            return None
        if self._expect_continue and (framing == "chunked" or length):
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if framing == "length":
            data = self.rfile.read(length)
            if len(data) < length:
                raise ConnectionAbortedError("client closed the connection mid-body")
            return data
        body = bytearray()
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if len(line) > MAX_CHUNK_LINE:
                raise _Reject(400, "malformed chunk size line (too long)")
            if not line.endswith(b"\n"):
                raise ConnectionAbortedError("client closed the connection mid-body")
            found = _CHUNK_SIZE.fullmatch(line)
            if found is None:
                raise _Reject(400, "malformed chunk size")
            size = int(found.group(1), 16)
            if size == 0:
                break
            if len(body) + size > limit:
                return None
            data = self.rfile.read(size)
            if len(data) < size:
                raise ConnectionAbortedError("client closed the connection mid-body")
            body += data
            end = self.rfile.readline(3)
            if end not in (b"\r\n", b"\n"):
                if len(end) < 3 and not end.endswith(b"\n"):  # end of input
                    raise ConnectionAbortedError("client closed the connection mid-body")
                raise _Reject(400, "malformed chunk (data longer than its size)")
        self._read_fields(MAX_CHUNK_LINE, 400, "trailer")  # trailers are read and dropped
        return bytes(body)

    def run_wsgi(self) -> None:  # werkzeug routes every method (do_*) here
        started = time.perf_counter()
        try:
            framing, length = self._framing()
        except _Reject as exc:
            self.send_error(exc.code, exc.message)
            return
        environ = self.environ = self.make_environ()
        environ["deployctl.raw_uri"] = self.path
        try:
            body = self._read_body(framing, length)
        except _Reject as exc:
            self.send_error(exc.code, exc.message)
            return
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
            return
        if body is None:  # over the limit, not read: the app answers 413, the connection closes
            environ["deployctl.body_too_large"] = True
            self._linger = True
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["wsgi.input_terminated"] = True  # the input is exactly the body, however it was framed
        result: dict = {}
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            result["status"], result["headers"] = status, headers
            return chunks.append

        try:
            app_iter = self.server.app(environ, start_response)
            try:
                chunks.extend(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
            return
        except Exception as exc:  # noqa: BLE001 - a bug in deployctl itself: loud, but keep serving
            self.server.log_block("local: internal error: " + "".join(traceback.format_exception(exc)).rstrip())
            body = json.dumps({"message": "Internal server error", "requestId": str(uuid.uuid4())}).encode()
            result = {"status": "502 Bad Gateway", "headers": [("Content-Type", "application/json")]}
            chunks = [body]
            environ["deployctl.close"] = True
        code = int(result["status"].split(None, 1)[0])
        self._send(code, result["headers"], b"".join(chunks), close=bool(environ.get("deployctl.close")))
        on_request = self.server.on_request
        if on_request is not None:
            on_request(escape(self.command), log_path(environ.get("PATH_INFO", "")), code,
                       (time.perf_counter() - started) * 1000, environ.get("deployctl.function", ""))

    def _send(self, code: int, headers: list[tuple[str, str]], body: bytes, close: bool = False) -> None:
        if close:
            self.close_connection = True
        lines = [f"HTTP/1.1 {code} {_phrase(code)}"]
        for key, value in headers:
            if key.lower() in ("content-length", "connection", "transfer-encoding", "date", "server"):
                continue
            lines.append(f"{_clean(key)}: {_clean(value)}")
        no_body = code in (204, 304) or 100 <= code < 200
        if not no_body:
            lines.append(f"Content-Length: {len(body)}")
        lines.append(f"Date: {self.date_time_string()}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if no_body or self.command == "HEAD":
            body = b""
        self.wfile.write(head + body)  # one send

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Any request the front refuses: JSON like every other answer, then the connection closes."""
        request_id = str(uuid.uuid4())
        self.close_connection = True
        self._linger = True  # the client may still be sending: read and drop it, so it gets this answer
        body = json.dumps({"message": message or _phrase(code), "requestId": request_id}).encode()
        try:
            self._send(code, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)], body,
                       close=True)
        except OSError:
            pass
        line = (self.raw_requestline or b"")[:80].decode("latin-1").rstrip("\r\n")
        self.server.log(f"local: {code} refused ({message or _phrase(code)}): '{line}'")  # escaped there

    def connection_dropped(self, error: BaseException, environ=None) -> None:
        what = "timed out" if isinstance(error, TimeoutError) else f"disconnected ({type(error).__name__})"
        self.server.log(f"local: client {self.client_address[0]}:{self.client_address[1]} {what}")

    def log_error(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        # "Request timed out: ..." from an idle keep-alive connection, and the like
        self.server.log(f"local: {self.client_address[0]}:{self.client_address[1]} " + (format % args))

    def log_request(self, code="-", size="-") -> None:
        pass  # requests are logged by run_wsgi through on_request


class Server(ThreadedWSGIServer):
    """werkzeug's threaded server on a socket bound by the caller, with a cap on connections."""

    def __init__(self, sock: socket.socket, app, *, timeout: float, log: Log,
                 on_request: Callable[[str, str, int, float, str], None] | None,
                 header_timeout: float = 10.0, max_connections: int = 64, max_body: int = 10 * 1024 * 1024):
        host, port = sock.getsockname()[:2]
        handler = type("Handler", (_Handler,), {"timeout": timeout})
        super().__init__(host, port, app, handler=handler, fd=sock.fileno())
        sock.close()  # werkzeug works on its own duplicate of the descriptor
        self._log = log
        self.on_request = on_request
        self.header_timeout = header_timeout
        self.max_body = max_body
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refused = 0
        self._refused_logged = 0.0

    def log(self, *args) -> None:  # werkzeug calls log(type, message, *args); we call log(message)
        message = args[-1] if len(args) == 1 else (args[1] % args[2:] if len(args) > 2 else args[1])
        self._log(escape(message))

    def log_block(self, text: str) -> None:
        """A multi-line message (a traceback): each line escaped, the line breaks kept."""
        self._log(escape_lines(text))

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)  # one thread per connection
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket, client_address) -> None:
        """503 from the accepting thread, without blocking it: no thread for a connection over the cap."""
        request_id = str(uuid.uuid4())
        body = json.dumps({"message": "Service Unavailable: too many connections", "requestId": request_id})
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"x-amzn-RequestId: {request_id}\r\nRetry-After: 1\r\nContent-Length: {len(body)}\r\n"
                f"Date: {email.utils.formatdate(usegmt=True)}\r\nConnection: close\r\n\r\n")
        try:
            request.setblocking(False)
            try:  # what already arrived: closing with unread input would reset the connection
                request.recv(65536)
            except OSError:
                pass
            request.send((head + body).encode())
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 1.0:  # at most one line a second, however many are refused
            self._log(f"local: {self._refused} connection(s) refused with 503: {self.max_connections} "
                      f"already open (--max-connections)")
            self._refused, self._refused_logged = 0, now

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets, timeouts, broken pipes: the client's doing
            self._log(f"local: connection from {client_address[0]}:{client_address[1]} ended: "
                      f"{type(exc).__name__}")
            return
        self.log_block("local: internal error: " + traceback.format_exc().rstrip())


def _linger(sock: socket.socket) -> None:
    """Half-close, then read and drop what the client still sends, for at most LINGER_S: closing a
    socket with unread input sends a reset, which can destroy the answer before the client reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            if not sock.recv(65536):
                return
    except OSError:
        return


def _clean(text: object) -> str:
    return str(text).replace("\r", " ").replace("\n", " ")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` for one log line: control characters (C0, DEL, C1), line and paragraph separators,
    format characters (bidi overrides) and backslashes written as escapes; everything else as is."""
    if text.isprintable() and "\\" not in text:  # the common case, in C
        return text
    return "".join(ch if ch.isprintable() and ch != "\\" else _escape_char(ch) for ch in text)


def escape_lines(text: str) -> str:
    return "\n".join(escape(line) for line in text.split("\n"))


def log_path(path_info: str) -> str:
    """The decoded request path (WSGI's latin-1 ``PATH_INFO``) as UTF-8 text for a log line, escaped."""
    if path_info.isascii():
        return escape(path_info)
    return escape(path_info.encode("latin-1").decode("utf-8", "surrogateescape"))


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 if the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)
