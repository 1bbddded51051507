"""Run the BUILT zips as Lambda runs them, without Docker.

What ``sam local invoke`` does in a container, done with a worker process
(:mod:`deployctl.local.lambda_worker`) of the env runtime's own Python:

* the code: the function zip unpacked as ``/var/task`` and its layers, in the order
  the function lists them, unpacked over one another as ``/opt`` (cached under
  ``.deployctl/cache/runtime/`` by the zips' sha256, read-only, no bytecode written);
* the interpreter: ``python3.12`` for ``runtime = "python3.12"`` (see
  :func:`find_interpreter`), started isolated, with nothing on ``sys.path`` but the
  code, the layers, the SDK the Lambda runtime bundles (:data:`RUNTIME_SDK`) and the
  standard library; the environment is Lambda's variables plus the function's
  configured ones, nothing inherited from this process;
* the execution environment: one warm worker per function, reused across
  invocations; a new one (a cold start) reports ``Init Duration`` in its REPORT
  line, as Lambda does; an init failure or a timeout discards it.

Nothing here imports click. The worker speaks JSON lines over its stdin/stdout;
the function's own output is its log.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from deployctl import fsutil, pythons, runner
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed, ToolMissing

WORKER = Path(__file__).with_name("lambda_worker.py")
CACHE_SUBDIR = "runtime"

# The one pin of the SDK each Lambda Python runtime bundles (boto3, botocore; pip resolves
# their own dependencies s3transfer, jmespath, python-dateutil, urllib3 for that Python).
# Source: AWS Lambda Developer Guide, "Building Lambda functions with Python", section
# "Runtime-included SDK versions": the last version its table listed for these runtimes.
# AWS now documents that the bundled version depends on the runtime release and the region,
# and gives a handler that prints it (boto3.__version__, botocore.__version__): run it in
# your region and update this line to match what your functions really see.
RUNTIME_SDK: dict[str, tuple[str, str]] = {
    "python3.12": ("1.34.42", "1.34.42"),
    "python3.13": ("1.34.42", "1.34.42"),
}
INTERPRETER_ENV = pythons.ENV_VAR  # path to the runtime's interpreter (overrides discovery)
SDK_CACHE_ENV = "DEPLOYCTL_RUNTIME_CACHE"  # where the SDK install lives (default: the user cache dir)
WORKER_START_TIMEOUT_S = 120.0


# -- the interpreter and the SDK -----------------------------------------------------------------


python_version = pythons.python_version


def find_interpreter(runtime: str, override: str | None = None, cfg: EnvConfig | None = None) -> str:
    """The interpreter of ``runtime``, found by :mod:`deployctl.pythons` (``override`` first, then
    ``DEPLOYCTL_LAMBDA_PYTHON``, ``[tools].lambda_python`` of ``cfg``, ``python3.X`` on PATH, pyenv).

    None of them, or an explicit one of another version: :class:`ToolMissing` (exit 3) naming the
    version and how to get one."""
    choice = pythons.find(runtime, cfg, override)
    version, exe = choice.wanted, f"python{choice.wanted}"
    if choice.interpreter is not None:
        return choice.interpreter.path
    hint = f"install one (pyenv install {version}, or your OS package {exe}) or set {INTERPRETER_ENV}=/path/to/{exe}"
    if choice.refused is not None:
        raise ToolMissing(f"{choice.refused.value} is not a Python {version} interpreter", where=choice.refused.where,
                          hint=f"point it at a {exe} (the functions' runtime is {runtime})")
    if choice.disabled:
        raise ToolMissing(f"{INTERPRETER_ENV} turns the runtime's Python off, and the {runtime} runtime needs one",
                          where=INTERPRETER_ENV, hint=hint)
    raise ToolMissing(
        f"no Python {version} interpreter found for the {runtime} runtime (looked for {exe} on PATH and in pyenv)",
        hint=hint,
    )


def sdk_cache_root() -> Path:
    configured = os.environ.get(SDK_CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deployctl" / "lambda-runtime"


def ensure_sdk(runtime: str) -> Path:
    """The runtime's bundled boto3/botocore, installed once (pip through the runner) into the user
    cache, shared by every project and reused offline afterwards. Not a dependency of deployctl."""
    version = python_version(runtime)
    boto3_version, botocore_version = RUNTIME_SDK.get(runtime) or RUNTIME_SDK["python3.12"]
    tree = sdk_cache_root() / f"{runtime}-boto3-{boto3_version}-botocore-{botocore_version}"

    def install(target: Path) -> None:
        argv = [sys.executable, "-m", "pip", "install", "--target", str(target),
                f"boto3=={boto3_version}", f"botocore=={botocore_version}",
                "--python-version", version, "--implementation", "cp", "--only-binary=:all:", "--no-compile",
                "--disable-pip-version-check", "--no-input", "--quiet"]
        result = runner.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1"})
        if not result.ok:
            last = next((ln for ln in reversed(result.stderr.splitlines()) if ln.strip()), "no output")
            raise OperationFailed(f"pip could not install the {runtime} runtime's SDK (boto3 {boto3_version}): "
                                  f"{last.strip()}", where=str(tree),
                                  hint="the first run needs the package index; later runs use this cache")
        shutil.rmtree(target / "bin", ignore_errors=True)

    return fsutil.build_tree(tree, install, marker=f"boto3=={boto3_version}\nbotocore=={botocore_version}\n",
                             prefix="sdk-")


# -- the code, laid out as Lambda lays it out ------------------------------------------------------


def _read_only(tree: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(tree):
        for name in filenames:
            p = os.path.join(dirpath, name)
            os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _unpack(zips: list[bytes], dest: Path) -> Path:
    """Unpack ``zips`` in order over one another into ``dest`` (cached: done once per content).

    ``dest`` holds exactly the zips' files, as Lambda's code directories do (no marker of ours): it
    appears by one rename of a complete tree, so its existence is what says it is complete."""

    def fill(tree: Path) -> None:
        for data in zips:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    target = (tree / info.filename).resolve()
                    if not target.is_relative_to(tree.resolve()):
                        raise OperationFailed(f"zip entry {info.filename!r} escapes the code directory")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.exists():
                        target.chmod(0o644)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    mode = (info.external_attr >> 16) & 0o777
                    target.chmod(0o755 if mode & 0o111 else 0o644)
        _read_only(tree)

    return fsutil.build_tree(dest, fill, prefix="unpack-")


@dataclass
class Code:
    """A function's code as Lambda holds it: the function zip and its layer zips, in order."""

    function_zip: bytes
    layer_zips: list[bytes] = field(default_factory=list)

    def layout(self, cache: Path) -> tuple[Path, Path | None]:
        """(``/var/task``, ``/opt`` or None), unpacked under ``cache`` by content."""
        task_key = hashlib.sha256(self.function_zip).hexdigest()
        task = _unpack([self.function_zip], cache / "task" / task_key[:32])
        if not self.layer_zips:
            return task, None
        opt_key = hashlib.sha256(b"".join(hashlib.sha256(z).digest() for z in self.layer_zips)).hexdigest()
        return task, _unpack(self.layer_zips, cache / "opt" / opt_key[:32])

    @classmethod
    def from_files(cls, function_zip: Path, layer_zips: list[Path]) -> Code:
        return cls(function_zip.read_bytes(), [p.read_bytes() for p in layer_zips])


@dataclass
class FunctionSpec:
    """What the execution environment needs to know about one function."""

    name: str  # the physical name, e.g. deployctl-demo-dev-users
    handler: str
    runtime: str
    code: Code
    memory_mb: int = 128
    timeout_s: float = 3.0
    region: str = "us-east-1"
    account_id: str = "000000000000"
    version: str = "$LATEST"
    environment: dict[str, str] = field(default_factory=dict)  # the function's configured variables
    aws: dict[str, str] = field(default_factory=dict)  # credentials / AWS_ENDPOINT_URL for the SDK

    @property
    def arn(self) -> str:
        from deployctl.naming import partition

        return f"arn:{partition(self.region)}:lambda:{self.region}:{self.account_id}:function:{self.name}"


# -- one invocation's answer ------------------------------------------------------------------------


@dataclass
class Invocation:
    request_id: str
    status_code: int  # Lambda's Invoke status: 200, also for a function error
    payload: str  # the JSON the function returned, or its error document
    function_error: str | None  # "Unhandled" for an error, as X-Amz-Function-Error
    log: str  # START ... END, REPORT: what CloudWatch gets for this invocation
    duration_ms: float
    init_duration_ms: float | None  # set on a cold start

    @property
    def log_tail(self) -> str:
        """What ``LogType=Tail`` returns: the last 4 KB of the log, base64."""
        return base64.b64encode(self.log.encode()[-4096:]).decode()

    def to_dict(self) -> dict:
        try:
            payload = json.loads(self.payload)
        except ValueError:
            payload = self.payload
        return {"request_id": self.request_id, "status_code": self.status_code, "payload": payload,
                "function_error": self.function_error, "log": self.log, "duration_ms": round(self.duration_ms, 2),
                "init_duration_ms": None if self.init_duration_ms is None else round(self.init_duration_ms, 2)}


# -- the worker: one execution environment ------------------------------------------------------------


def lambda_environment(spec: FunctionSpec, task: Path, opt: Path | None, sdk: Path) -> dict[str, str]:
    """The worker's whole environment: the function's variables, then Lambda's reserved ones."""
    log_stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex
    env = dict(spec.environment)
    env.update(spec.aws)
    env.update({
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(sdk),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": "/usr/local/bin:/usr/bin:/bin" + (f":{opt}/bin" if opt else ""),
    })
    return env


class Worker:
    """One warm execution environment of one function (a process of the runtime's Python)."""

    def __init__(self, spec: FunctionSpec, interpreter: str, sdk: Path, cache: Path):
        self.spec = spec
        task, opt = spec.code.layout(cache)
        version = python_version(spec.runtime)
        path = [str(task)]
        if opt is not None:
            path += [str(opt / "python" / "lib" / f"python{version}" / "site-packages"), str(opt / "python")]
        path.append(str(sdk))
        self._log_dir = Path(tempfile.mkdtemp(prefix="deployctl-lambda-"))
        config = {"handler": spec.handler, "path": path, "log_path": str(self._log_dir / "log")}
        self._stderr = open(self._log_dir / "stderr", "w+b")  # noqa: SIM115 - the worker's own crash output
        started = time.perf_counter()
        self.proc = runner.spawn([interpreter, "-I", "-S", "-B", str(WORKER), json.dumps(config)],
                                 env=lambda_environment(spec, task, opt, sdk), cwd=task,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            first = self._read(WORKER_START_TIMEOUT_S)
        except BaseException as exc:
            self.close()
            if isinstance(exc, TimeoutError):
                raise OperationFailed(f"the {spec.runtime} worker of {spec.name} did not finish its init phase "
                                      f"in {WORKER_START_TIMEOUT_S:.0f}s", hint="what does the module do at import?") from None
            raise
        self.init_ms = (time.perf_counter() - started) * 1000  # runtime start + the module's import, as Lambda counts
        self.init_log = first.get("log", "")
        self.init_error: dict | None = first.get("error") if first.get("type") == "init_error" else None
        self._cold = True
        self.lock = threading.Lock()

    def _read(self, timeout: float) -> dict:
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            self._stderr.seek(0)
            crash = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            raise OperationFailed(f"the {self.spec.runtime} worker of {self.spec.name} exited "
                                  f"({self.proc.returncode}): {crash[-1] if crash else 'no output'}")
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self.init_error is None

    def invoke(self, event_json: str, request_id: str, arn: str | None = None) -> Invocation:
        spec = self.spec
        init = self.init_ms if self._cold else None
        prefix = self.init_log if self._cold else ""
        self._cold = False
        start = f"START RequestId: {request_id} Version: {spec.version}\n"
        if self.init_error is not None:
            error = {**self.init_error, "requestId": ""}
            report = _report(request_id, 0.0, spec.memory_mb, 0, init)
            return Invocation(request_id, 200, json.dumps(error), "Unhandled",
                              prefix + start + f"END RequestId: {request_id}\n" + report, 0.0, init)
        deadline_ms = time.time() * 1000 + spec.timeout_s * 1000
        request = {"type": "invoke", "request_id": request_id, "event": event_json, "deadline_ms": deadline_ms,
                   "invoked_function_arn": arn or spec.arn}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._read(spec.timeout_s + 0.5)
        except TimeoutError:
            self.close()
            ms = spec.timeout_s * 1000
            message = f"RequestId: {request_id} Error: Task timed out after {spec.timeout_s:.2f} seconds"
            error = {"errorType": "Sandbox.Timedout", "errorMessage": message}
            log = (prefix + start + f"{_now_iso()} {request_id} Task timed out after {spec.timeout_s:.2f} seconds\n"
                   + f"END RequestId: {request_id}\n" + _report(request_id, ms, spec.memory_mb, 0, init))
            return Invocation(request_id, 200, json.dumps(error), "Unhandled", log, ms, init)
        duration = float(reply.get("duration_ms", 0.0))
        log = (prefix + start + reply.get("log", "") + f"END RequestId: {request_id}\n"
               + _report(request_id, duration, spec.memory_mb, int(reply.get("max_memory_mb", 0)), init))
        if "error" in reply:
            return Invocation(request_id, 200, json.dumps(reply["error"]), "Unhandled", log, duration, init)
        return Invocation(request_id, 200, reply["payload"], None, log, duration, init)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self._stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self._log_dir, ignore_errors=True)


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _report(request_id: str, duration_ms: float, memory_mb: int, used_mb: int, init_ms: float | None) -> str:
    """Lambda's REPORT line (tab-separated), with ``Init Duration`` on a cold start."""
    parts = [f"REPORT RequestId: {request_id}", f"Duration: {duration_ms:.2f} ms",
             f"Billed Duration: {max(1, math.ceil(duration_ms))} ms", f"Memory Size: {memory_mb} MB",
             f"Max Memory Used: {used_mb} MB"]
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    return "\t".join(parts) + "\t\n"


class Runtime:
    """Warm execution environments, one per function (keyed by name and code), started on demand."""

    def __init__(self, runtime: str, cache: Path, interpreter: str | None = None):
        self.runtime = runtime
        self.interpreter = interpreter or find_interpreter(runtime)
        self.sdk = ensure_sdk(runtime)
        self.cache = cache
        self._workers: dict[tuple, Worker] = {}
        self._lock = threading.Lock()

    def _key(self, spec: FunctionSpec) -> tuple:
        code = hashlib.sha256(spec.code.function_zip + b"".join(spec.code.layer_zips)).hexdigest()
        return (spec.name, spec.version, code, spec.handler, json.dumps(spec.environment, sort_keys=True))

    def invoke(self, spec: FunctionSpec, event: object | str, request_id: str | None = None,
               arn: str | None = None) -> Invocation:
        """Invoke ``spec`` with ``event`` (a JSON text or a value) in its warm worker, or a new one."""
        request_id = request_id or str(uuid.uuid4())
        event_json = event if isinstance(event, str) else json.dumps(event)
        key = self._key(spec)
        with self._lock:
            worker = self._workers.get(key)
            if worker is None or not worker.alive:
                if worker is not None:
                    worker.close()
                worker = self._workers[key] = Worker(spec, self.interpreter, self.sdk, self.cache)
        with worker.lock:  # one invocation at a time per environment, as in Lambda
            result = worker.invoke(event_json, request_id, arn)
        if not worker.alive:
            with self._lock:
                if self._workers.get(key) is worker:
                    del self._workers[key]
            worker.close()
        return result

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_log_tail(tail: str | None) -> str:
    return base64.b64decode(tail).decode("utf-8", "replace") if tail else ""


# -- a function of the env config, from its built zips ---------------------------------------------


def built_code(cfg, functions) -> dict[str, Code]:
    """The zips ``deployctl package`` builds (cached by input hash) for ``functions``, as :class:`Code`."""
    from deployctl.artifacts import packaging

    build = packaging.build(cfg, functions)
    layers = {a.function: a.path for a in build.layers}
    return {a.function: Code.from_files(a.path, [layers[n] for n in cfg.functions[a.function].get("layers", [])])
            for a in build.functions}


def spec_for(cfg, function: str, code: Code, aws: dict[str, str]) -> FunctionSpec:
    """The :class:`FunctionSpec` of ``[functions.<function>]``: its name, handler, memory, timeout and
    environment exactly as Terraform configures them (``naming.function_environment``)."""
    from deployctl import naming

    fn = cfg.functions[function]
    return FunctionSpec(
        name=naming.function_name(cfg, function), handler=fn["handler"],
        runtime=str(cfg.get("lambda.runtime", "python3.12")), code=code,
        memory_mb=int(fn.get("memory_mb") or cfg.get("lambda.memory_mb", 128)),
        timeout_s=float(fn.get("timeout_s") or cfg.get("lambda.timeout_s", 10)),
        region=cfg.region, account_id=cfg.account_id or "000000000000",
        environment=naming.function_environment(cfg, function), aws=dict(aws),
    )


def cache_for(cfg) -> Path:
    from deployctl.artifacts import packaging

    return packaging.cache_dir(cfg) / CACHE_SUBDIR
