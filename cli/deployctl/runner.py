"""The one place deployctl starts external tools (terraform/tofu, checkov, pip).

Commands are argument lists, never shell strings. Tests swap the runner with
:func:`set_runner` (or wrap the default one) to observe or fake a tool.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from deployctl.errors import Interrupted, OperationFailed, ToolMissing


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class Runner:
    """Runs a tool and returns its :class:`Result`.

    ``capture=False`` lets the tool write to our stdout/stderr directly;
    ``tee=stream`` captures its output *and* echoes every line to ``stream``
    as it comes (long terraform runs, without polluting --json stdout).
    Ctrl-C is forwarded to the child, which is then waited for, so terraform
    can release its state lock before we exit.
    """

    extra_env: dict[str, str] = field(default_factory=dict)

    def which(self, tool: str) -> str | None:
        if os.sep in tool:
            return tool if os.access(tool, os.X_OK) else None
        return shutil.which(tool)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        capture: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        tee: TextIO | None = None,
    ) -> Result:
        argv = [str(a) for a in argv]
        if not argv:
            raise ValueError("empty command")
        exe = self.which(argv[0])
        if exe is None:
            raise ToolMissing(
                f"'{argv[0]}' was not found",
                hint="install it or point deployctl at it; `deployctl doctor` shows how",
            )
        full_env = dict(os.environ)
        full_env.update(self.extra_env)
        if env:
            full_env.update(env)
        pipe = subprocess.PIPE if capture else None
        job = getattr(_local, "job", None)
        try:
            with job._lock if job is not None else contextlib.nullcontext():
                if job is not None and job._stopped:
                    raise Interrupted(f"{Path(argv[0]).name} was not started: its job was stopped")
                proc = subprocess.Popen(
                    [exe, *argv[1:]],
                    cwd=str(cwd) if cwd else None,
                    env=full_env,
                    stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                    stdout=pipe,
                    stderr=pipe,
                    text=True,
                    # a job's tool leads a process group of its own: stop() ends it with every process
                    # it forked (checkov's workers); Ctrl-C reaches it through the job's caller
                    start_new_session=job is not None,
                )
                if job is not None:
                    job._procs.append(proc)
        except OSError as exc:
            raise OperationFailed(f"could not start {argv[0]}: {exc.strerror}") from exc
        try:
            if tee is not None and capture:
                out, err = _tee(proc, input, tee, timeout)
            else:
                out, err = proc.communicate(input=input, timeout=timeout)
        except KeyboardInterrupt:
            # Give the tool the signal (it may be in its own session) and let it
            # finish cleanly, e.g. terraform releasing its state lock.
            _forward_and_wait(proc)
            raise Interrupted(
                f"interrupted; {Path(argv[0]).name} was stopped and has exited",
                hint="nothing beyond what it reported was done",
            ) from None
        except subprocess.TimeoutExpired:
            _forward_and_wait(proc)
            raise OperationFailed(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s") from None
        if job is not None and job._stopped:
            raise Interrupted(f"{Path(argv[0]).name} was stopped: its job was stopped")
        return Result(argv=argv, returncode=proc.returncode, stdout=out or "", stderr=err or "")


def _tee(proc: subprocess.Popen, input: str | None, tee: TextIO, timeout: float | None) -> tuple[str, str]:
    """Collect stdout and stderr while echoing each line to ``tee``."""
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    lock = threading.Lock()

    def pump(stream, key: str) -> None:
        for line in iter(stream.readline, ""):
            chunks[key].append(line)
            with lock:
                tee.write(line)
                tee.flush()
        stream.close()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for t in readers:
        t.start()
    if input is not None and proc.stdin:
        proc.stdin.write(input)
        proc.stdin.close()
    proc.wait(timeout=timeout)
    for t in readers:
        t.join()
    return "".join(chunks["out"]), "".join(chunks["err"])


def _forward_and_wait(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=60)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()


_runner: Runner = Runner()


def get_runner() -> Runner:
    return _runner


def set_runner(runner: Runner) -> Runner:
    """Install ``runner`` as the process-wide runner; returns the previous one."""
    global _runner
    previous, _runner = _runner, runner
    return previous


def run(argv: Sequence[str], **kwargs) -> Result:
    return _runner.run(argv, **kwargs)


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | Path | None = None,
          stdin=None, stdout=None, stderr=None) -> subprocess.Popen:
    """Start a long-lived process (a Lambda worker of deployctl.local.runtime) from an argument list.

    Unlike :meth:`Runner.run` it does not wait, and ``env`` is the child's WHOLE environment
    (nothing of ours is inherited). The caller owns the process and must end it."""
    argv = [str(a) for a in argv]
    exe = _runner.which(argv[0])
    if exe is None:
        raise ToolMissing(f"'{argv[0]}' was not found", hint="install it or point deployctl at it")
    try:
        return subprocess.Popen([exe, *argv[1:]], cwd=str(cwd) if cwd else None, env=dict(env), stdin=stdin,
                                stdout=stdout, stderr=stderr, start_new_session=True)
    except OSError as exc:
        raise OperationFailed(f"could not start {argv[0]}: {exc.strerror}") from exc


# -- work beside the main thread --------------------------------------------------------------

_local = threading.local()


class Job:
    """``fn()`` run in a thread of its own (a policy scan beside terraform), started at once.

    Every tool it starts through this module is registered, so :meth:`stop` can end them:
    nothing it started outlives the caller. :meth:`result` waits for it and returns ``fn``'s
    value or raises its exception. Tools are subprocesses, so the GIL is not what limits it.
    """

    STOP_GRACE_S = 5.0

    def __init__(self, fn: Callable[[], object], *, name: str = "deployctl-job"):
        self._fn = fn
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        self._stopped = False
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        _local.job = self
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc
        finally:
            _local.job = None

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self):
        """Wait for ``fn`` (Ctrl-C interrupts the wait: the caller then stops the job) and return its value."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def stop(self) -> None:
        """End every tool the job started (SIGTERM, then SIGKILL after a grace period), start no
        more, and wait for the thread. Safe to call twice, and after the job finished."""
        with self._lock:
            self._stopped = True
            running = [proc for proc in self._procs if proc.poll() is None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=self.STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # whatever of its group is left (forked workers)
            proc.wait()
        self._thread.join()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """``sig`` to the process group ``proc`` leads (a job's tool, started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
