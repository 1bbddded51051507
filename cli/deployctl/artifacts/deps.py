"""Pinned requirements installed by pip into cached trees, for function zips, layer zips and
``deployctl local``'s layers.

pip runs through :mod:`deployctl.runner` (``--only-binary=:all:``, ``--no-compile``) on a checked
copy of the requirements file: the bytes were read through :class:`~deployctl.artifacts.srctree.SourceTree`
and passed :func:`~deployctl.artifacts.srctree.check_requirements` (pinned requirements and
``--hash`` only), so pip reads no other file and the tree's key covers exactly what pip installed.

Public API: :func:`install_requirements` (the Lambda platform, cached under
``.deployctl/cache/deps/<key>``), :func:`pip_install_tree` (the installer itself, also used by
:mod:`deployctl.local.layers`), :func:`tree_entries` (an installed tree as zip entries).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import sys
from pathlib import Path

from deployctl import fsutil, runner
from deployctl.artifacts import zipbuild
from deployctl.artifacts.srctree import SOURCE_DIR, SourceTree, check_requirements
from deployctl.artifacts.zipbuild import Entry, excluded, executable
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, OperationFailed


def read_requirements(cfg: EnvConfig, req: Path, *, key: str | None = None, tree: SourceTree | None = None) -> bytes:
    """The checked bytes of a requirements file under lambda_src/ (links must stay inside it; only
    pinned requirements and --hash options)."""
    tree = tree or SourceTree(cfg.root / SOURCE_DIR)
    data = tree.read(req, key=key).data
    check_requirements(data, key or tree.rel(req), tree.rel(req) if key else None)
    return data


def deps_key(cfg: EnvConfig, data: bytes) -> str:
    platforms, pyver = zipbuild.platform(cfg)
    h = hashlib.sha256()
    h.update(f"deployctl-deps/{zipbuild.FORMAT_VERSION}\n{','.join(platforms)}\ncp{pyver}\n".encode())
    h.update(data)
    return h.hexdigest()


def install_requirements(cfg: EnvConfig, req: Path, cache: Path, *, data: bytes | None = None) -> Path:
    """Install ``req`` for the Lambda platform into a cached tree; returns the tree."""
    data = read_requirements(cfg, req) if data is None else data
    key = deps_key(cfg, data)
    platforms, pyver = zipbuild.platform(cfg)
    platform_args = [arg for plat in platforms for arg in ("--platform", plat)]
    platform_args += ["--implementation", "cp", "--python-version", pyver]
    return pip_install_tree(
        cfg, req, cache / "deps" / key, staging_dir=_mkdir(cache / "tmp"), pip_args=platform_args, marker_text=key,
        clean=True, failure="pip could not install the requirements",
        hint="pin versions that publish manylinux wheels for the Lambda platform; --debug shows pip's output",
        data=data,
    )


def pip_install_tree(cfg: EnvConfig, req: Path, tree: Path, *, staging_dir: Path, pip_args: list[str],
                     marker_text: str, clean: bool, failure: str, hint: str, data: bytes | None = None) -> Path:
    """``pip install --target`` of ``req`` (binary wheels only, no bytecode) into ``tree``, atomically.

    pip reads a copy of the checked bytes (``data``, else ``req`` read through the lambda_src guard),
    never ``req`` itself. Built in a staging dir beside the cache and moved into place with its
    ``.complete`` marker; a tree that already has the marker is reused (and a concurrent build that
    wins the race is as good as ours).
    """

    def install(target: Path) -> None:
        copy = target.parent / "requirements.txt"
        copy.write_bytes(read_requirements(cfg, req) if data is None else data)
        argv = [sys.executable, "-m", "pip", "install", "--requirement", str(copy), "--target", str(target), *pip_args,
                "--only-binary=:all:", "--no-compile", "--disable-pip-version-check", "--no-input", "--quiet"]
        result = runner.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_COMPILE": "1"})
        if not result.ok:
            last = next((ln for ln in reversed(result.stderr.splitlines()) if ln.strip()), "no output")
            last = last.strip().replace(str(copy), str(req.relative_to(cfg.root)))
            raise OperationFailed(f"{failure}: {last}", where=str(req.relative_to(cfg.root)), hint=hint)
        if clean:
            clean_tree(target)

    return fsutil.build_tree(tree, install, marker=marker_text + "\n", prefix="deps-", staging_dir=staging_dir)


def clean_tree(target: Path) -> None:
    """Drop scripts, caches and install metadata that embed paths; normalise RECORD files."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for dist_info in target.glob("*.dist-info"):
        for name in ("direct_url.json",):
            (dist_info / name).unlink(missing_ok=True)
    for record in target.glob("*.dist-info/RECORD"):
        record.write_bytes(normalise_record(record.read_text(encoding="utf-8"), target))


def normalise_record(text: str, target: Path) -> bytes:
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        name = row[0].replace("\\", "/")
        rel = Path(name)
        if name.startswith("/") or ".." in rel.parts or excluded(rel) or rel.name == "direct_url.json":
            continue
        if not (target / rel).exists():
            continue
        rows.append([name, *row[1:]])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(sorted(rows))
    return out.getvalue().encode()


def tree_entries(tree: Path) -> list[Entry]:
    """The files of an installed tree as zip entries. pip makes no symlinks; one that leaves the
    tree (planted in the cache) is refused rather than followed."""
    entries = []
    real_tree = Path(os.path.realpath(tree))
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        for name in [*filenames, *dirnames]:
            if (here / name).is_symlink() and not Path(os.path.realpath(here / name)).is_relative_to(real_tree):
                raise ConfigError(f"{here / name} is a symlink to {os.path.realpath(here / name)}, outside the "
                                  "installed tree", hint="delete .deployctl/cache and re-run (pip makes no links)")
        dirnames[:] = sorted(d for d in dirnames if d not in zipbuild.EXCLUDED_DIRS)
        for name in filenames:
            path = here / name
            rel = path.relative_to(tree)
            if name == ".complete" and len(rel.parts) == 1 or excluded(rel) or path.is_symlink() and not path.exists():
                continue
            entries.append(Entry(rel.as_posix(), path, executable(path)))
    return entries


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
