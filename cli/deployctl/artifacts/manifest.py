"""The artifact manifest: which code each environment runs.

``terraform/envs/<env>/artifacts.json`` (committable, like a lockfile)::

    {"schema": 1, "env": "dev", "functions": {"<fn>": {"bucket": ..., "key": "lambda/<fn>/<sha>.zip",
     "version_id": ..., "sha256": "<hex>", "code_sha256": "<base64>", "size": N, "published_at": "<ISO UTC>"}},
     "layers": {"<layer>": {same keys, "key": "layers/<layer>/<sha>.zip"}}}

``layers`` is absent from manifests written before layers existed (read as empty).

Optional per entry (written by publish-lambda since the supply-chain documents, see
:mod:`deployctl.artifacts.attest`): ``sbom`` and ``provenance`` (each ``{"key", "version_id",
"sha256"}`` of the document beside the zip) and ``source`` (``{"repository", "commit", "path",
"dirty", "source_date_epoch"}``: what ``deployctl verify`` rebuilds from).

Written by ``deployctl publish-lambda`` (atomically: temp file, fsync, rename),
read by ``deployctl render`` to fill ``s3_key``/``s3_object_version``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, OperationFailed, Refused
from deployctl.fsutil import write_temp

SCHEMA_VERSION = 1
FILENAME = "artifacts.json"
LOCK_FILE = "publish.lock"
ENTRY_KEYS = ("bucket", "key", "version_id", "sha256", "code_sha256", "size", "published_at")
OPTIONAL_ENTRY_KEYS = ("sbom", "provenance", "source")  # see the module docstring


def manifest_path(cfg: EnvConfig) -> Path:
    return cfg.env_dir / FILENAME


def empty_manifest(cfg: EnvConfig) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "env": cfg.name, "functions": {}, "layers": {}}


def load_manifest(cfg: EnvConfig) -> dict[str, Any]:
    """The env's manifest; an empty ``functions`` map if the file does not exist yet."""
    path = manifest_path(cfg)
    fix = "restore it from git or re-run deployctl publish-lambda"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_manifest(cfg)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 JSON (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                          where=str(path), hint=fix) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not the artifact manifest", where=str(path), hint=fix) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the artifact manifest: {exc.strerror or exc}", where=str(path),
                          hint="check the file's permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", where=str(path), hint=fix) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or not isinstance(data.get("functions"), dict):
        raise ConfigError(f"not an artifact manifest of schema {SCHEMA_VERSION}", where=str(path), hint=fix)
    if data.get("env") != cfg.name:
        raise ConfigError(f"manifest is for env {data.get('env')!r}, not {cfg.name!r}", where=str(path))
    layers = data.setdefault("layers", {})
    if not isinstance(layers, dict):
        raise ConfigError("'layers' is not a map of layer entries", where=str(path),
                          hint="restore it from git or re-run deployctl publish-lambda")
    for kind, entries in (("function", data["functions"]), ("layer", layers)):
        for name, entry in entries.items():
            missing = [k for k in ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise ConfigError(f"{kind} {name!r} lacks {', '.join(missing)}", where=str(path),
                                  hint="re-run deployctl publish-lambda")
    return data


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_manifest(cfg: EnvConfig, data: dict[str, Any]) -> Path:
    """Write the manifest atomically (temp file in the same directory, fsync, rename)."""
    path = manifest_path(cfg)
    tmp = prepare(path, data)
    commit(tmp, path)
    return path


def prepare(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to a temp file beside ``path``; :func:`commit` renames it into place."""
    try:
        return write_temp(path, dumps(data))  # never leaves a half-written temp file behind
    except OSError as exc:
        raise OperationFailed(f"could not write the manifest: {exc.strerror}", where=str(path)) from exc


def commit(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise OperationFailed(f"could not write the manifest: {exc.strerror}", where=str(path)) from exc


def discard(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def locked(cfg: EnvConfig) -> Iterator[Path]:
    """Hold the env's publish lock (``<work_dir>/publish.lock``) for a read-modify-write of the manifest.

    Two publish-lambda runs for one env in one checkout would otherwise each write
    the manifest they read at the start, and the later one would drop the other's
    entries. The second run is refused (exit 4) instead; the lock goes with the process.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield manifest_path(cfg)
        return
    lock_path = cfg.work_dir / LOCK_FILE
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OperationFailed(f"could not open the publish lock: {exc.strerror}", where=str(lock_path)) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise Refused(
                f"another publish-lambda for env '{cfg.name}' is running (pid {holder})",
                where=str(lock_path),
                hint="wait for it to finish, then re-run; nothing was changed",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield manifest_path(cfg)
    finally:
        os.close(fd)  # releases the lock
