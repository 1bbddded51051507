"""The locked toolchain's bookkeeping: one place for what scripts/lock, scripts/setup and
tests/test_lock.py must agree on (which lock files exist, what each is resolved from, the
digest of pyproject.toml's dependency tables, how a lock's pins are read).

Standard library only: scripts/setup runs it with a fresh virtualenv's Python, before
anything is installed there.

    python scripts/lockfile.py inputs DIR           write each lock's resolver inputs into DIR;
                                                    print "PYTHON_VERSION DIGEST"
    python scripts/lockfile.py header LOCK          print LOCK's header (with the current digest)
    python scripts/lockfile.py pin LOCK NAME        print the version LOCK pins NAME at
    python scripts/lockfile.py build-tools LOCK     print LOCK's entries (with hashes) for the build tools:
                                                    [build-system] requires and [tool.deployctl.lock] build
    python scripts/lockfile.py extraneous KEEP LOCK...
        run with a virtualenv's Python: print (one a line) the distributions installed there that
        no LOCK pins at their installed version, except the names in KEEP (comma separated)
    python scripts/lockfile.py editable-current ROOT
        run with .venv's Python: exit 0 when deployctl is installed there editable from ROOT and
        its metadata is newer than ROOT/pyproject.toml (so re-installing it would change nothing)
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_DIR = ROOT / "requirements"

# Each lock file, what it is resolved from, and the resolver input files scripts/lock writes for it
# (their names show up in the locks' "# via" annotations, so they are named after their source).
# deployctl.txt is resolved with deployctl-test.txt as constraints: the same pins, a subset of them.
LOCKS = {
    "deployctl-test.txt": "[project] dependencies and every extra, plus the build tools ([build-system] "
    "requires, [tool.deployctl.lock] build: build-system.in): .venv after `scripts/setup --test`",
    "deployctl.txt": "[project] dependencies plus the build tools (build-system.in), at "
    "deployctl-test.txt's versions: .venv after `scripts/setup`",
    "checkov.txt": "[tool.deployctl.lock] checkov (checkov.in): .venv-checkov",
    "uv.txt": "[tool.deployctl.lock] uv (uv.in): the installer scripts/setup puts into .venv",
}
DIGEST_LINE = "# inputs-sha256: "
PYPROJECT_ROOT = "deployctl (pyproject.toml)"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*(.*?))?\s*\\?$")


def normalize(name: str) -> str:
    """PEP 503 name normalization (``boolean.py`` and ``Boolean_Py`` are ``boolean-py``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_pyproject(path: Path | None = None) -> dict:
    return tomllib.loads((path or ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def dependency_tables(pyproject: dict) -> dict:
    """Everything in pyproject.toml that the locks are resolved from, and nothing else."""
    project = pyproject.get("project", {})
    return {
        "build-system.requires": pyproject.get("build-system", {}).get("requires", []),
        "project.dependencies": project.get("dependencies", []),
        "project.optional-dependencies": project.get("optional-dependencies", {}),
        "project.requires-python": project.get("requires-python", ""),
        "tool.deployctl.lock": pyproject.get("tool", {}).get("deployctl", {}).get("lock", {}),
    }


def inputs_digest(pyproject: dict) -> str:
    canonical = json.dumps(dependency_tables(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def min_python(pyproject: dict) -> str:
    """The lowest Python the project supports (the universal resolution's floor)."""
    spec = pyproject["project"]["requires-python"]
    m = re.search(r">=\s*(\d+\.\d+)", spec)
    if not m:
        raise SystemExit(f"pyproject.toml: requires-python {spec!r} has no '>=X.Y' lower bound to lock for")
    return m.group(1)


def build_tools(pyproject: dict) -> list[str]:
    """What builds deployctl itself ([build-system] requires) and any locked release that ships no
    wheel ([tool.deployctl.lock] build): locked like the rest, so a build fetches nothing unlocked."""
    tables = dependency_tables(pyproject)
    return [*tables["build-system.requires"], *tables["tool.deployctl.lock"].get("build", [])]


def write_inputs(directory: Path, pyproject: dict) -> None:
    tables = dependency_tables(pyproject)
    lock = tables["tool.deployctl.lock"]
    for key in ("checkov", "uv"):
        if not lock.get(key):
            raise SystemExit(f"pyproject.toml: [tool.deployctl.lock] has no {key} = [...] requirement list")
    (directory / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "build-system.in").write_text("".join(f"{r}\n" for r in build_tools(pyproject)))
    (directory / "checkov.in").write_text("".join(f"{r}\n" for r in lock["checkov"]))
    (directory / "uv.in").write_text("".join(f"{r}\n" for r in lock["uv"]))


def header(lock_name: str, digest: str) -> str:
    return (
        f"# {lock_name}: locked by `bash scripts/lock` from pyproject.toml; do not edit by hand.\n"
        f"# From {LOCKS[lock_name]}.\n"
        "# Universal (any OS, every Python the project supports); scripts/setup installs it with\n"
        "# --require-hashes --no-deps. No index is named here: any index serving these files works.\n"
        f"{DIGEST_LINE}{digest}\n"
    )


@dataclass(frozen=True)
class Pin:
    name: str  # normalized
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    via: tuple[str, ...]  # the "# via" annotation: who asked for it


def read_lock(path: Path) -> tuple[str | None, list[Pin]]:
    """A lock's recorded digest and its pins, with their hashes and "# via" parents."""
    digest = None
    pins: list[Pin] = []
    current: dict | None = None

    def close():
        if current is not None:
            pins.append(Pin(current["name"], current["version"], current["marker"],
                            tuple(current["hashes"]), tuple(current["via"])))

    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if line.startswith(DIGEST_LINE):
            digest = line[len(DIGEST_LINE):].strip()
        elif m := _PIN.match(line):
            close()
            current = {"name": normalize(m.group(1)), "version": m.group(2), "marker": m.group(3) or None,
                       "hashes": [], "via": []}
        elif current is not None and stripped.startswith("--hash="):
            current["hashes"].append(stripped.removeprefix("--hash=").rstrip("\\ ").strip())
        elif current is not None and stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            if rest:
                current["via"].append(rest)
        elif current is not None and stripped.startswith("#   "):
            current["via"].append(stripped.removeprefix("#").strip())
    close()
    return digest, pins


def _extraneous(keep: set[str], locks: list[Path]) -> list[str]:
    from importlib.metadata import distributions

    pinned = {(p.name, p.version) for lock in locks for p in read_lock(lock)[1]}
    out = set()
    for dist in distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        name = normalize(name)
        if name not in keep and (name, dist.version) not in pinned:
            out.add(name)
    return sorted(out)


def _editable_current(root: Path) -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("deployctl")
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except (PackageNotFoundError, ValueError):
        return False
    if direct.get("url") != root.resolve().as_uri() or not direct.get("dir_info", {}).get("editable"):
        return False
    info = getattr(dist, "_path", None)  # the .dist-info folder (PathDistribution)
    if info is None:
        return False
    return Path(info).stat().st_mtime >= (root / "pyproject.toml").stat().st_mtime


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "inputs" and len(args) == 1:
        pyproject = load_pyproject()
        write_inputs(Path(args[0]), pyproject)
        print(min_python(pyproject), inputs_digest(pyproject))
    elif cmd == "header" and len(args) == 1:
        sys.stdout.write(header(args[0], inputs_digest(load_pyproject())))
    elif cmd == "pin" and len(args) == 2:
        versions = sorted({p.version for p in read_lock(Path(args[0]))[1] if p.name == normalize(args[1])})
        if not versions:
            print(f"{args[0]} pins no {args[1]}: run bash scripts/lock", file=sys.stderr)
            return 1
        print(versions[0])
    elif cmd == "build-tools" and len(args) == 1:
        wanted = {normalize(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in build_tools(load_pyproject())}
        for p in read_lock(Path(args[0]))[1]:
            if p.name in wanted:
                marker = f" ; {p.marker}" if p.marker else ""
                print(" \\\n".join([f"{p.name}=={p.version}{marker}", *(f"    --hash={h}" for h in p.hashes)]))
    elif cmd == "extraneous" and len(args) >= 2:
        keep = {normalize(n) for n in args[0].split(",") if n}
        print("\n".join(_extraneous(keep, [Path(a) for a in args[1:]])))
    elif cmd == "editable-current" and len(args) == 1:
        return 0 if _editable_current(Path(args[0])) else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
