"""The locked toolchain (requirements/*.txt, made by `bash scripts/lock`, installed by
`bash scripts/setup`): pyproject.toml and the locks agree, the locks name no index, and the
virtualenvs hold exactly the locks' pins. Offline: reads files and installed metadata only.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("lockfile", ROOT / "scripts/lockfile.py")
lockfile = importlib.util.module_from_spec(_spec)
sys.modules["lockfile"] = lockfile  # dataclasses look their module up there
_spec.loader.exec_module(lockfile)

REQ = ROOT / "requirements"
PYPROJECT = lockfile.load_pyproject(ROOT / "pyproject.toml")
TABLES = lockfile.dependency_tables(PYPROJECT)
FIX = "run `bash scripts/lock`, then `bash scripts/setup --test`"
# the one tool in the venvs that no lock pins: pip, from the venv's own Python (ensurepip)
UNLOCKED = {"pip"}


def _reqs(lines: list[str]) -> list[Requirement]:
    return [Requirement(line) for line in lines]


# lock file -> the requirements it must satisfy, and the "# via" roots uv names for them
INPUTS = {
    "deployctl-test.txt": (
        _reqs(TABLES["project.dependencies"]
              + [r for extra in TABLES["project.optional-dependencies"].values() for r in extra]
              + lockfile.build_tools(PYPROJECT)),
        {lockfile.PYPROJECT_ROOT, "-r build-system.in"},
    ),
    "deployctl.txt": (
        _reqs(TABLES["project.dependencies"] + lockfile.build_tools(PYPROJECT)),
        {lockfile.PYPROJECT_ROOT, "-r build-system.in"},
    ),
    "checkov.txt": (_reqs(TABLES["tool.deployctl.lock"]["checkov"]), {"-r checkov.in"}),
    "uv.txt": (_reqs(TABLES["tool.deployctl.lock"]["uv"]), {"-r uv.in"}),
}


def pins(name: str) -> list:
    return lockfile.read_lock(REQ / name)[1]


def test_every_lock_exists_and_none_is_stray():
    assert sorted(p.name for p in REQ.glob("*.txt")) == sorted(lockfile.LOCKS) == sorted(INPUTS)


@pytest.mark.parametrize("name", sorted(lockfile.LOCKS))
def test_lock_was_made_from_this_pyproject(name):
    """The recorded digest of pyproject.toml's dependency tables (dependencies, every extra,
    [build-system] requires, requires-python, [tool.deployctl.lock]) is today's: any edit to
    them without re-locking fails here."""
    recorded, _ = lockfile.read_lock(REQ / name)
    assert recorded == lockfile.inputs_digest(PYPROJECT), (
        f"requirements/{name} was locked from other pyproject.toml dependencies: {FIX}")


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_requirement_is_pinned_at_a_version_it_admits(name):
    requirements, _ = INPUTS[name]
    by_name: dict[str, list[str]] = {}
    for pin in pins(name):
        by_name.setdefault(pin.name, []).append(pin.version)
    assert requirements
    for req in requirements:
        versions = by_name.get(lockfile.normalize(req.name))
        assert versions, f"requirements/{name} does not pin {req.name} ({req}): {FIX}"
        bad = [v for v in versions if not req.specifier.contains(v, prereleases=True)]
        assert not bad, f"requirements/{name} pins {req.name}=={bad[0]}, which {req} excludes: {FIX}"


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_nothing_in_a_lock_is_stale(name):
    """Read from uv's "# via" annotations: the pins asked for directly are exactly pyproject's
    requirements, and every other pin is asked for by a pin of the same lock."""
    requirements, roots = INPUTS[name]
    locked = pins(name)
    names = {p.name for p in locked}
    direct = {p.name for p in locked if roots & set(p.via)}
    assert direct == {lockfile.normalize(r.name) for r in requirements}, (
        f"requirements/{name}'s direct pins differ from pyproject.toml's requirements: {FIX}")
    for pin in locked:
        parents = {lockfile.normalize(v) for v in pin.via if not v.startswith(("-c ", "-r ")) and "(" not in v}
        assert pin.name in direct or parents & names, (
            f"requirements/{name} pins {pin.name}=={pin.version}, which nothing in it needs (via {pin.via}): {FIX}")


def test_the_runtime_lock_is_the_test_lock_cut_down():
    """`scripts/setup` after `scripts/setup --test` keeps the test tools: same pins, same versions."""
    test = {(p.name, p.version, p.marker) for p in pins("deployctl-test.txt")}
    runtime = {(p.name, p.version, p.marker) for p in pins("deployctl.txt")}
    assert runtime < test, sorted(runtime - test)


@pytest.mark.parametrize("name", sorted(lockfile.LOCKS))
def test_locks_name_no_index_and_hash_every_pin(name):
    text = (REQ / name).read_text(encoding="utf-8")
    assert not re.search(r"https?:|://|--(extra-)?index-url|--find-links|--trusted-host|\bfile:", text, re.I)
    locked = pins(name)
    assert locked and all(p.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in p.hashes)
                          for p in locked)
    # every line is a pin, a hash, a comment or a blank: nothing the installers would read as an option
    for line in text.splitlines():
        assert not line.strip() or line.lstrip().startswith(("#", "--hash=")) or lockfile._PIN.match(line), line


# -- the virtualenvs scripts/setup made hold exactly the locks' pins ---------------------------

_INSTALLED = r"""
import json, sys
from importlib.metadata import distributions
try:
    from packaging.markers import default_environment
except ImportError:
    from pip._vendor.packaging.markers import default_environment
print(json.dumps({"env": default_environment(),
                  "dists": sorted({(d.metadata["Name"], d.version) for d in distributions() if d.metadata["Name"]})}))
"""


def installed(venv: str) -> tuple[dict, set[tuple[str, str]]]:
    python = ROOT / venv / "bin/python"
    if not python.exists():
        pytest.fail(f"{venv} does not exist: run `bash scripts/setup --test`")
    out = subprocess.run([str(python), "-c", _INSTALLED], capture_output=True, text=True, check=True, timeout=60)
    doc = json.loads(out.stdout)
    return doc["env"], {(lockfile.normalize(n), v) for n, v in doc["dists"]}


def expected(env: dict, *names: str) -> set[tuple[str, str]]:
    return {(p.name, p.version) for name in names for p in pins(name)
            if p.marker is None or Marker(p.marker).evaluate(env)}


def assert_same(venv: str, have: set, want: set) -> None:
    missing, extra = sorted(want - have), sorted(have - want)
    assert not missing and not extra, (
        f"{venv} differs from its lock: missing or at another version {missing}; not pinned {extra}; "
        "run `bash scripts/setup --test`")


def test_venv_holds_exactly_the_test_lock():
    env, have = installed(".venv")
    assert ("deployctl", PYPROJECT["project"]["version"]) in have
    have = {(n, v) for n, v in have if n not in UNLOCKED | {"deployctl"}}
    want = expected(env, "deployctl-test.txt")
    if any(n == "uv" for n, _ in have):  # absent only if setup never ran with uv (DEPLOYCTL_SETUP_INSTALLER=pip)
        want |= expected(env, "uv.txt")
    assert_same(".venv", have, want)


def test_venv_checkov_holds_exactly_the_checkov_lock():
    env, have = installed(".venv-checkov")
    assert_same(".venv-checkov", {(n, v) for n, v in have if n not in UNLOCKED}, expected(env, "checkov.txt"))


def test_docs_name_the_locked_moto():
    """The docs that speak of moto's gaps name the release the lock pins, and no other."""
    (moto,) = {p.version for p in pins("deployctl-test.txt") if p.name == "moto"}
    assert {p.version for p in pins("deployctl.txt") if p.name == "moto"} == {moto}
    for doc in ("README.md", "docs/emulators.md", "docs/supply-chain.md", "tests/e2e/moto_compat.py"):
        named = set(re.findall(r"\bmoto (\d+\.\d+\.\d+)", (ROOT / doc).read_text(encoding="utf-8")))
        assert named == {moto}, f"{doc} names moto {sorted(named)}; the lock pins {moto}"
