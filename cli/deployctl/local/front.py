"""The HTTP front of `deployctl local`: werkzeug's threaded WSGI server, with keep-alive.

werkzeug parses the request (``http.server`` underneath), builds the WSGI
environ and de-chunks bodies; the app (``LocalApp.wsgi``) reads the body with
``werkzeug.wrappers.Request``. Two things werkzeug's development server does
not do are done here, in ``_Handler.run_wsgi``:

* keep-alive: werkzeug always sends ``Connection: close`` (its ``run_wsgi``
  also drains the socket after each response, which would swallow the next
  pipelined request). The app always consumes the request body, or tells the
  front to close (``deployctl.close`` in the environ), so keeping the
  connection open is safe.
* one send per response: status line, headers and body go out in a single
  ``write``; ``TCP_NODELAY`` is set on every connection as well, so Nagle's
  algorithm never holds back a response (the 40 ms delayed-ACK stall).

Every answer is JSON with a request id, including malformed requests
(``send_error``); a client that disconnects or stalls (socket ``timeout``)
costs one log line, never a traceback.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from http import HTTPStatus

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

Log = Callable[[str], None]


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY on each connection
    timeout = 30.0  # socket timeout: idle keep-alive and stalled clients are dropped
    server: Server

    def run_wsgi(self) -> None:  # werkzeug routes every method (do_*) here
        started = time.perf_counter()
        environ = self.environ = self.make_environ()
        environ["deployctl.raw_uri"] = self.path
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
            self.server.log("local: internal error: " + "".join(traceback.format_exception(exc)).rstrip())
            body = json.dumps({"message": "Internal server error", "requestId": str(uuid.uuid4())}).encode()
            result = {"status": "502 Bad Gateway", "headers": [("Content-Type", "application/json")]}
            chunks = [body]
            environ["deployctl.close"] = True
        code = int(result["status"].split(None, 1)[0])
        self._send(code, result["headers"], b"".join(chunks), close=bool(environ.get("deployctl.close")))
        on_request = self.server.on_request
        if on_request is not None:
            on_request(self.command, environ.get("PATH_INFO", ""), code,
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
        """http.server's answer to a request it cannot parse: JSON like every other answer."""
        request_id = str(uuid.uuid4())
        self.close_connection = True
        body = json.dumps({"message": message or _phrase(code), "requestId": request_id}).encode()
        try:
            self._send(code, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)], body,
                       close=True)
        except OSError:
            pass
        line = (self.raw_requestline or b"")[:80].decode("latin-1").strip()
        self.server.log(f"local: {code} malformed request {line!r}: {message or _phrase(code)}")

    def connection_dropped(self, error: BaseException, environ=None) -> None:
        what = "timed out" if isinstance(error, TimeoutError) else f"disconnected ({type(error).__name__})"
        self.server.log(f"local: client {self.client_address[0]}:{self.client_address[1]} {what}")

    def log_error(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        # "Request timed out: ..." from an idle keep-alive connection, and the like
        self.server.log(f"local: {self.client_address[0]}:{self.client_address[1]} " + (format % args))

    def log_request(self, code="-", size="-") -> None:
        pass  # requests are logged by run_wsgi through on_request


class Server(ThreadedWSGIServer):
    """werkzeug's threaded server on a socket bound by the caller."""

    def __init__(self, sock: socket.socket, app, *, timeout: float, log: Log,
                 on_request: Callable[[str, str, int, float, str], None] | None):
        host, port = sock.getsockname()[:2]
        handler = type("Handler", (_Handler,), {"timeout": timeout})
        super().__init__(host, port, app, handler=handler, fd=sock.fileno())
        sock.close()  # werkzeug works on its own duplicate of the descriptor
        self._log = log
        self.on_request = on_request

    def log(self, *args) -> None:  # werkzeug calls log(type, message, *args); we call log(message)
        message = args[-1] if len(args) == 1 else (args[1] % args[2:] if len(args) > 2 else args[1])
        self._log(message)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets, timeouts, broken pipes: the client's doing
            self._log(f"local: connection from {client_address[0]}:{client_address[1]} ended: "
                      f"{type(exc).__name__}")
            return
        self._log("local: internal error: " + traceback.format_exc().rstrip())


def _clean(text: object) -> str:
    return str(text).replace("\r", " ").replace("\n", " ")


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 if the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)
