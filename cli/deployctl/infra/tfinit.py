"""When ``terraform init`` can be skipped: a digest of everything init depends on.

After each successful init, :func:`init_digest` is recorded in the env's work dir; the next
run skips init only when the digest it computes then is the same. The digest covers:

- the init command line and the bytes of the ``-backend-config`` file (``backend.hcl``);
- ``.terraform.lock.hcl`` (as init left it: init may add hashes);
- every ``.tf`` / ``.tf.json`` file of the root and of every module directory init installed
  or resolved (``modules.json``): module calls, their sources and versions, ``terraform {}``
  blocks (backend, required_providers, required_version) and the resource types that imply
  providers all live there; any edit of those files means init again (correct before clever);
- the terraform binary (path, size, mtime, inode) and its version;
- the environment variables terraform reads its configuration from (``TF_*``: the CLI config
  file, and its bytes, the plugin cache, the data dir...; ``TF_LOG*`` excluded; ``TF_TOKEN_*``
  by name only), and the default CLI config file's bytes;
- what init wrote into the data dir (``.terraform/``): the backend record
  (``terraform.tfstate``), ``modules/modules.json``, the selected workspace, each by content
  AND by identity (inode, ctime): ``ctime`` cannot be set by a user, so a ``.terraform/``
  (and a record beside it) that arrived any other way than this init (a checkout, a PR that
  commits them, a copy, an edit in place) never matches and is initialised again. That is
  what keeps a stale or planted ``.terraform/`` from making plan use a backend or a module
  source the tree does not declare;
- the installed providers (paths, symlink targets, sizes): terraform itself checks them
  against the lock file's hashes on every plan.

Anything missing or unreadable makes the digest differ (init runs). Let Terraform decide
everything else.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from deployctl.fsutil import atomic_write

RECORD_VERSION = 1
CONFIG_SUFFIXES = (".tf", ".tf.json")
_VOLATILE_ENV = ("TF_LOG",)  # TF_LOG, TF_LOG_PATH, TF_LOG_CORE, TF_LOG_PROVIDER: logging only
_DATA_FILES = ("terraform.tfstate", "environment", "modules/modules.json")


def data_dir(workdir: Path, env: Mapping[str, str]) -> Path:
    """Terraform's data dir for ``workdir``: ``TF_DATA_DIR`` (relative to the workdir) or ``.terraform``."""
    return workdir / (env.get("TF_DATA_DIR") or ".terraform")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_state(path: Path, *, identity: bool) -> list:
    """Content digest (and, with ``identity``, inode and ctime) of one file; its absence is a state too."""
    try:
        st = os.stat(path)
        data = path.read_bytes()
    except OSError:
        return ["absent"]
    state = [_sha(data), st.st_size]
    if identity:
        state += [st.st_ino, st.st_dev, st.st_ctime_ns]
    return state


def _config_files(directory: Path) -> list:
    try:
        names = sorted(p.name for p in directory.iterdir() if p.name.endswith(CONFIG_SUFFIXES) and p.is_file())
    except OSError:
        return ["unreadable"]
    return [[name, _file_state(directory / name, identity=False)] for name in names]


def _module_dirs(workdir: Path, data: Path) -> list[str]:
    """The module directories init resolved (``Dir`` in modules.json, relative to the workdir), root first."""
    dirs = ["."]
    try:
        entries = json.loads((data / "modules" / "modules.json").read_bytes()).get("Modules") or []
    except (OSError, ValueError, AttributeError):
        return dirs
    for entry in entries:
        d = entry.get("Dir") if isinstance(entry, dict) else None
        if isinstance(d, str) and d and d not in dirs:
            dirs.append(d)
    return dirs[:1] + sorted(dirs[1:])


def _providers(data: Path) -> list:
    base = data / "providers"
    out = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(base))
            try:
                if p.is_symlink():
                    out.append([rel, "->", os.readlink(p)])
                elif p.is_file():
                    out.append([rel, p.stat().st_size])
            except OSError:
                out.append([rel, "unreadable"])
    return out


def _tf_env(env: Mapping[str, str]) -> dict:
    out = {}
    for key in sorted(env):
        if not key.startswith("TF_") or key.startswith(_VOLATILE_ENV):
            continue
        out[key] = "(set)" if key.startswith("TF_TOKEN_") else env[key]
    return out


def _cli_config(workdir: Path, env: Mapping[str, str]) -> list:
    configured = env.get("TF_CLI_CONFIG_FILE") or env.get("TERRAFORM_CONFIG")
    candidates = [Path(configured)] if configured else [Path(env.get("HOME") or "~").expanduser() / ".terraformrc"]
    return [[str(p), _file_state(p if p.is_absolute() else workdir / p, identity=False)] for p in candidates]


def init_digest(*, workdir: Path, argv: list[str], binary: str, version: str, env: Mapping[str, str],
                backend_config: Path | None) -> str | None:
    """The digest of what ``terraform init`` depends on in ``workdir``; None when the data dir is missing."""
    data = data_dir(workdir, env)
    if not data.is_dir():
        return None
    try:
        st = os.stat(binary)
        binary_state = [os.path.realpath(binary), st.st_size, st.st_mtime_ns, st.st_ino]
    except OSError:
        return None
    parts = {
        "record": RECORD_VERSION,
        "workdir": str(workdir.resolve()),
        "argv": list(argv),
        "binary": binary_state,
        "version": version,
        "env": _tf_env(env),
        "cli_config": _cli_config(workdir, env),
        "backend_config": _file_state(backend_config, identity=False) if backend_config else None,
        "lock": _file_state(workdir / ".terraform.lock.hcl", identity=False),
        "modules": {d: _config_files(workdir / d) for d in _module_dirs(workdir, data)},
        "data": {name: _file_state(data / name, identity=True) for name in _DATA_FILES},
        "providers": _providers(data),
    }
    return _sha(json.dumps(parts, sort_keys=True, default=str).encode())


def recorded(record: Path) -> str | None:
    try:
        doc = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != RECORD_VERSION or not isinstance(doc.get("digest"), str):
        return None
    return doc["digest"]


def save(record: Path, digest: str) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps({"version": RECORD_VERSION, "digest": digest}) + "\n")


def forget(record: Path) -> None:
    try:
        record.unlink()
    except FileNotFoundError:
        pass
