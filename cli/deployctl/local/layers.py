"""The functions' layers on ``deployctl local``'s import path, as Lambda puts them at /opt/python.

Each layer the functions list is installed from its requirements file for the
LOCAL interpreter (the Lambda-platform zip may hold manylinux wheels this
machine cannot import) by pip through :mod:`deployctl.runner`, into
``.deployctl/cache/layers/local-<input-hash>/``, where the input hash covers
the requirements file's bytes, this interpreter (implementation, version,
platform) and :data:`deployctl.artifacts.layers.RECIPE_VERSION`. An unchanged
layer is not reinstalled; pip needs the package index only on the first run.

Lambda's order is kept: the function's code first, then the layers in the
order the function lists them.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from deployctl import runner
from deployctl.artifacts import layers as layer_build
from deployctl.artifacts import packaging
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed

MARKER = ".complete"


def _local_key(req: Path) -> str:
    h = hashlib.sha256()
    h.update(f"deployctl-local-layer/{layer_build.RECIPE_VERSION}\n".encode())
    h.update(f"{sys.implementation.name}\n{sys.version}\n{sys.platform}\n{platform.machine()}\n".encode())
    h.update(req.read_bytes())
    return h.hexdigest()


def install_local(cfg: EnvConfig, name: str) -> Path:
    """Install layer ``name`` for this interpreter (cached); returns the directory to put on sys.path."""
    req = layer_build.requirements_path(cfg, name)
    cache = packaging.cache_dir(cfg) / layer_build.CACHE_SUBDIR
    tree = cache / f"local-{_local_key(req)[:32]}"
    if (tree / MARKER).is_file():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".local-", dir=cache))
    try:
        target = staging / "t"
        argv = [sys.executable, "-m", "pip", "install", "--requirement", str(req), "--target", str(target),
                "--only-binary=:all:", "--no-compile", "--disable-pip-version-check", "--no-input", "--quiet"]
        result = runner.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_COMPILE": "1"})
        if not result.ok:
            last = next((ln for ln in reversed(result.stderr.splitlines()) if ln.strip()), "no output")
            raise OperationFailed(
                f"pip could not install layer '{name}' for deployctl local: {last.strip()}",
                where=str(req.relative_to(cfg.root)),
                hint="the first run needs the package index (later runs use .deployctl/cache/layers); "
                     "--debug shows pip's output",
            )
        target.mkdir(exist_ok=True)
        (target / MARKER).write_text(name + "\n")
        try:
            os.replace(target, tree)
        except OSError:
            if not (tree / MARKER).is_file():  # lost a race with another run: theirs is as good
                raise
        return tree
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def layer_paths(cfg: EnvConfig) -> list[Path]:
    """The installed layers every function lists, in first-listed order."""
    names: list[str] = []
    for fn in cfg.functions.values():
        for name in fn.get("layers", []):
            if name not in names:
                names.append(name)
    return [install_local(cfg, name) for name in names]


def put_on_path(cfg: EnvConfig, code_dir: Path) -> list[Path]:
    """Insert the layers right after ``code_dir`` on ``sys.path`` (Lambda: /var/task, then /opt/python)."""
    paths = layer_paths(cfg)
    entries = [str(p) for p in paths if str(p) not in sys.path]
    code = str(code_dir)
    at = sys.path.index(code) + 1 if code in sys.path else 0
    sys.path[at:at] = entries
    return paths
