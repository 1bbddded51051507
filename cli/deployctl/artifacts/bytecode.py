"""Bytecode for the Lambda zips, compiled by the runtime's own Python.

Lambda's code directories (``/var/task``, ``/opt/python``) are read-only, so a zip without ``.pyc``
files makes every cold start compile every module it imports (powertools included). This module
adds, beside each ``.py`` of a zip, ``__pycache__/<stem>.<cache_tag>.pyc`` (``cpython-312`` for
``runtime = "python3.12"``), which is where the import system of that runtime looks.

* **The runtime's exact Python.** A ``.pyc`` is only used by the CPython minor version that wrote it
  (the magic number), so the compiler is an interpreter of the env's ``[lambda].runtime``: the one named
  by ``DEPLOYCTL_LAMBDA_PYTHON`` (a path or a command; ``none`` turns bytecode off), else by
  ``[tools].lambda_python``, else ``python3.X`` on ``PATH``, else pyenv's ``versions/3.X.*``. An
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
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deployctl import runner
from deployctl.artifacts import zipbuild
from deployctl.artifacts.zipbuild import Entry
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, DeployctlError

ENV_VAR = "DEPLOYCTL_LAMBDA_PYTHON"
CONFIG_KEY = "tools.lambda_python"
OFF = frozenset({"none", "off", "0", "false", "no"})
FUNCTION_ROOT = "/var/task"  # where Lambda unpacks a function's zip
LAYER_ROOT = "/opt"  # where Lambda unpacks a layer's zip (its python/ is on sys.path)

_PROBE = ("import importlib.util, json, sys; print(json.dumps([sys.implementation.name, sys.implementation.cache_tag, "
          "'.'.join(map(str, sys.version_info[:3])), importlib.util.MAGIC_NUMBER.hex()]))")

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


@dataclass(frozen=True)
class Interpreter:
    """A CPython that writes the runtime's bytecode."""

    path: str
    cache_tag: str  # "cpython-312"
    version: str  # "3.12.1"
    magic: str  # hex of importlib.util.MAGIC_NUMBER

    @property
    def key(self) -> str:
        """What the cache key records: the bytes a build produces depend on these."""
        return f"{self.cache_tag}/{self.version}/{self.magic}"


@dataclass(frozen=True)
class Choice:
    """The outcome of looking for the runtime's interpreter: one, or none (and why not)."""

    interpreter: Interpreter | None
    wanted: str  # "3.12"
    disabled: bool = False  # turned off on purpose (DEPLOYCTL_LAMBDA_PYTHON=none): no warning

    @property
    def key(self) -> str:
        return self.interpreter.key if self.interpreter else "none"

    def warning(self) -> str | None:
        if self.interpreter is not None or self.disabled:
            return None
        return (f"no Python {self.wanted} found to compile the runtime's bytecode: the zips ship without .pyc "
                f"(correct, but each cold start compiles its modules); install python{self.wanted} (e.g. `pyenv "
                f"install {self.wanted}`) or point {ENV_VAR} or [tools].lambda_python at one")


_probed: dict[str, Interpreter | None] = {}


def _probe(command: str) -> Interpreter | None:
    """The interpreter ``command`` runs (a path or a name on PATH), or None if it does not run."""
    exe = runner.get_runner().which(command)
    if exe is None:
        return None
    exe = os.path.abspath(exe)
    if exe in _probed:  # memo by the file it runs (PATH may change between builds)
        return _probed[exe]
    found = None
    try:
        res = runner.run([exe, "-I", "-S", "-c", _PROBE], timeout=60)
    except DeployctlError:
        res = None
    if res is not None and res.ok:
        try:
            name, tag, version, magic = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError, TypeError):
            name = None
        if name == "cpython" and tag:
            found = Interpreter(path=exe, cache_tag=str(tag), version=str(version), magic=str(magic))
    _probed[exe] = found
    return found


def _pyenv_candidates(wanted: str) -> list[str]:
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(root) / "versions"
    try:
        names = [p.name for p in versions.iterdir() if p.name.startswith(wanted + ".")]
    except OSError:
        return []

    def order(name: str) -> tuple:
        tail = name[len(wanted) + 1:]
        return (0, int(tail)) if tail.isdigit() else (1, 0)

    # newest final release first (3.12.10 before 3.12.9; "3.12.1-dev" style names last)
    return [str(versions / n / "bin" / f"python{wanted}") for n in sorted(names, key=order, reverse=True)]


def find(cfg: EnvConfig) -> Choice:
    """The interpreter that compiles the bytecode of ``cfg``'s runtime (see the module doc)."""
    _, wanted = zipbuild.platform(cfg)
    tag = "cpython-" + wanted.replace(".", "")
    explicit = [(os.environ.get(ENV_VAR, "").strip(), ENV_VAR), (str(cfg.get(CONFIG_KEY, "") or "").strip(),
                                                                 cfg.where(CONFIG_KEY))]
    for value, where in explicit:
        if not value:
            continue
        if value.lower() in OFF:
            return Choice(None, wanted, disabled=True)
        found = _probe(value)
        if found is None or found.cache_tag != tag:
            what = f"is {found.cache_tag}" if found else "does not run"
            raise ConfigError(f"the Lambda bytecode compiler '{value}' {what}, the runtime needs {tag}",
                              where=where, hint=f"name a python{wanted} (path or command), or 'none' to ship no .pyc")
        return Choice(found, wanted)
    pyenv = _pyenv_candidates(wanted)
    on_path = runner.get_runner().which(f"python{wanted}")
    if on_path and Path(on_path).parent.name == "shims" and pyenv:
        on_path = None  # a pyenv shim runs one of pyenv's versions (or fails): ask those directly
    for candidate in [*([on_path] if on_path else []), *pyenv]:
        found = _probe(candidate)
        if found is not None and found.cache_tag == tag:
            return Choice(found, wanted)
    return Choice(None, wanted)


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
    message = choice.warning()
    if message:
        print(f"warning: {message}", file=stream or sys.stderr)
