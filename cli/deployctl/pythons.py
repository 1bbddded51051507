"""The Lambda runtime's Python on this machine: ``runtime = "python3.12"`` -> a CPython 3.12 here.

Two capabilities need it: :mod:`deployctl.artifacts.bytecode` (the zips' ``.pyc`` are compiled by it)
and :mod:`deployctl.local.runtime` (the built zips run in it). Where it is looked for, in order:

1. ``DEPLOYCTL_LAMBDA_PYTHON`` (a path or a command; ``none`` turns it off), else
   ``[tools].lambda_python`` of the env config: an explicit choice. One that does not run, or is not
   CPython of the runtime's version, is *refused* (:attr:`Choice.refused`), never passed over.
2. ``python3.X`` on ``PATH`` (a pyenv shim is skipped when pyenv's versions can be asked directly:
   the shim runs whichever version is selected, or fails);
3. pyenv's ``versions/3.X.*/bin/python3.X`` (under ``PYENV_ROOT``, else ``~/.pyenv``: ``pyenv root``), the newest
   final release first.

A discovered candidate that is not the right CPython is skipped. Each file is probed once per
process (memo by the file it runs). What to do when there is none, or the explicit one is refused,
is the caller's policy: packaging warns and builds without bytecode, ``invoke --local`` stops with
:class:`~deployctl.errors.ToolMissing` (exit 3).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from deployctl import runner
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, DeployctlError

ENV_VAR = "DEPLOYCTL_LAMBDA_PYTHON"
CONFIG_KEY = "tools.lambda_python"
OFF = frozenset({"none", "off", "0", "false", "no"})

_PROBE = ("import importlib.util, json, sys; print(json.dumps([sys.implementation.name, sys.implementation.cache_tag, "
          "'.'.join(map(str, sys.version_info[:3])), importlib.util.MAGIC_NUMBER.hex()]))")


@dataclass(frozen=True)
class Interpreter:
    """A CPython of the runtime's version: what it runs and what its bytecode depends on."""

    path: str
    cache_tag: str  # "cpython-312"
    version: str  # "3.12.1"
    magic: str  # hex of importlib.util.MAGIC_NUMBER

    @property
    def key(self) -> str:
        """What a build's cache key records: the bytes a build produces depend on these."""
        return f"{self.cache_tag}/{self.version}/{self.magic}"


@dataclass(frozen=True)
class Refusal:
    """An explicit choice (``value`` from ``where``) that is not the runtime's Python."""

    value: str
    where: str
    found: Interpreter | None  # what it is, or None: it does not run


@dataclass(frozen=True)
class Choice:
    """The outcome of looking for the runtime's interpreter: one, or none (and why not)."""

    interpreter: Interpreter | None
    wanted: str  # "3.12"
    disabled: bool = False  # turned off on purpose (DEPLOYCTL_LAMBDA_PYTHON=none)
    refused: Refusal | None = None

    @property
    def tag(self) -> str:
        return "cpython-" + self.wanted.replace(".", "")

    @property
    def key(self) -> str:
        return self.interpreter.key if self.interpreter else "none"


def python_version(runtime: str) -> str:
    """``python3.12`` -> ``3.12`` (only Python runtimes have one)."""
    if not runtime.startswith("python") or not runtime[6:].replace(".", "").isdigit():
        raise ConfigError(f"runtime {runtime!r} is not a Python runtime", where="lambda.runtime",
                          hint="deployctl runs Python functions only, e.g. runtime = \"python3.12\"")
    return runtime[6:]


_probed: dict[str, Interpreter | None] = {}


def probe(command: str) -> Interpreter | None:
    """The CPython ``command`` runs (a path or a name on PATH), or None if it does not run or is not CPython."""
    exe = runner.get_runner().which(command)
    if exe is None:
        return None
    exe = os.path.abspath(exe)
    if exe in _probed:  # memo by the file it runs (PATH may change between calls)
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


def pyenv_candidates(wanted: str) -> list[str]:
    """pyenv's ``python3.X`` of every installed ``3.X.*``, newest final release first (3.12.10 before 3.12.9)."""

    def order(name: str) -> tuple:
        tail = name[len(wanted) + 1:]
        return (0, int(tail)) if tail.isdigit() else (1, 0)

    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"  # what `pyenv root` says
    try:
        names = [p.name for p in versions.iterdir() if p.name.startswith(wanted + ".")]
    except OSError:
        return []
    return [str(versions / n / "bin" / f"python{wanted}") for n in sorted(names, key=order, reverse=True)]


def find(runtime: str, cfg: EnvConfig | None = None, override: str | None = None) -> Choice:
    """The interpreter of ``runtime`` (see the module doc). ``override`` (a caller's explicit choice)
    comes before ``DEPLOYCTL_LAMBDA_PYTHON``; ``cfg`` supplies ``[tools].lambda_python``."""
    wanted = python_version(runtime)
    choice = Choice(None, wanted)
    explicit = [(override or "", ENV_VAR), (os.environ.get(ENV_VAR, ""), ENV_VAR)]
    if cfg is not None:
        explicit.append((str(cfg.get(CONFIG_KEY, "") or ""), cfg.where(CONFIG_KEY)))
    for value, where in explicit:
        value = value.strip()
        if not value:
            continue
        if value.lower() in OFF:
            return Choice(None, wanted, disabled=True)
        found = probe(value)
        if found is None or found.cache_tag != choice.tag:
            return Choice(None, wanted, refused=Refusal(value, where, found))
        return Choice(found, wanted)
    pyenv = pyenv_candidates(wanted)
    on_path = runner.get_runner().which(f"python{wanted}")
    if on_path and Path(on_path).parent.name == "shims" and pyenv:
        on_path = None  # a pyenv shim runs one of pyenv's versions (or fails): ask those directly
    for candidate in [*([on_path] if on_path else []), *pyenv]:
        found = probe(candidate)
        if found is not None and found.cache_tag == choice.tag:
            return Choice(found, wanted)
    return choice
