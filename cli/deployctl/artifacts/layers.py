"""Lambda layers from ``[layers.<name>]``: reproducible zips of pinned requirements.

A layer's zip holds its requirements installed by pip (through
:mod:`deployctl.runner`) for the Lambda platform of the env
(``[lambda].runtime`` and ``[lambda].architecture``: manylinux wheels,
``--implementation cp``, ``--only-binary=:all:``, ``--no-compile``) under the
``python/`` prefix, which Lambda unpacks to ``/opt/python`` (on the import path).

The requirements file is read through the lambda_src guard
(:mod:`deployctl.artifacts.srctree`): it and every link on its path must resolve inside
``lambda_src/``, and it may hold only pinned requirements and ``--hash`` options.

Reproducible like the function zips (the same writer: sorted entries, fixed
timestamps, normalised modes, fixed deflate level); install metadata that
embeds paths or machine state is dropped or normalised (``bin/``,
``direct_url.json``, ``*.pyc``/``__pycache__``, ``RECORD`` rewritten with
relative, sorted rows). ``INSTALLER`` (``pip``) and ``REQUESTED`` are constant.

Build cache: ``.deployctl/cache/layers/<input-hash>.zip`` (+ ``.json`` metadata,
including the top-level names the layer provides). The input hash covers the
requirements file's bytes, the platform tags, the Python version, the zip
settings, the bytecode compiler (:mod:`deployctl.artifacts.bytecode`: its
version, or none) and :data:`RECIPE_VERSION` (bump it when this build changes).

Bytecode: each ``.py`` gets ``__pycache__/<stem>.cpython-3XX.pyc`` compiled by the
runtime's Python (unchecked-hash, code file names ``/opt/python/...``), when one
is found; see :mod:`deployctl.artifacts.bytecode`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from deployctl.artifacts import bytecode, zipbuild
from deployctl.artifacts.deps import install_requirements, read_requirements, tree_entries
from deployctl.artifacts.srctree import SOURCE_DIR, SourceTree
from deployctl.artifacts.zipbuild import Artifact, Entry
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError
from deployctl.fsutil import atomic_write

RECIPE_VERSION = "1"
PREFIX = "python"  # Lambda puts /opt/python on sys.path for Python runtimes
CACHE_SUBDIR = "layers"


def requirements_path(cfg: EnvConfig, name: str, tree: SourceTree | None = None) -> Path:
    """The layer's requirements file (``[layers.<name>].requirements`` under lambda_src/), checked:
    it and every link on its way resolve inside lambda_src/."""
    rel = cfg.layers[name]["requirements"]
    tree = tree or SourceTree(cfg.root / SOURCE_DIR)
    path = tree.dir / rel
    dotted = f"layers.{name}.requirements"
    tree.resolve(path, key=f"{cfg.where(dotted)}: key '{dotted}'")
    if not path.is_file():
        raise ConfigError(f"key '{dotted}': file {SOURCE_DIR}/{rel} does not exist",
                          where=cfg.where(dotted), hint="create it (pinned versions) or fix the path")
    return path


def read_checked(cfg: EnvConfig, name: str, tree: SourceTree | None = None) -> bytes:
    """The layer's requirements, read once through the lambda_src guard and checked line by line."""
    tree = tree or SourceTree(cfg.root / SOURCE_DIR)
    dotted = f"layers.{name}.requirements"
    return read_requirements(cfg, requirements_path(cfg, name, tree), tree=tree,
                             key=f"{cfg.where(dotted)}: key '{dotted}'")


def used_by(cfg: EnvConfig, functions: Sequence[str]) -> list[str]:
    """The layers the given functions list, in [layers] order."""
    wanted = {n for fn in functions for n in cfg.functions[fn].get("layers", [])}
    return [n for n in cfg.layers if n in wanted]


def input_hash(cfg: EnvConfig, req: Path, epoch: int, data: bytes | None = None, pyc: str = "none") -> str:
    """``pyc``: :attr:`bytecode.Choice.key` (which interpreter compiled the bytecode, or "none")."""
    platforms, pyver = zipbuild.platform(cfg)
    h = hashlib.sha256()
    settings = {"recipe": RECIPE_VERSION, "format": zipbuild.FORMAT_VERSION, "level": zipbuild.COMPRESS_LEVEL,
                "epoch": epoch, "platforms": platforms, "python": pyver, "prefix": PREFIX,
                "zlib": zipbuild.zlib_version(), "bytecode": pyc}
    h.update(json.dumps(settings, sort_keys=True).encode() + b"\n")
    h.update(hashlib.sha256(req.read_bytes() if data is None else data).hexdigest().encode() + b"\n")
    return h.hexdigest()


def provided(entries: Sequence[Entry]) -> list[str]:
    """Top-level names (packages, modules, dist-info dirs) a layer puts on the import path."""
    return sorted({e.arcname.split("/", 2)[1] for e in entries if e.arcname.count("/") >= 1} - {"__pycache__"})


def build_layer(cfg: EnvConfig, name: str, out: Path, cache: Path, epoch: int, *, req: bytes | None = None,
                pyc: bytecode.Choice | None = None) -> Artifact:
    """Build (or take from the cache) the zip of layer ``name``; ``out/layers/<name>.zip``.
    ``req``: the requirements' bytes already read by :func:`read_checked` (else read here).
    ``pyc``: the runtime's bytecode compiler (else looked up; none: the zip ships no .pyc)."""
    path = requirements_path(cfg, name)
    data = read_checked(cfg, name) if req is None else req
    pyc = pyc or bytecode.find(cfg)
    key = input_hash(cfg, path, epoch, data, pyc.key)
    cached_zip = cache / CACHE_SUBDIR / f"{key}.zip"
    meta_path = cached_zip.with_suffix(".json")
    meta = zipbuild.read_meta(meta_path)
    cached = bool(meta and "provides" in meta and zipbuild.cached_zip_ok(cached_zip, meta))
    if not cached:
        tree = install_requirements(cfg, path, cache, data=data)
        entries = [Entry(f"{PREFIX}/{e.arcname}", e.source, e.executable) for e in tree_entries(tree)]
        if not entries:
            raise ConfigError(f"layer '{name}' installs nothing", where=str(path.relative_to(cfg.root)),
                              hint="list at least one pinned requirement")
        if pyc.interpreter is not None:
            entries += bytecode.compile_entries(entries, pyc.interpreter, bytecode.LAYER_ROOT)
        zipbuild.write_zip(entries, cached_zip, epoch)
        sha_hex, sha_b64, size = zipbuild.digest_file(cached_zip)
        meta = {"sha256": sha_hex, "code_sha256": sha_b64, "size": size, "files": len(entries),
                "provides": provided(entries)}
        atomic_write(meta_path, json.dumps(meta, sort_keys=True))
    assert meta is not None
    dest = out / CACHE_SUBDIR / f"{name}.zip"
    zipbuild.place(cached_zip, dest)
    return Artifact(function=name, path=dest, sha256=meta["sha256"], code_sha256=meta["code_sha256"],
                    size=meta["size"], files=meta["files"], input_hash=key, cached=cached, kind="layer",
                    provides=list(meta["provides"]))
