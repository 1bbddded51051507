"""Bytecode for the Lambda zips, compiled by the runtime's own Python.

Lambda's code directories (``/var/task``, ``/opt/python``) are read-only, so a zip without ``.pyc``
files makes every cold start compile every module it imports (powertools included). This module
adds, beside each ``.py`` of a zip, ``__pycache__/<stem>.<cache_tag>.pyc`` (``cpython-312`` for
``runtime = "python3.12"``), which is where the import system of that runtime looks.

* **The runtime's exact Python.** A ``.pyc`` is only used by the CPython minor version that wrote it
  (the magic number), so the compiler is an interpreter of the env's ``[lambda].runtime``, found by
  :mod:`deployctl.pythons` (``DEPLOYCTL_LAMBDA_PYTHON``, where ``none`` turns bytecode off, else
  ``[tools].lambda_python``, else ``python3.X`` on ``PATH``, else pyenv's ``versions/3.X.*``). An
  explicit one that is not CPython 3.X is a config error; a discovered one that is not is skipped.
  When none is found the zips are built without bytecode (correct, only slower to start) and the
  build prints one warning naming the version and how to get one.
* **Reproducible.** Hash-based pycs in ``unchecked-hash`` mode (PEP 552: no mtime in the header; the
  runtime loads them without reading the source), ``optimize=0``, ``PYTHONHASHSEED=0``, one compiler
  process per zip over the files in sorted order. The zip writer fixes the rest (timestamps, order,
  modes). The interpreter's full version and magic number are part of the zip's cache key, so a zip
  built without bytecode is rebuilt once the interpreter appears, and the other way round.
* **What is compiled.** The bytes that go into the zip: the ``.py`` entries' content (for lambda_src
  the bytes the source guard read and checked, never the tree again) is written into a private temp
  dir and compiled there, through :mod:`deployctl.runner` (an argument list). The code objects' file
  name is the path the runtime will see (``/var/task/<arcname>`` for a function, ``/opt/<arcname>``
  for a layer, whose entries start with ``python/``), so tracebacks on Lambda name the real file. A
  lambda_src module the runtime's compiler refuses is a config error; a dependency's module it refuses
  is shipped without its ``.pyc`` (as pip's own compile step skips it).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from deployctl import pythons, runner
from deployctl.artifacts.zipbuild import Entry
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError

ENV_VAR = pythons.ENV_VAR
CONFIG_KEY = pythons.CONFIG_KEY
FUNCTION_ROOT = "/var/task"  # where Lambda unpacks a function's zip
LAYER_ROOT = "/opt"  # where Lambda unpacks a layer's zip (its python/ is on sys.path)

# Run by the runtime's interpreter: reads [[source, pyc, co_filename], ...] as JSON on stdin, compiles each
# in that order, prints the indexes that failed (a syntax the runtime refuses).
_COMPILE = """\
import json, py_compile, sys
failed = []
for i, (src, cfile, dfile) in enumerate(json.load(sys.stdin)):
    try:
        py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True, optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        failed.append(i)
print(json.dumps(failed))
"""


Interpreter = pythons.Interpreter
Choice = pythons.Choice


def find(cfg: EnvConfig) -> Choice:
    """The interpreter that compiles the bytecode of ``cfg``'s runtime (see :mod:`deployctl.pythons`).

    An explicit one that is not the runtime's CPython is a config error; none found: a Choice
    without an interpreter (the zips are built without bytecode, with :func:`warn`)."""
    choice = pythons.find(str(cfg.get("lambda.runtime", "python3.12")), cfg)
    refused = choice.refused
    if refused is not None:
        what = f"is {refused.found.cache_tag}" if refused.found else "does not run"
        raise ConfigError(f"the Lambda bytecode compiler '{refused.value}' {what}, the runtime needs {choice.tag}",
                          where=refused.where, hint=f"name a python{choice.wanted} (path or command), or 'none' to ship no .pyc")
    return choice


def warning(choice: Choice) -> str | None:
    """Why the zips go out without bytecode, or None (there is bytecode, or it was turned off)."""
    if choice.interpreter is not None or choice.disabled:
        return None
    return (f"no Python {choice.wanted} found to compile the runtime's bytecode: the zips ship without .pyc "
            f"(correct, but each cold start compiles its modules); install python{choice.wanted} (e.g. `pyenv "
            f"install {choice.wanted}`) or point {ENV_VAR} or [tools].lambda_python at one")


def pyc_name(arcname: str, cache_tag: str) -> str:
    """``pkg/mod.py`` -> ``pkg/__pycache__/mod.<cache_tag>.pyc`` (PEP 3147)."""
    path = PurePosixPath(arcname)
    return str(path.parent / "__pycache__" / f"{path.stem}.{cache_tag}.pyc").removeprefix("./")


def compile_entries(entries: Sequence[Entry], interp: Interpreter, root: str, *,
                    strict: frozenset[str] = frozenset()) -> list[Entry]:
    """The ``.pyc`` entries for the ``.py`` entries of a zip that lands at ``root`` on Lambda.

    ``strict``: arcnames whose refusal by the compiler is a config error (lambda_src modules); any
    other module the compiler refuses gets no ``.pyc``."""
    sources = sorted((e for e in entries if e.arcname.endswith(".py")), key=lambda e: e.arcname)
    if not sources:
        return []
    work = Path(tempfile.mkdtemp(prefix="deployctl-pyc-"))  # 0700: ours alone
    try:
        jobs = []
        for i, entry in enumerate(sources):
            src = work / "src" / f"{i}.py"
            src.parent.mkdir(exist_ok=True)
            src.write_bytes(entry.content())
            jobs.append([str(src), str(work / "pyc" / f"{i}.pyc"), f"{root.rstrip('/')}/{entry.arcname}"])
        (work / "pyc").mkdir()
        env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": "", "PYTHONHOME": "",
               "PYTHONOPTIMIZE": "", "PYTHONSTARTUP": "", "PYTHONWARNINGS": "ignore"}
        res = runner.run([interp.path, "-s", "-S", "-c", _COMPILE], env=env, input=json.dumps(jobs), cwd=work)
        if not res.ok:
            last = next((ln for ln in reversed(res.stderr.splitlines()) if ln.strip()), "no output")
            raise ConfigError(f"{interp.path} could not compile the bytecode: {last.strip()}",
                              where=ENV_VAR, hint=f"point {ENV_VAR} at a working python or set it to 'none'")
        failed = set(json.loads(res.stdout.strip().splitlines()[-1]))
        out = []
        for i, entry in enumerate(sources):
            if i in failed:
                if entry.arcname in strict:
                    raise ConfigError(f"python {interp.version} (the runtime's) cannot compile this module",
                                      where=f"lambda_src/{entry.arcname}", hint="fix the source for the runtime's Python")
                continue
            data = (work / "pyc" / f"{i}.pyc").read_bytes()
            out.append(Entry(pyc_name(entry.arcname, interp.cache_tag), entry.source, False, data))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def warn(choice: Choice, stream=None) -> None:
    """The one warning line when the zips go out without bytecode."""
    message = warning(choice)
    if message:
        print(f"warning: {message}", file=stream or sys.stderr)
