"""Bytecode in the Lambda zips: compiled by the runtime's Python, used as shipped, reproducible,
and a missing interpreter is one warning and a correct zip without it (issue 18, item 5)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from deployctl.artifacts import bytecode, packaging
from deployctl.cli import cli
from deployctl.config import Settings, load_defaults
from deployctl.errors import ConfigError
from test_layers import add_layer, wheels  # noqa: F401  (a fixture)
from test_package import assert_importable, make_project, names

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def _python312() -> str | None:
    roots = [os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")]
    found = sorted(glob.glob(f"{roots[0]}/versions/3.12.*/bin/python3.12"))
    found += [p for p in ("/usr/bin/python3.12", "/usr/local/bin/python3.12") if os.access(p, os.X_OK)]
    return found[-1] if found else None


PY312 = _python312()
needs312 = pytest.mark.skipif(PY312 is None, reason="no python3.12 on this machine (pyenv install 3.12)")
TAG = "cpython-312"


@pytest.fixture
def with312(monkeypatch):
    monkeypatch.setenv(bytecode.ENV_VAR, PY312)
    return PY312


@pytest.fixture
def no_python(monkeypatch, tmp_path):
    """No python3.12 anywhere deployctl looks: not named, not on PATH, no pyenv."""
    monkeypatch.delenv(bytecode.ENV_VAR, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))


def unzip(path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(dest)
    return dest


# Run by python3.12: for each pyc under a tree, what its header and code object say.
INSPECT = """
import importlib.util, json, marshal, pathlib, sys
tree = pathlib.Path(sys.argv[1]); out = {}
for pyc in sorted(tree.rglob('*.pyc')):
    data = pyc.read_bytes()
    src = pyc.parent.parent / (pyc.name.split('.')[0] + '.py')
    out[pyc.relative_to(tree).as_posix()] = {
        'magic_ok': data[:4] == importlib.util.MAGIC_NUMBER,
        'flags': int.from_bytes(data[4:8], 'little'),
        'hash_ok': data[8:16] == importlib.util.source_hash(src.read_bytes()),
        'filename': marshal.loads(data[16:]).co_filename,
    }
print(json.dumps(out))
"""


def inspect(tree: Path) -> dict:
    out = subprocess.run([PY312, "-I", "-c", INSPECT, str(tree)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.slow
@needs312
def test_every_source_gets_an_unchecked_hash_pyc_of_the_runtime_named_as_lambda_sees_it(tmp_path, wheels, with312):  # noqa: F811
    project = make_project(tmp_path / "p")
    add_layer(project)
    build = packaging.build(load_defaults(project), ["alpha"], tmp_path / "out")
    (fn,), (layer,) = build.functions, build.layers
    for art, root in ((fn, "/var/task"), (layer, "/opt")):
        listing = names(art.path)
        sources = [n for n in listing if n.endswith(".py")]
        assert sources and {n for n in listing if n.endswith(".pyc")} == {bytecode.pyc_name(n, TAG) for n in sources}
        assert art.files == len(listing)
        seen = inspect(unzip(art.path, tmp_path / art.function))
        assert len(seen) == len(sources)
        for rel, info in seen.items():
            source = rel.replace("__pycache__/", "").replace(f".{TAG}.pyc", ".py")
            # PEP 552: bit 0 = hash-based, bit 1 (check_source) clear = unchecked
            assert info == {"magic_ok": True, "flags": 0b01, "hash_ok": True, "filename": f"{root}/{source}"}, rel
    assert "python/tinydep/__pycache__/__init__.cpython-312.pyc" in names(layer.path)


@needs312
def test_the_runtime_runs_the_shipped_bytecode_without_reading_or_writing_anything(tmp_path, with312):
    art = packaging.package(load_defaults(make_project(tmp_path / "p")), ["alpha"], tmp_path / "out")[0]
    task = unzip(art.path, tmp_path / "task")
    # the source is not consulted (unchecked-hash): a changed .py still runs the shipped code
    (task / "svc/alpha.py").write_text("raise SystemExit('the source was compiled, not the shipped .pyc')\n")
    before = sorted(p.relative_to(task).as_posix() for p in task.rglob("*"))
    code = "import sys; sys.path.insert(0, '.'); import svc.alpha as m; assert callable(m.handler); print(m.__file__)"
    proc = subprocess.run([PY312, "-I", "-B", "-c", code], cwd=task, capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.relative_to(task).as_posix() for p in task.rglob("*")) == before


@pytest.mark.slow
@needs312
def test_bytecode_zips_are_byte_identical_across_directories_umasks_and_mtimes(tmp_path, wheels, with312):  # noqa: F811
    shas = []
    for i, (umask, mtime) in enumerate([(0o022, 1_000_000_000), (0o077, 1_700_000_000)]):
        project = make_project(tmp_path / f"dir{i}" / ("x" * (i + 1)), umask=umask, mtime=mtime)
        add_layer(project)
        build = packaging.build(load_defaults(project), None, tmp_path / f"out{i}")
        assert not any(a.cached for a in [*build.functions, *build.layers])
        assert all(any(n.endswith(".pyc") for n in names(a.path)) for a in [*build.functions, *build.layers])
        shas.append({a.path.name: a.path.read_bytes() for a in [*build.functions, *build.layers]})
    assert shas[0] == shas[1]


def test_without_the_runtimes_python_one_warning_and_a_correct_zip_without_bytecode(tmp_path, no_python):
    project = make_project(tmp_path / "p")
    env = {"DEPLOYCTL_ROOT": str(project)}
    result = CliRunner().invoke(cli, ["package", "--output-dir", str(tmp_path / "out")], obj=Settings.from_environ(env),
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert "Python 3.12" in warnings[0] and "pyenv install 3.12" in warnings[0] and bytecode.ENV_VAR in warnings[0]
    cfg = load_defaults(project)
    for fn, spec in cfg.functions.items():
        zip_path = tmp_path / "out" / f"{fn}.zip"
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names(zip_path))
        assert_importable(zip_path, spec["handler"], tmp_path / "imp")


@needs312
def test_the_cache_key_records_the_interpreter_so_pyc_and_no_pyc_zips_never_stand_in_for_each_other(
        tmp_path, no_python, monkeypatch):
    cfg = load_defaults(make_project(tmp_path / "p"))
    plain = packaging.package(cfg, ["alpha"], tmp_path / "a")[0]
    assert not plain.cached and not any(n.endswith(".pyc") for n in names(plain.path))
    monkeypatch.setenv(bytecode.ENV_VAR, PY312)  # the interpreter appears
    compiled = packaging.package(cfg, ["alpha"], tmp_path / "b")[0]
    assert not compiled.cached and compiled.input_hash != plain.input_hash
    assert any(n.endswith(".pyc") for n in names(compiled.path))
    monkeypatch.delenv(bytecode.ENV_VAR)  # and goes away again: the no-pyc entry is the one reused
    again = packaging.package(cfg, ["alpha"], tmp_path / "c")[0]
    assert again.cached and again.sha256 == plain.sha256
    monkeypatch.setenv(bytecode.ENV_VAR, PY312)
    back = packaging.package(cfg, ["alpha"], tmp_path / "d")[0]
    assert back.cached and back.sha256 == compiled.sha256


def test_an_explicit_interpreter_of_another_python_is_one_config_error(tmp_path, monkeypatch):
    cfg = load_defaults(make_project(tmp_path / "p"))
    other = sys.executable if sys.version_info[:2] != (3, 12) else None
    if other is None:
        pytest.skip("the test interpreter is 3.12 itself")
    monkeypatch.setenv(bytecode.ENV_VAR, other)
    with pytest.raises(ConfigError) as exc:
        packaging.package(cfg, ["alpha"], tmp_path / "out")
    assert exc.value.where == bytecode.ENV_VAR
    assert f"cpython-{sys.version_info[0]}{sys.version_info[1]}" in exc.value.message and TAG in exc.value.message
    monkeypatch.setenv(bytecode.ENV_VAR, str(tmp_path / "no-such-python"))
    with pytest.raises(ConfigError, match="does not run"):
        packaging.package(cfg, ["alpha"], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.zip"))


def test_none_turns_bytecode_off_without_a_warning(tmp_path, monkeypatch, capsys):
    cfg = load_defaults(make_project(tmp_path / "p"))
    monkeypatch.setenv(bytecode.ENV_VAR, "none")
    art = packaging.package(cfg, ["alpha"], tmp_path / "out")[0]
    assert not any(n.endswith(".pyc") for n in names(art.path))
    assert "warning" not in capsys.readouterr().err


@needs312
def test_the_tools_config_key_names_the_interpreter(tmp_path, no_python):
    project = make_project(tmp_path / "p")
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text() + f'\n[tools]\nlambda_python = "{PY312}"\n')
    art = packaging.package(load_defaults(project), ["gamma"], tmp_path / "out")[0]
    assert names(art.path) == ["other/__pycache__/gamma.cpython-312.pyc", "other/gamma.py"]
