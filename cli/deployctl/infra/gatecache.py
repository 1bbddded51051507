"""The policy gates' verdict cache: checkov's raw findings, stored under a digest of what was judged.

Both gates (the source scan and the plan scan, :mod:`deployctl.infra.gate`) use it. An entry is one
JSON file in the env's work dir (``<work_dir>/cache/checkov-<kind>-<name>.json``) and holds only
findings (check ids, resource addresses, files and lines, skip reasons): never a value from a plan.

What is on disk beside a plan bundle is no more trustworthy than the bundle: a pull request can
commit a file under the git-ignored ``.deployctl/`` (gitignore does not stop a committed file),
and whoever can write the work dir can write the cache. So every entry is authenticated with an
HMAC-SHA256 under a per-user key that lives outside every checkout
(``$XDG_CACHE_HOME/deployctl/gate-cache.key``, else ``~/.cache/deployctl/gate-cache.key``; 0600,
made on first use). The MAC covers the entry's kind, its digest and its findings, so neither a
planted entry nor a genuine one copied under another digest is believed, and a fresh CI runner
(a new key) trusts nothing it finds in a checkout. File names are keyed too: without the key one
cannot even tell which digest an entry is for.

Anything wrong with an entry (absent, damaged, not a regular file, a symlink, not ours, too big,
another format, a MAC that does not match) is a miss: checkov runs again. Anything wrong with the
key or the cache dir (unwritable, a symlink, not ours) turns the cache off, never the gate.
Writes are atomic and owner-only; each kind keeps its :data:`KEEP` newest entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path

from deployctl.fsutil import atomic_write

FORMAT = "deployctl-gate-cache"
VERSION = 1
KEEP = 8  # entries per kind (source, plan): a few envs' or branches' worth
MAX_BYTES = 64 * 1024 * 1024
KEY_FILE = "gate-cache.key"
KEY_BYTES = 32
_PREFIX = "checkov-"
KINDS = ("source", "plan")


def user_key_path() -> Path:
    """``$XDG_CACHE_HOME/deployctl/gate-cache.key`` (an absolute XDG_CACHE_HOME only), else ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "deployctl" / KEY_FILE


def _owned_private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _read_key(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or not _owned_private(st) or st.st_size != KEY_BYTES:
            return None
        data = fh.read(KEY_BYTES + 1)
    return data if len(data) == KEY_BYTES else None


def user_key() -> bytes | None:
    """The per-user MAC key, made on first use; None (the cache is off) when it cannot be had safely:
    a key file that is a symlink, not ours, readable by others, or the wrong size is never used."""
    path = user_key_path()
    key = _read_key(path)
    if key is not None or path.exists() or path.is_symlink():
        return key
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            with contextlib.suppress(FileExistsError):  # another process made one first: use that one
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    return _read_key(path)


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class GateCache:
    """Entries of one cache directory, authenticated with ``key`` (see the module doc)."""

    def __init__(self, directory: Path, key: bytes):
        self.directory = directory
        self._key = key

    @classmethod
    def open(cls, directory: Path | None) -> GateCache | None:
        """The cache in ``directory``; None (no caching) without a directory or a usable user key."""
        if directory is None:
            return None
        key = user_key()
        return cls(directory, key) if key is not None else None

    def _mac(self, body: dict) -> str:
        return hmac.new(self._key, _canonical(body), hashlib.sha256).hexdigest()

    def path(self, kind: str, digest: str) -> Path:
        name = hmac.new(self._key, f"name\0{kind}\0{digest}".encode(), hashlib.sha256).hexdigest()[:40]
        return self.directory / f"{_PREFIX}{kind}-{name}.json"

    def _dir_ok(self) -> bool:
        try:
            st = os.lstat(self.directory)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()

    def get(self, kind: str, digest: str) -> dict | None:
        """The payload stored for (kind, digest), or None: every doubt is a miss."""
        if not self._dir_ok():
            return None
        try:
            fd = os.open(self.path(kind, digest), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > MAX_BYTES:
                    return None
                entry = json.loads(fh.read(MAX_BYTES + 1))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict):
            return None
        mac = entry.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, self._mac(entry)):
            return None
        if entry.get("format") != FORMAT or entry.get("version") != VERSION or entry.get("kind") != kind \
                or entry.get("digest") != digest:
            return None
        return {k: v for k, v in entry.items() if k not in {"format", "version", "kind", "digest"}}

    def put(self, kind: str, digest: str, payload: dict) -> None:
        """Store ``payload`` (JSON: findings only) for (kind, digest); a failure to write is not an error."""
        body = {**payload, "format": FORMAT, "version": VERSION, "kind": kind, "digest": digest}
        text = json.dumps({**body, "mac": self._mac(body)}, indent=1, sort_keys=True)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self._dir_ok():
                return  # a symlink, or someone else's: never write through it
            target = self.path(kind, digest)
            atomic_write(target, text, mode=0o600)
            self._prune(kind, keep=target)
        except OSError:
            return

    def _prune(self, kind: str, keep: Path) -> None:
        """Keep the :data:`KEEP` newest entries of ``kind``; entries of an older format go."""
        entries = []
        for p in self.directory.glob(f"{_PREFIX}*.json"):
            if not p.name.startswith(tuple(f"{_PREFIX}{k}-" for k in KINDS)):
                p.unlink(missing_ok=True)  # the unauthenticated format before this one
            elif p.name.startswith(f"{_PREFIX}{kind}-") and p != keep:
                with contextlib.suppress(OSError):
                    entries.append((os.lstat(p).st_mtime_ns, p))
        entries.sort(reverse=True)
        for _, p in entries[KEEP - 1:]:
            p.unlink(missing_ok=True)
