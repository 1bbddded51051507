"""Where an artifact's inputs came from: the git commit of the project, and a clean export of it.

Everything runs ``git`` through :mod:`deployctl.runner` (argument lists, never a shell).

* :func:`describe` answers, for the project checkout: the repository (``origin``'s URL with
  any credentials stripped), the commit (``HEAD``), the project's folder inside the repository
  and whether the build inputs differ from that commit (``dirty``). The build inputs are what
  :mod:`deployctl.artifacts.packaging` reads: ``lambda_src/`` and the env config
  (``terraform/envs/defaults.toml``, ``terraform/envs/<env>/env.toml``); files packaging never
  packs (``__pycache__``, ``*.pyc``, ``.DS_Store``) do not count.
* :func:`export` writes ``git archive`` of a commit (the project's folder only) into a fresh
  directory: the tree exactly as committed, never the working tree.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from deployctl import runner
from deployctl.artifacts import packaging
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed

COMMIT_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class Source:
    """The commit the build inputs came from; ``commit`` is empty outside a git checkout."""

    repository: str
    commit: str
    path: str  # the project's folder inside the repository ("" = its top)
    dirty: bool
    dirty_paths: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["dirty_paths"] = list(self.dirty_paths)
        return data

    def record(self, epoch: int) -> dict:
        """What the manifest keeps per entry (verify rebuilds from it)."""
        return {"repository": self.repository, "commit": self.commit, "path": self.path, "dirty": self.dirty,
                "source_date_epoch": epoch}


def _git(root: Path, *args: str) -> runner.Result:
    return runner.run(["git", "-C", str(root), *args], env={"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x`` (a token never lands in provenance)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url.strip())


def input_paths(cfg: EnvConfig) -> list[str]:
    """The build inputs, relative to the project root."""
    return [packaging.SOURCE_DIR, "terraform/envs/defaults.toml", f"terraform/envs/{cfg.name}/env.toml"]


def describe(cfg: EnvConfig) -> Source:
    """The project's commit and whether the build inputs differ from it (no git: commit "")."""
    root = cfg.root
    try:  # the usual case in one call: a checkout with a commit
        both = _git(root, "rev-parse", "--show-toplevel", "--show-prefix", "HEAD^{commit}")
    except Exception:  # noqa: BLE001 - git missing: not a checkout we can vouch for
        return Source(repository="", commit="", path="", dirty=True)
    lines = both.stdout.split("\n") if both.ok else []
    if len(lines) >= 3 and COMMIT_RE.match(lines[2].strip()):
        prefix, commit = lines[1].strip().rstrip("/"), lines[2].strip()
    else:  # not a checkout, or no commit yet: ask step by step
        top = _git(root, "rev-parse", "--show-toplevel")
        if not top.ok:
            return Source(repository="", commit="", path="", dirty=True)
        head = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
        if not head.ok:  # a repository without a commit yet
            return Source(repository="", commit="", path="", dirty=True)
        prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip().rstrip("/")
        commit = head.stdout.strip()
    remote = _git(root, "config", "--get", "remote.origin.url")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *input_paths(cfg))
    if not status.ok:
        raise OperationFailed(f"git status failed: {status.stderr.strip()[:300]}", where=str(root))
    dirty = []
    for item in status.stdout.split("\0"):
        if len(item) < 4:
            continue
        rel = PurePosixPath(item[3:])
        if any(p in packaging.EXCLUDED_DIRS for p in rel.parts[:-1]) or rel.name in packaging.EXCLUDED_FILES \
                or rel.suffix in packaging.EXCLUDED_SUFFIXES:
            continue
        dirty.append(str(rel))
    return Source(repository=strip_credentials(remote.stdout) if remote.ok else "", commit=commit,
                  path=prefix, dirty=bool(dirty), dirty_paths=tuple(sorted(dirty)))


def export(cfg: EnvConfig, commit: str, path: str, dest: Path) -> Path:
    """``git archive`` of ``commit`` (the project folder ``path`` of it) extracted into ``dest``.

    Returns the project root inside ``dest``. A commit this clone does not have is one line.
    """
    if not COMMIT_RE.match(commit or ""):
        raise OperationFailed(f"not a commit id: {commit!r}", hint="the manifest's source.commit must be a full hex id")
    have = _git(cfg.root, "cat-file", "-e", f"{commit}^{{commit}}")
    if not have.ok:
        raise OperationFailed(f"commit {commit[:12]} is not in this clone", where=str(cfg.root),
                              hint="fetch it (git fetch origin) or run verify in a full clone")
    spec = f"{commit}:{path}" if path else commit
    data = _archive_bytes(cfg.root, spec)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            tar.extractall(dest, filter="data")  # no absolute paths, no links out of dest, no devices
    except tarfile.TarError as exc:
        raise OperationFailed(f"commit {commit[:12]} cannot be exported safely: {exc}", where=str(cfg.root),
                              hint="its tree holds a link or path that leaves the project; it is not rebuilt") from None
    return dest


def _archive_bytes(root: Path, spec: str) -> bytes:
    """``git archive`` writes binary tar to stdout; the runner captures text, so it writes a file instead."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="deployctl-archive-") as tmp:
        out = Path(tmp) / "src.tar"
        res = runner.run(["git", "-C", str(root), "archive", "--format=tar", "-o", str(out), spec],
                         env={"LC_ALL": "C"})
        if not res.ok:
            raise OperationFailed(f"git archive {spec} failed: {res.stderr.strip()[:300]}", where=str(root))
        return out.read_bytes()
