"""Keep the local build cache (``<root>/.deployctl/cache``) bounded.

Each build adds entries keyed by input hash: ``package/<hash>.zip`` + ``.json`` (function zips),
``layers/<hash>.zip`` + ``.json`` (layer zips) and ``deps/<key>/`` (pip trees). Nothing removed them,
so every edit left a zip behind. :func:`trim` keeps, per kind, the newest ``keep`` entries (by last
change; ``DEPLOYCTL_CACHE_KEEP``, default 50) and deletes older ones, except:

* the entries the current build used (``protect``: their input hashes);
* anything changed in the last hour: a concurrent build may be about to read it.

A trimmed entry only costs a rebuild. ``package`` runs it after every build; ``prune`` reports it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from deployctl.errors import ConfigError

DEFAULT_KEEP = 50
MIN_AGE_S = 3600
KINDS = ("package", "layers", "deps")


def keep_entries() -> int:
    raw = os.environ.get("DEPLOYCTL_CACHE_KEEP", "").strip()
    if not raw:
        return DEFAULT_KEEP
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"must be a whole number >= 1, found {raw!r}", where="DEPLOYCTL_CACHE_KEEP")
    return int(raw)


def _entries(kind_dir: Path) -> dict[str, list[Path]]:
    """Entry name (the input hash) -> its paths (zip + json, or one tree)."""
    out: dict[str, list[Path]] = {}
    for p in kind_dir.iterdir():
        if p.name.startswith("."):
            continue
        name = p.name if p.is_dir() and not p.is_symlink() else p.name.split(".", 1)[0]
        out.setdefault(name, []).append(p)
    return out


def _mtime(paths: list[Path]) -> float:
    return max((p.lstat().st_mtime for p in paths), default=0.0)


def trim(cache: Path, *, keep: int | None = None, protect: Iterable[str] = (), now: float | None = None,
         min_age_s: float = MIN_AGE_S) -> dict:
    """Delete the older entries beyond ``keep`` per kind; returns ``{"kept", "removed", "bytes_freed"}``."""
    keep = keep_entries() if keep is None else keep
    now = time.time() if now is None else now
    protected = set(protect)
    removed: list[str] = []
    kept = 0
    freed = 0
    for kind in KINDS:
        kind_dir = cache / kind
        if not kind_dir.is_dir() or kind_dir.is_symlink():
            continue
        entries = sorted(_entries(kind_dir).items(), key=lambda kv: _mtime(kv[1]), reverse=True)
        for i, (name, paths) in enumerate(entries):
            if i < keep or name in protected or now - _mtime(paths) < min_age_s:
                kept += 1
                continue
            for p in paths:
                freed += _size(p)
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
            removed.append(f"{kind}/{name}")
    return {"kept": kept, "removed": removed, "bytes_freed": freed, "keep": keep}


def _size(p: Path) -> int:
    if p.is_symlink() or not p.is_dir():
        try:
            return p.lstat().st_size
        except OSError:
            return 0
    return sum(f.lstat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
