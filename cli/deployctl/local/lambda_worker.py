"""One Lambda execution environment: the worker process :mod:`deployctl.local.runtime` starts.

Run by the env runtime's interpreter (python3.12 for ``runtime = "python3.12"``) as
``python3.12 -I -S -B lambda_worker.py CONFIG_JSON``: isolated (no PYTHON* variables,
no user site, not even the interpreter's own site-packages), no bytecode written
(``/var/task`` and ``/opt`` are read-only in Lambda, so every cold start compiles
from source there too). It imports nothing from deployctl: it runs on another
Python than deployctl's.

``sys.path`` is what the Python 3.12 runtime has, in its order: the function's code
(``/var/task``), the layers' ``/opt/python/lib/python3.12/site-packages`` and
``/opt/python``, the runtime's own boto3/botocore (Lambda:
``/var/lang/lib/python3.12/site-packages``), then the standard library.

The contract with the parent, over two private descriptors (the handler's stdout and
stderr go to the log, as in Lambda, where they reach CloudWatch):

* on start, the init phase: resolve the handler string (``module.function``) and
  import its module, as Lambda's runtime interface client does, and answer
  ``{"type": "ready", "init_ms", "log"}`` or ``{"type": "init_error", "error", "log"}``
  with Lambda's error shape (``Runtime.ImportModuleError`` etc.);
* then, per line ``{"type": "invoke", "request_id", "event", "deadline_ms", ...}``,
  call the handler with the event and a context object and answer
  ``{"type": "result", "payload" | "error", "duration_ms", "max_memory_mb", "log"}``.
"""

import json
import os
import resource
import sys
import time
import traceback

CONFIG = json.loads(sys.argv[1])
# the parent reads our answers from the stdout it gave us and writes requests to our stdin:
# keep both on private descriptors, then give the handler /dev/null and the log file instead
CTL_IN = os.fdopen(os.dup(0), "r", encoding="utf-8")
CTL_OUT = os.fdopen(os.dup(1), "w", encoding="utf-8")
_LOG_FD = os.open(CONFIG["log_path"], os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.dup2(_LOG_FD, 1)
os.dup2(_LOG_FD, 2)


def _send(message):
    CTL_OUT.write(json.dumps(message) + "\n")
    CTL_OUT.flush()


def _take_log():
    """What the function wrote since the last call (the log file is truncated after reading)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.lseek(_LOG_FD, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(_LOG_FD, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.ftruncate(_LOG_FD, 0)
    return b"".join(chunks).decode("utf-8", "replace")


def _error(message, error_type, stack=None, request_id=""):
    """Lambda's error shape (the runtime interface client's make_error)."""
    return {"errorMessage": message or "", "errorType": error_type or "", "requestId": request_id,
            "stackTrace": stack or []}


def _log_error(error):
    """The runtime's log line for an error: ``[ERROR] Type: message`` and the traceback."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}", "Traceback (most recent call last):"]
    lines += [frame.rstrip("\n") for frame in error["stackTrace"]]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _user_frames(tb):
    """The traceback without this worker's own frames (the runtime drops its bootstrap frames)."""
    frames = traceback.extract_tb(tb)
    while frames and frames[0].filename == __file__:
        frames = frames[1:]
    return traceback.format_list(frames)


class Fault(Exception):
    def __init__(self, error_type, message, stack=None):
        super().__init__(message)
        self.error = _error(message, error_type, stack)


def resolve_handler(handler):
    """``module.function`` -> the callable, with the runtime's faults for each way it can fail."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault("Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module")
    import importlib

    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}") from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {exc}", trace) from None
    function = getattr(module, fname, None)
    if function is None:
        fault = _error(f"Handler '{fname}' missing on module '{modname}'", "Runtime.HandlerNotFound")

        def missing(_event, _context):
            raise Fault(fault["errorType"], fault["errorMessage"])

        return missing
    return function


class LambdaContext:
    """The context object of the Python runtime (the attributes and the one method handlers use)."""

    def __init__(self, request_id, deadline_ms, arn, client_context=None):
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = client_context
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _max_memory_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux


def main():
    sys.path[:0] = CONFIG["path"]
    started = time.perf_counter()
    try:
        handler = resolve_handler(CONFIG["handler"])
    except Fault as fault:
        _log_error(fault.error)
        _send({"type": "init_error", "error": fault.error, "log": _take_log()})
        return 1
    except Exception as exc:  # noqa: BLE001 - an exception raised by the module's own top level
        error = _error(str(exc), type(exc).__name__, _user_frames(exc.__traceback__))
        _log_error(error)
        _send({"type": "init_error", "error": error, "log": _take_log()})
        return 1
    _send({"type": "ready", "init_ms": (time.perf_counter() - started) * 1000, "log": _take_log()})
    for line in CTL_IN:
        request = json.loads(line)
        if request.get("type") != "invoke":
            break
        request_id = request["request_id"]
        context = LambdaContext(request_id, request["deadline_ms"], request["invoked_function_arn"],
                                request.get("client_context"))
        reply = {"type": "result"}
        started = time.perf_counter()
        try:
            event = json.loads(request["event"])
            result = handler(event, context)
        except Fault as fault:
            reply["error"] = {**fault.error, "requestId": request_id}
        except Exception as exc:  # noqa: BLE001 - the function's unhandled exception: Lambda's error shape
            reply["error"] = _error(str(exc), type(exc).__name__, _user_frames(exc.__traceback__), request_id)
        else:
            try:
                reply["payload"] = json.dumps(result)
            except (TypeError, ValueError) as exc:
                reply["error"] = _error(f"Unable to marshal response: {exc}", "Runtime.MarshalError", None,
                                        request_id)
        reply["duration_ms"] = (time.perf_counter() - started) * 1000
        if "error" in reply:
            _log_error(reply["error"])
        reply["max_memory_mb"] = _max_memory_mb()
        reply["log"] = _take_log()
        _send(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
