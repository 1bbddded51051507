"""deployctl package: file selection, reproducible zip bytes, the build cache, requirements."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from deployctl import runner
from deployctl.artifacts import bytecode, packaging
from deployctl.cli import cli
from deployctl.config import Settings, load_defaults, load_env
from deployctl.errors import ConfigError, UsageError

FIXTURE = Path(__file__).parent / "fixtures" / "lambda_src_demo"
ROOT = Path(__file__).resolve().parents[1]


def make_project(dest: Path, *, umask: int | None = None, mtime: float | None = None) -> Path:
    """Copy the fixture project to ``dest`` (optionally under another umask, with other mtimes)."""
    old = os.umask(umask) if umask is not None else None
    try:
        shutil.copytree(FIXTURE, dest, copy_function=shutil.copyfile)  # modes from the umask, like a fresh clone
    finally:
        if old is not None:
            os.umask(old)
    if mtime is not None:
        for path in dest.rglob("*"):
            os.utime(path, (mtime, mtime))
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def names(path: Path, *, pyc: bool = True) -> list[str]:
    """The zip's entries (``pyc=False``: without the bytecode beside the sources)."""
    with zipfile.ZipFile(path) as zf:
        return [n for n in zf.namelist() if pyc or not n.endswith(".pyc")]


def own_pyc(listing: list[str]) -> set[str]:
    """The bytecode deployctl may ship: one runtime .pyc beside each .py of the zip."""
    return {bytecode.pyc_name(n, "cpython-312") for n in listing if n.endswith(".py")}


def invoke(args: list[str], root: Path, **env: str):
    env = {"DEPLOYCTL_ROOT": str(root), **env}
    return CliRunner().invoke(cli, args, obj=Settings.from_environ(env), env=env, catch_exceptions=False)


def assert_importable(zip_path: Path, handler: str, tmp: Path) -> None:
    """Extract the zip alone and import the handler from it in a fresh interpreter."""
    target = tmp / zip_path.stem
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(target)
    module, _, attr = handler.rpartition(".")
    code = (f"import sys; sys.path.insert(0, '.'); import importlib; m = importlib.import_module({module!r}); "
            f"assert callable(getattr(m, {attr!r}))")
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=target, capture_output=True, text=True,
                          env={**os.environ, "AWS_DEFAULT_REGION": "eu-west-1", "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr


# -- selection ---------------------------------------------------------------------------------


def test_each_function_gets_its_handler_and_exactly_the_shared_code_it_imports(project, tmp_path):
    (project / "lambda_src/svc/__pycache__").mkdir()
    (project / "lambda_src/svc/__pycache__/alpha.cpython-311.pyc").write_bytes(b"junk")
    (project / "lambda_src/shared/.DS_Store").write_bytes(b"junk")
    cfg = load_defaults(project)
    arts = {a.function: a for a in packaging.package(cfg, output_dir=tmp_path / "out")}
    assert names(arts["alpha"].path, pyc=False) == [
        "shared/__init__.py", "shared/util.py", "svc/__init__.py", "svc/alpha.py", "svc/common.py"]
    assert names(arts["beta"].path, pyc=False) == ["shared/__init__.py", "shared/fmt.py", "svc/__init__.py", "svc/beta.py"]
    assert names(arts["gamma"].path, pyc=False) == ["other/gamma.py"]
    for fn, art in arts.items():
        assert "svc/__pycache__/alpha.cpython-311.pyc" not in names(art.path)  # the tree's own caches never
        assert set(names(art.path)) - set(names(art.path, pyc=False)) <= own_pyc(names(art.path))
        assert art.files == len(names(art.path))
        assert_importable(art.path, cfg.functions[fn]["handler"], tmp_path / "x")


def test_zip_entries_are_normalised(project, tmp_path):
    script = project / "lambda_src/svc/alpha.py"
    script.chmod(0o700)
    (project / "lambda_src/svc/common.py").chmod(0o600)
    art = packaging.package(load_defaults(project), ["alpha"], tmp_path / "out")[0]
    with zipfile.ZipFile(art.path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos.values())
    assert all(i.compress_type == zipfile.ZIP_DEFLATED and i.create_system == 3 for i in infos.values())
    assert infos["svc/alpha.py"].external_attr >> 16 == 0o100755
    assert infos["svc/common.py"].external_attr >> 16 == 0o100644
    assert not any(n.startswith("/") or ".." in n for n in infos)
    raw = art.path.read_bytes()
    assert str(project).encode() not in raw and str(tmp_path).encode() not in raw


def test_identical_bytes_across_directories_umasks_and_mtimes(tmp_path, monkeypatch):
    one = make_project(tmp_path / "a", umask=0o022, mtime=1_000_000_000)
    two = make_project(tmp_path / "elsewhere" / "b", umask=0o077, mtime=1_700_000_000)
    (two / "lambda_src/shared/__pycache__").mkdir(mode=0o700)
    (two / "lambda_src/shared/__pycache__/util.cpython-312.pyc").write_bytes(b"\x00")
    first = {a.function: a for a in packaging.package(load_defaults(one))}
    monkeypatch.setenv("TZ", "America/New_York")
    second = {a.function: a for a in packaging.package(load_defaults(two))}
    assert first.keys() == second.keys() == {"alpha", "beta", "gamma"}
    for fn in first:
        assert first[fn].path.read_bytes() == second[fn].path.read_bytes()
        assert first[fn].input_hash == second[fn].input_hash  # no machine path in the cache key
        assert first[fn].sha256 == second[fn].sha256
        assert not first[fn].cached and not second[fn].cached


def test_sha256_forms_match_the_bytes(project):
    import base64
    import hashlib

    art = packaging.package(load_defaults(project), ["gamma"])[0]
    digest = hashlib.sha256(art.path.read_bytes()).digest()
    assert art.sha256 == digest.hex()
    assert art.code_sha256 == base64.b64encode(digest).decode()
    assert art.size == art.path.stat().st_size


def test_source_date_epoch_sets_timestamps(project, tmp_path, monkeypatch):
    cfg = load_defaults(project)
    plain = packaging.package(cfg, ["gamma"], tmp_path / "plain")[0]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = packaging.package(cfg, ["gamma"], tmp_path / "dated")[0]
    assert dated.sha256 != plain.sha256 and dated.input_hash != plain.input_hash
    with zipfile.ZipFile(dated.path) as zf:
        assert zf.infolist()[0].date_time[:3] == (2023, 11, 14)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        packaging.package(cfg, ["gamma"])


# -- cache -------------------------------------------------------------------------------------


def test_unchanged_functions_come_from_the_cache(project, monkeypatch):
    cfg = load_defaults(project)
    cold = {a.function: a for a in packaging.package(cfg)}
    assert not any(a.cached for a in cold.values())
    assert sorted(p.name for p in (project / ".deployctl/cache/package").glob("*.zip")) == sorted(
        f"{a.input_hash}.zip" for a in cold.values())

    built: list[str] = []
    real_write = packaging.write_zip
    monkeypatch.setattr(packaging, "write_zip", lambda entries, dest, epoch: (built.append(dest.stem),
                                                                               real_write(entries, dest, epoch)))
    warm = {a.function: a for a in packaging.package(cfg)}
    assert built == [] and all(a.cached for a in warm.values())
    assert {f: a.sha256 for f, a in warm.items()} == {f: a.sha256 for f, a in cold.items()}

    # a change to shared/fmt.py rebuilds beta only; touching a file (mtime only) rebuilds nothing
    os.utime(project / "lambda_src/shared/util.py", (2_000_000_000, 2_000_000_000))
    (project / "lambda_src/shared/fmt.py").write_text("def dumps(value):\n    return repr(value)\n")
    after = {a.function: a for a in packaging.package(cfg)}
    assert [f for f, a in after.items() if not a.cached] == ["beta"]
    assert after["beta"].sha256 != cold["beta"].sha256
    assert after["alpha"].sha256 == cold["alpha"].sha256


def test_a_corrupted_cache_entry_is_rebuilt(project):
    cfg = load_defaults(project)
    art = packaging.package(cfg, ["alpha"])[0]
    cached = project / ".deployctl/cache/package" / f"{art.input_hash}.zip"
    cached.write_bytes(b"truncated")
    again = packaging.package(cfg, ["alpha"])[0]
    assert not again.cached and again.sha256 == art.sha256


# -- errors ------------------------------------------------------------------------------------


def test_unknown_function_is_a_usage_error(project):
    with pytest.raises(UsageError, match="unknown function 'nope'") as exc:
        packaging.package(load_defaults(project), ["nope"])
    assert "alpha, beta, gamma" in exc.value.hint


def test_missing_handler_module_and_attribute_and_syntax_errors(project):
    cfg = load_defaults(project)
    (project / "lambda_src/other/gamma.py").unlink()
    with pytest.raises(ConfigError, match="handler module 'other.gamma' not found") as exc:
        packaging.package(cfg, ["gamma"])
    assert exc.value.where == "functions.gamma.handler"
    (project / "lambda_src/other/gamma.py").write_text("def main(event, context):\n    return 1\n")
    with pytest.raises(ConfigError, match="'handler' is not defined"):
        packaging.package(cfg, ["gamma"])
    (project / "lambda_src/shared/util.py").write_text("def shout(:\n")
    with pytest.raises(ConfigError, match="syntax error") as exc:
        packaging.package(cfg, ["alpha"])
    assert exc.value.where == "lambda_src/shared/util.py:1"


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_package_json_without_env(project, tmp_path):
    result = invoke(["package", "--json", "--output-dir", str(tmp_path / "dist")], project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["result"]["functions"]
    assert set(data) == {"alpha", "beta", "gamma"}
    for fn, item in data.items():
        path = Path(item["path"])
        assert path == tmp_path / "dist" / f"{fn}.zip" and path.stat().st_size == item["size"]
        assert {"sha256", "code_sha256", "size", "files"} <= set(item)
        assert len(item["sha256"]) == 64 and item["code_sha256"].endswith("=")


def test_cli_package_with_env_and_one_function(project):
    result = invoke(["package", "--env", "dev", "--function", "gamma"], project)
    assert result.exit_code == 0, result.output
    assert "gamma" in result.stdout and "alpha" not in result.stdout
    assert (project / ".deployctl/dist/gamma.zip").is_file()


def test_cli_unknown_function_one_line_exit_2(project):
    result = invoke(["package", "--function", "nope"], project)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown function 'nope'" in lines[0] and "Traceback" not in result.output


def test_env_architecture_changes_the_build(project):
    (project / "terraform/envs/dev/env.toml").write_text('[aws]\naccount_id = "111111111111"\n\n[lambda]\narchitecture = "arm64"\n')
    x86 = packaging.package(load_defaults(project), ["gamma"])[0]
    arm = packaging.package(load_env("dev", project), ["gamma"])[0]
    assert x86.input_hash != arm.input_hash
    assert x86.sha256 == arm.sha256  # pure-Python code: same bytes, different cache entry


# -- requirements (real pip, offline: a local wheel through PIP_NO_INDEX/PIP_FIND_LINKS) ----------


def make_wheel(dest: Path, name: str, version: str, files: dict[str, str], metadata: str = "",
               metadata_version: str = "2.1") -> Path:
    """A pure-Python wheel of ``files`` (paths inside it) with METADATA (plus ``metadata`` lines), WHEEL
    and a RECORD of them all; fixed timestamps, so the same bytes every time."""
    import base64
    import hashlib

    info = f"{name}-{version}.dist-info"
    files = {**files, f"{info}/METADATA": f"Metadata-Version: {metadata_version}\nName: {name}\nVersion: {version}\n{metadata}",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = io.StringIO()
    w = csv.writer(record, lineterminator="\n")
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        w.writerow([path, f"sha256={digest}", len(text.encode())])
    w.writerow([f"{info}/RECORD", "", ""])
    files[f"{info}/RECORD"] = record.getvalue()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, (2020, 1, 1, 0, 0, 0)), text)
    return path


def _wheel(dest: Path) -> Path:
    """A tiny pure-Python wheel with tests, a console script and a RECORD."""
    return make_wheel(dest, "tinydep", "1.0", {
        "tinydep/__init__.py": "VALUE = 42\n",
        "tinydep/cli.py": "def main():\n    return 0\n",
        "tinydep/tests/test_tiny.py": "def test():\n    pass\n",
        "tinydep-1.0.dist-info/entry_points.txt": "[console_scripts]\ntinydep = tinydep.cli:main\n",
        "tinydep-1.0.dist-info/top_level.txt": "tinydep\n",
    })


@pytest.mark.slow
def test_requirements_installed_for_the_lambda_platform_and_normalised(project, tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    _wheel(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    req = project / "lambda_src/requirements/gamma.txt"
    req.parent.mkdir()
    req.write_text("tinydep==1.0\n")

    seen: list[list[str]] = []

    class Recording(runner.Runner):
        def run(self, argv, **kwargs):
            if list(argv[1:3]) == ["-m", "pip"]:  # pip only (the bytecode compiler runs through the runner too)
                seen.append([str(a) for a in argv])
            return super().run(argv, **kwargs)

    previous = runner.set_runner(Recording())
    try:
        cfg = load_defaults(project)
        art = packaging.package(cfg, ["gamma"], tmp_path / "out")[0]
        again = packaging.package(cfg, ["gamma"], tmp_path / "out2")[0]
    finally:
        runner.set_runner(previous)

    assert len(seen) == 1, "the second build is a cache hit: pip not run again"
    argv = seen[0]
    assert argv[1:4] == ["-m", "pip", "install"]
    for flag in ("--only-binary=:all:", "--no-compile"):
        assert flag in argv
    assert argv[argv.index("--python-version") + 1] == "3.12"
    assert argv[argv.index("--implementation") + 1] == "cp"
    assert "manylinux2014_x86_64" in argv
    assert again.cached and again.sha256 == art.sha256

    listing = names(art.path)
    assert "other/gamma.py" in listing and "tinydep/__init__.py" in listing
    assert not any(n.startswith("bin/") or "/tests/" in n for n in listing), listing
    assert {n for n in listing if n.endswith(".pyc")} <= own_pyc(listing), listing
    with zipfile.ZipFile(art.path) as zf:
        record = zf.read("tinydep-1.0.dist-info/RECORD").decode()
    rows = list(csv.reader(io.StringIO(record)))
    paths = [r[0] for r in rows]
    assert paths == sorted(paths) and "tinydep/__init__.py" in paths
    assert not any(p.startswith("/") or ".." in p or p.startswith("bin/") or "/tests/" in p for p in paths)
    assert str(tmp_path).encode() not in art.path.read_bytes()
    assert_importable(art.path, "tinydep.cli.main", tmp_path / "imp")

    # a requirements change rebuilds (and reinstalls)
    req.write_text("tinydep==1.0\n# pinned\n")
    changed = packaging.package(cfg, ["gamma"], tmp_path / "out3")[0]
    assert not changed.cached


def test_pip_failure_is_one_clear_error(project, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    req = project / "lambda_src/requirements/gamma.txt"
    req.parent.mkdir()
    req.write_text("definitely-not-here==9.9\n")
    with pytest.raises(Exception) as exc:
        packaging.package(load_defaults(project), ["gamma"])
    assert type(exc.value).__name__ == "OperationFailed"
    assert "pip could not install" in exc.value.message
    assert exc.value.where == "lambda_src/requirements/gamma.txt"


# -- the real lambda_src -----------------------------------------------------------------------


def test_real_lambda_src_packages_and_imports(tmp_path):
    handlers = list((ROOT / "lambda_src").rglob("*.py")) if (ROOT / "lambda_src").is_dir() else []
    if not handlers:
        pytest.skip("lambda_src/ has no handlers yet")
    proj = tmp_path / "real"
    (proj / "terraform/envs").mkdir(parents=True)
    shutil.copy(ROOT / "terraform/envs/defaults.toml", proj / "terraform/envs/defaults.toml")
    shutil.copytree(ROOT / "lambda_src", proj / "lambda_src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    cfg = load_defaults(proj)
    arts = packaging.package(cfg)
    assert {a.function for a in arts} == set(cfg.functions)
    for art in arts:
        listing = names(art.path)
        handler_file = cfg.functions[art.function]["handler"].rpartition(".")[0].replace(".", "/") + ".py"
        assert handler_file in listing
        assert not any("/tests/" in n for n in listing)
        assert {n for n in listing if "__pycache__" in n or n.endswith(".pyc")} <= own_pyc(listing)
        assert_importable(art.path, cfg.functions[art.function]["handler"], tmp_path / "imp")


# -- structure ---------------------------------------------------------------------------------


def test_artifact_modules_import_one_way():
    """No import circle inside deployctl.artifacts, not even through a lazy import in a function:
    packaging -> layers -> deps -> srctree/zipbuild (the shared zip writer has a module of its own)."""
    import ast

    pkg = ROOT / "cli/deployctl/artifacts"
    graph: dict[str, set[str]] = {}
    for path in pkg.glob("*.py"):
        name = f"deployctl.artifacts.{path.stem}"
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            edges.update(t for t in targets if t.startswith("deployctl.artifacts.") and (pkg / f"{t.rsplit('.', 1)[1]}.py").is_file())

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    circles = [c for c in map(cycle_from, sorted(graph)) if c]
    assert circles == [], circles
    assert "deployctl.artifacts.packaging" not in graph["deployctl.artifacts.layers"]
    assert not graph["deployctl.artifacts.zipbuild"], "the shared writer imports no other artifact module"
