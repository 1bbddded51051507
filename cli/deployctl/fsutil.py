"""Atomic file writes: a temp file in the same directory, fsync, then a rename.

Readers see the old file or the new one, never half of either; a failed write
leaves no temp file behind. Likewise whole trees (:func:`build_tree`): built in a
private staging dir, renamed into place in one step.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = ".complete"


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


def build_tree(dest: Path, fill: Callable[[Path], None], *, marker: str | None = None, prefix: str = "tree-",
               staging_dir: Path | None = None) -> Path:
    """``dest``, made once and reused: ``fill`` builds the tree in an empty directory of a private
    staging dir (beside ``dest``, or ``staging_dir`` on the same filesystem), which is then renamed to
    ``dest`` in one step; the staging dir is removed whatever happens.

    With ``marker``, the tree gets a :data:`MARKER` file of that text and that file says it is complete;
    without, ``dest``'s existence does (then it holds only what ``fill`` put there). A concurrent build
    that renames first wins: its tree is as good as ours."""

    def ready() -> bool:
        return (dest / MARKER).is_file() if marker is not None else dest.is_dir()

    if ready():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=staging_dir or dest.parent))
    try:
        tree = staging / "t"
        tree.mkdir()
        fill(tree)
        if marker is not None:
            (tree / MARKER).write_text(marker)
        try:
            os.replace(tree, dest)
        except OSError:
            if not ready():
                raise
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
