"""The deterministic zip writer and build cache that function zips and layer zips share.

One writer for every artifact: entries sorted, timestamps fixed (``SOURCE_DATE_EPOCH``, else
1980-01-01), permissions normalised (0644, or 0755 if the owner may execute the source), deflate
level fixed, no directory entries, no absolute paths. The artifact's identity is the SHA-256 of
the zip bytes.

Public API (used by :mod:`deployctl.artifacts.packaging`, :mod:`deployctl.artifacts.layers`,
:mod:`deployctl.artifacts.deps` and anything else that builds or reads an artifact):

* :class:`Entry` (one file of a zip: archive name, source path, executable bit, and optionally
  the bytes already read, which then are what the zip holds) and :class:`Artifact` (one built zip);
* :func:`write_zip`, :func:`source_date_epoch`, :func:`digest_file`, :func:`zlib_version`;
* the cache: :func:`cache_dir`, :func:`read_meta`, :func:`cached_zip_ok`, :func:`place`;
* the Lambda platform of an env: :data:`PLATFORMS`, :func:`platform`;
* the file filter of every tree that goes into a zip: :func:`excluded`, :func:`executable`.

This module imports no other artifact module: the imports point from packaging and layers to here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deployctl.config import EnvConfig
from deployctl.errors import ConfigError

FORMAT_VERSION = "1"
COMPRESS_LEVEL = 6
DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can store
EXCLUDED_DIRS = frozenset({"__pycache__", "tests", ".pytest_cache", ".mypy_cache"})
EXCLUDED_FILES = frozenset({".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}


@dataclass
class Artifact:
    """One built zip."""

    function: str
    path: Path
    sha256: str  # hex of the zip bytes: the artifact's identity
    code_sha256: str  # base64 of the same digest, as Lambda reports CodeSha256
    size: int
    files: int
    input_hash: str
    cached: bool
    kind: str = "function"  # or "layer" (then ``function`` holds the layer's name)
    provides: list[str] = field(default_factory=list)  # layers: top-level names under python/
    layers: list[str] = field(default_factory=list)  # functions: the layers attached (their content is left out)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        if self.kind == "layer":
            data["layer"] = data.pop("function")
            data.pop("layers")
        else:
            data.pop("provides")
        return data


@dataclass(frozen=True)
class Entry:
    """One file of a zip. ``data``, when set, is what the zip holds (the bytes a guard already read
    and checked); otherwise ``source`` is read when the zip is written."""

    arcname: str
    source: Path
    executable: bool
    data: bytes | None = field(default=None, repr=False, compare=False)

    def content(self) -> bytes:
        return self.data if self.data is not None else self.source.read_bytes()


# -- the files of a tree ------------------------------------------------------------------------


def excluded(rel: Path) -> bool:
    """Caches, bytecode and test directories never go into a zip."""
    return (
        any(part in EXCLUDED_DIRS for part in rel.parts[:-1])
        or rel.name in EXCLUDED_FILES
        or rel.name in EXCLUDED_DIRS
        or rel.suffix in EXCLUDED_SUFFIXES
    )


def executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o100)


# -- the Lambda platform ------------------------------------------------------------------------


def platform(cfg: EnvConfig) -> tuple[tuple[str, ...], str]:
    """The manylinux platform tags and the CPython version (``3.12``) of the env's Lambda runtime."""
    arch = cfg.get("lambda.architecture", "x86_64")
    runtime = cfg.get("lambda.runtime", "python3.12")
    return PLATFORMS[arch], runtime.removeprefix("python")


# -- zip ----------------------------------------------------------------------------------------


def source_date_epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_EPOCH
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH must be a Unix timestamp, found {raw!r}", where="SOURCE_DATE_EPOCH") from None
    return max(value, DEFAULT_EPOCH)


def write_zip(entries: Sequence[Entry], dest: Path, epoch: int) -> None:
    """Write a reproducible zip of ``entries`` to ``dest`` (via a temp file + rename)."""
    date_time = time.gmtime(epoch)[:6]
    names = [e.arcname for e in entries]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"two files would land at {', '.join(dupes)} in the zip",
                          hint="a requirement ships a module with the same name as one in lambda_src")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for entry in sorted(entries, key=lambda e: e.arcname):
                info = zipfile.ZipInfo(entry.arcname, date_time)
                info.create_system = 3  # unix, so external_attr carries the mode
                info.external_attr = (0o100755 if entry.executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, entry.content(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def zlib_version() -> str:
    import zlib

    return zlib.ZLIB_RUNTIME_VERSION


def digest_file(path: Path) -> tuple[str, str, int]:
    """(hex SHA-256, base64 SHA-256 as Lambda's CodeSha256, size) of a file."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), base64.b64encode(h.digest()).decode(), size


# -- the build cache ----------------------------------------------------------------------------


def cache_dir(cfg: EnvConfig) -> Path:
    return cfg.root / ".deployctl" / "cache"


def read_nofollow(path: Path) -> bytes:
    """The bytes of a regular file at ``path``, refusing a symlink in its last component: a cache
    entry is something deployctl wrote, and a link planted there must not make it read elsewhere."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return fh.read()


def read_meta(path: Path) -> dict | None:
    """A cache entry's metadata (sha256, code_sha256, size, files, ...), or None if absent or bad."""
    try:
        data = json.loads(read_nofollow(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and {"sha256", "code_sha256", "size", "files"} <= set(data) else None


def cached_zip_ok(cached: Path, meta: dict | None) -> bool:
    """The cached zip is there, is a regular file (not a link to anything else) and has the recorded size."""
    if not meta:
        return False
    try:
        st = os.lstat(cached)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == meta.get("size")


def place(cached: Path, dest: Path) -> None:
    """Put the cached zip at ``dest`` (hard link if possible, else a copy), atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and os.path.samefile(cached, dest):
        return
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(cached, tmp)
    except OSError:
        shutil.copyfile(cached, tmp)
        os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
