"""One deployctl at a time per environment: an exclusive lock on ``.deployctl/<env>/lock``.

``plan``, ``apply``, ``destroy`` and ``up`` hold it for their whole run. A second one on the
same env fails at once (never waits) with one line naming the holder: its pid, host, command
and start time, read from the holder record the lock file carries.

The lock is ``fcntl.flock`` on that file, so the kernel releases it when the holder exits,
however it exits (an exception, Ctrl-C, a kill): a record left behind by a dead process
is stale by construction, and the next run takes the lock over and says so. Within one
process the lock is re-entrant (``destroy`` and ``up`` run plan and apply under one hold).
The lock file descriptor is not inherited by terraform or checkov.

What it does not cover: two hosts sharing a work dir over a network file system whose
``flock`` is not coherent, and terraform's own state, which terraform's state lock guards.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from deployctl.errors import OperationFailed

LOCK_NAME = "lock"
_RECORD_MAX = 4096

# path -> [fd, depth]: this process's holds (re-entrant)
_held: dict[str, list[int]] = {}


def _record(operation: str) -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "operation": operation,
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:6])),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def read_holder(path: Path) -> dict | None:
    """The holder record in a lock file (None if absent or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        raw = os.read(fd, _RECORD_MAX)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(holder: dict | None) -> str:
    """``deployctl apply (pid 123 on host h, since 2026-01-01T00:00:00+00:00)``, printable on one line."""
    if not holder:
        return "another deployctl (its holder record is not written yet)"

    def clean(value: object) -> str:
        return "".join(c if c.isprintable() else "?" for c in str(value))[:120]

    op = clean(holder.get("operation") or "?")
    return (f"deployctl {op} (pid {clean(holder.get('pid', '?'))} on host {clean(holder.get('host', '?'))}, "
            f"since {clean(holder.get('started', '?'))})")


@contextlib.contextmanager
def hold(work_dir: Path, operation: str, *, env: str, ui=None) -> Iterator[dict]:
    """Hold the env's lock for the ``with`` block; OperationFailed at once if another process has it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_NAME
    key = str(path.resolve())
    mine = _held.get(key)
    if mine is not None:  # re-entrant: destroy/up run plan and apply under one hold
        mine[1] += 1
        try:
            yield {"pid": os.getpid(), "operation": operation, "reentrant": True}
        finally:
            mine[1] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise OperationFailed(f"cannot open the environment lock: {exc.strerror}", where=str(path),
                              hint="the work dir must be a writable directory and the lock a regular file") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OperationFailed(f"cannot take the environment lock: {exc.strerror}", where=str(path)) from None
        raise OperationFailed(
            f"environment {env} is in use by {describe(read_holder(path))}",
            where=str(path),
            hint=f"nothing was done; re-run {operation} once it has finished: the lock is released when that process exits",
        ) from None
    try:
        previous = read_holder(path)
        record = _record(operation)
        data = json.dumps(record, sort_keys=True).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        if previous and ui is not None:
            # a release empties the record: one still there was left by a process that died
            ui.info(f"took over the stale lock left by {describe(previous)}: that process is gone")
        _held[key] = [fd, 1]
        try:
            yield record
        finally:
            del _held[key]
            # an empty record means "released"; the lock itself goes with the fd
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)
