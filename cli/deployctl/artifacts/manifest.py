"""The artifact manifest: which code each environment runs.

``terraform/envs/<env>/artifacts.json`` (committable, like a lockfile)::

    {"schema": 1, "env": "dev", "functions": {"<fn>": {"bucket": ..., "key": "lambda/<fn>/<sha>.zip",
     "version_id": ..., "sha256": "<hex>", "code_sha256": "<base64>", "size": N, "published_at": "<ISO UTC>"}},
     "layers": {"<layer>": {same keys, "key": "layers/<layer>/<sha>.zip"}}}

``layers`` is absent from manifests written before layers existed (read as empty).

Every entry is validated on load (one line naming the file and the dotted key): the key must
be the content-addressed form the publisher writes (``lambda/<fn>/<sha256>.zip``), ``sha256``
64 lowercase hex digits, ``code_sha256`` the base64 of the same digest, ``version_id`` an S3
version id, ``size`` a non-negative integer, ``published_at`` an ISO UTC time. An entry may
carry further fields (an SBOM, a provenance record, ...): a field registered in
:data:`OPTIONAL_ENTRY_FIELDS` is validated by its checker, any other field whose name is a plain
identifier is kept and ignored (render passes only the S3 location on). ``deployctl render``
also refuses an entry whose bucket is not the env's artifact bucket (:func:`check_bucket`).

Optional per entry (written by publish-lambda since the supply-chain documents, see
:mod:`deployctl.artifacts.attest`): ``sbom`` and ``provenance`` (each ``{"key", "version_id",
"sha256"}`` of the document beside the zip) and ``source`` (``{"repository", "commit", "path",
"dirty", "source_date_epoch"}``: what ``deployctl verify`` rebuilds from).

Written by ``deployctl publish-lambda`` (atomically: temp file, fsync, rename),
read by ``deployctl render`` to fill ``s3_key``/``s3_object_version``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deployctl import naming
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, OperationFailed, Refused
from deployctl.fsutil import write_temp
from deployctl.limits import bucket_problem

SCHEMA_VERSION = 1
FILENAME = "artifacts.json"
LOCK_FILE = "publish.lock"
ENTRY_KEYS = ("bucket", "key", "version_id", "sha256", "code_sha256", "size", "published_at")
FIX = "restore it from git or re-run deployctl publish-lambda"

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# S3 version ids are opaque, URL-safe strings (at most 1024 characters here); "null" is what S3
# returns for an unversioned object, never what publish-lambda records.
VERSION_ID = re.compile(r"[A-Za-z0-9._+=/-]{1,1024}")
PUBLISHED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
ENTRY_NAME = re.compile(r"[a-z][a-z0-9-]{0,139}")
EXTRA_FIELD = re.compile(r"[a-z][a-z0-9_]{0,63}")

# Optional per-entry fields other parts of deployctl add (e.g. "sbom", "provenance"): name ->
# checker returning None when the value is well-formed, else what was expected. Register a
# checker here when adding such a field; unregistered extra fields are accepted and ignored.
OPTIONAL_ENTRY_FIELDS: dict[str, Callable[[Any], str | None]] = {}


def _doc_ref(value: Any) -> str | None:
    if not isinstance(value, dict) or set(value) != {"key", "version_id", "sha256"}:
        return 'an object {"key", "version_id", "sha256"}'
    if not isinstance(value["key"], str) or not value["key"] or len(value["key"]) > 1024:
        return "a non-empty S3 key"
    if not isinstance(value["version_id"], str) or not VERSION_ID.fullmatch(value["version_id"]) \
            or value["version_id"] == "null":
        return "an S3 version id"
    if not isinstance(value["sha256"], str) or not SHA256_HEX.fullmatch(value["sha256"]):
        return "64 lowercase hex digits in sha256"
    return None


def _source(value: Any) -> str | None:
    keys = {"repository", "commit", "path", "dirty", "source_date_epoch"}
    if not isinstance(value, dict) or not set(value) <= keys:
        return "an object with keys from " + ", ".join(sorted(keys))
    commit = value.get("commit")
    # "" (or null): built outside a git checkout; verify reports such an entry unverifiable
    if commit not in (None, "") and not (isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit)):
        return "a full git commit id (40 or 64 hex digits), or \"\" outside git, in commit"
    if "dirty" in value and not isinstance(value["dirty"], bool):
        return "true or false in dirty"
    return None


OPTIONAL_ENTRY_FIELDS.update({"sbom": _doc_ref, "provenance": _doc_ref, "source": _source})
OPTIONAL_ENTRY_KEYS = tuple(OPTIONAL_ENTRY_FIELDS)  # written by publish-lambda (see the module docstring)


def manifest_path(cfg: EnvConfig) -> Path:
    return cfg.env_dir / FILENAME


def empty_manifest(cfg: EnvConfig) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "env": cfg.name, "functions": {}, "layers": {}}


def load_manifest(cfg: EnvConfig) -> dict[str, Any]:
    """The env's manifest; an empty ``functions`` map if the file does not exist yet."""
    path = manifest_path(cfg)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_manifest(cfg)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 JSON (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                          where=str(path), hint=FIX) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not the artifact manifest", where=str(path), hint=FIX) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the artifact manifest: {exc.strerror or exc}", where=str(path),
                          hint="check the file's permissions") from None
    try:
        data = json.loads(text, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", where=str(path), hint=FIX) from None
    bad = _find_non_finite(data, "")
    if bad is not None:  # NaN / Infinity: Python's json reads them, JSON and Terraform do not
        raise ConfigError(f"key '{bad[0]}': expected a JSON value, found {bad[1]} (not a JSON number)",
                          where=str(path), hint=FIX)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or not isinstance(data.get("functions"), dict):
        raise ConfigError(f"not an artifact manifest of schema {SCHEMA_VERSION}", where=str(path), hint=FIX)
    if data.get("env") != cfg.name:
        raise ConfigError(f"manifest is for env {data.get('env')!r}, not {cfg.name!r}", where=str(path))
    layers = data.setdefault("layers", {})
    if not isinstance(layers, dict):
        raise ConfigError("'layers' is not a map of layer entries", where=str(path), hint=FIX)
    for section, kind in (("functions", "function"), ("layers", "layer")):
        for name, entry in data[section].items():
            missing = [k for k in ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise ConfigError(f"{kind} {name!r} lacks {', '.join(missing)}", where=str(path),
                                  hint="re-run deployctl publish-lambda")
            _check_entry(path, section, name, entry)
    return data


class _NonFinite(str):
    """What json.loads makes of NaN, Infinity and -Infinity here (reported with its key)."""


def _find_non_finite(node: Any, dotted: str) -> tuple[str, str] | None:
    if isinstance(node, _NonFinite):
        return dotted, str(node)
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found = _find_non_finite(child, f"{dotted}[{key}]" if isinstance(key, int) else
                                 f"{dotted}.{key}" if dotted else str(key))
        if found:
            return found
    return None


def _check_entry(path: Path, section: str, name: str, entry: dict[str, Any]) -> None:
    """Each field's shape; the S3 key must be the content-addressed one of this entry's digest."""
    def bad(field: str, expected: str) -> ConfigError:
        found = entry.get(field) if field else name
        shown = repr(found) if not isinstance(found, str) or len(found) <= 80 else repr(found[:77] + "...")
        dotted = f"{section}.{name}" + (f".{field}" if field else "")
        return ConfigError(f"key '{dotted}': expected {expected}, found {shown}", where=str(path), hint=FIX)

    if not ENTRY_NAME.fullmatch(name):
        raise bad("", "a function or layer name")
    bucket = entry["bucket"]
    if not isinstance(bucket, str) or bucket_problem(bucket):
        raise bad("bucket", "an S3 bucket name")
    sha = entry["sha256"]
    if not isinstance(sha, str) or not SHA256_HEX.fullmatch(sha):
        raise bad("sha256", "64 lowercase hex digits")
    key = naming.artifact_key(name, sha) if section == "functions" else naming.layer_key(name, sha)
    if entry["key"] != key:
        raise bad("key", f"the content-addressed key of this entry, {key!r}")
    code = entry["code_sha256"]
    try:
        decoded = base64.b64decode(code, validate=True) if isinstance(code, str) else None
    except (binascii.Error, ValueError):
        decoded = None
    if decoded != bytes.fromhex(sha):
        raise bad("code_sha256", "the base64 of the sha256 digest")
    version = entry["version_id"]
    if not isinstance(version, str) or version == "null" or not VERSION_ID.fullmatch(version):
        raise bad("version_id", "an S3 object version id")
    size = entry["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad("size", "a byte count (an integer >= 0)")
    stamp = entry["published_at"]
    if not isinstance(stamp, str) or not PUBLISHED_AT.fullmatch(stamp):
        raise bad("published_at", "an ISO 8601 UTC time like '2024-05-01T12:00:00Z'")
    for field, value in entry.items():
        if field in ENTRY_KEYS:
            continue
        if not EXTRA_FIELD.fullmatch(field):
            raise bad("", f"entry fields named like identifiers, not {field!r}")
        checker = OPTIONAL_ENTRY_FIELDS.get(field)
        problem = checker(value) if checker else None
        if problem:
            raise bad(field, problem)


def check_bucket(cfg: EnvConfig, section: str, name: str, entry: dict[str, Any]) -> None:
    """Refuse an entry whose bucket is not the env's artifact bucket (render would point the
    functions at code in a bucket the env does not own)."""
    expected = cfg.artifact_bucket()
    if entry.get("bucket") != expected:
        raise ConfigError(
            f"key '{section}.{name}.bucket': expected the env's artifact bucket {expected!r}, "
            f"found {entry.get('bucket')!r}",
            where=str(manifest_path(cfg)),
            hint=f"re-run deployctl publish-lambda --env {cfg.name} (it uploads to {expected})",
        )


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
