"""Atomic file writes: a temp file in the same directory, fsync, then a rename.

Readers see the old file or the new one, never half of either; a failed write
leaves no temp file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_temp(path: Path, data: str | bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to a new temp file beside ``path`` and return it (not yet in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, mode)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` atomically."""
    tmp = write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
