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
import platform
import sys
from pathlib import Path

from deployctl.artifacts import layers as layer_build
from deployctl.artifacts import packaging
from deployctl.config import EnvConfig


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
    cache.mkdir(parents=True, exist_ok=True)
    return packaging.pip_install_tree(
        cfg, req, cache / f"local-{_local_key(req)[:32]}", staging_dir=cache, pip_args=[], marker_text=name,
        clean=False, failure=f"pip could not install layer '{name}' for deployctl local",
        hint="the first run needs the package index (later runs use .deployctl/cache/layers); "
             "--debug shows pip's output",
    )


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
