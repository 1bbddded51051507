"""What deployctl remembers about an env between runs: the last apply and the last drift check.

Both are small JSON files in the env's work dir (``.deployctl/<env>/``, git-ignored), written
atomically and read by ``deployctl status``:

    last-apply.json   {"at", "status", "commit", "dirty", "actor", "principal", "fingerprint", "destroy", "counts"}
    last-drift.json   {"at", "drift", "resources", "addresses"}

They are a local record (the machine that ran the apply or the drift check keeps them; a CI
runner's work dir goes with the runner). ``status`` therefore also reads what does not depend on
this machine: the state object's last modification in the state bucket. No value from a plan is
ever written here (addresses and counts only), so nothing secret lands in these files.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployctl import runner
from deployctl.config import EnvConfig
from deployctl.errors import DeployctlError
from deployctl.fsutil import atomic_write

APPLY_FILE = "last-apply.json"
DRIFT_FILE = "last-drift.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _path(cfg: EnvConfig, name: str) -> Path:
    return cfg.work_dir / name


def _write(cfg: EnvConfig, name: str, data: dict) -> Path:
    return atomic_write(_path(cfg, name), json.dumps(data, indent=1, sort_keys=True) + "\n")


def _read(cfg: EnvConfig, name: str) -> dict | None:
    """The record, or None when absent or unreadable (a damaged record is no record, never an error)."""
    try:
        data = json.loads(_path(cfg, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def git_commit(root: Path) -> tuple[str | None, bool | None]:
    """The checkout's HEAD commit and whether its tree has uncommitted changes (None, None outside git).

    In GitHub Actions ``GITHUB_SHA`` is the commit the workflow checked out.
    """
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"], None
    try:
        head = runner.run(["git", "rev-parse", "HEAD"], cwd=root, timeout=10)
    except DeployctlError:  # git missing or hanging: the record just has no commit
        return None, None
    if not head.ok:
        return None, None
    try:
        status = runner.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, timeout=30)
        dirty = bool(status.stdout.strip()) if status.ok else None
    except DeployctlError:
        dirty = None
    return head.stdout.strip() or None, dirty


def actor() -> str:
    """Who ran it: the GitHub actor in Actions, else the local user name."""
    if os.environ.get("GITHUB_ACTOR"):
        return f"github:{os.environ['GITHUB_ACTOR']}"
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def record_apply(cfg: EnvConfig, *, status: str, bundle_meta: dict, account: dict) -> dict:
    """Called by ``apply`` after terraform applied a bundle: when, which commit, by whom."""
    commit, dirty = git_commit(cfg.root)
    data = {
        "at": now_iso(),
        "status": status,
        "commit": commit,
        "dirty": dirty,
        "actor": actor(),
        "principal": account.get("arn") or None,
        "fingerprint": bundle_meta.get("fingerprint"),
        "destroy": bool(bundle_meta.get("destroy")),
        "foundation": bool(bundle_meta.get("foundation")),
        "counts": (bundle_meta.get("summary") or {}).get("counts"),
    }
    try:
        _write(cfg, APPLY_FILE, data)
    except OSError:  # the apply happened; failing to remember it must not turn it into an error
        pass
    return data


def last_apply(cfg: EnvConfig) -> dict | None:
    return _read(cfg, APPLY_FILE)


def record_drift(cfg: EnvConfig, resources: list[dict[str, Any]]) -> dict:
    data = {"at": now_iso(), "drift": bool(resources), "resources": len(resources),
            "addresses": [r["address"] for r in resources]}
    _write(cfg, DRIFT_FILE, data)
    return data


def last_drift(cfg: EnvConfig) -> dict | None:
    return _read(cfg, DRIFT_FILE)
