"""deployctl.pythons: the one lookup of the Lambda runtime's CPython, shared by the bytecode compiler
(packaging: warn and build without) and the runtime-faithful worker (invoke --local: exit 3).

Real interpreters, found through a real pyenv-style tree of links and a real PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from deployctl import pythons
from deployctl.artifacts import bytecode
from deployctl.errors import ConfigError, ToolMissing
from deployctl.local import runtime
from test_bytecode import PY312, needs312

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def nowhere(tmp_path, monkeypatch) -> Path:
    """No python3.12 named, none on PATH, an empty pyenv root (returned)."""
    monkeypatch.delenv(pythons.ENV_VAR, raising=False)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    return tmp_path / "pyenv"


def link(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


@needs312
def test_both_users_find_the_same_pyenv_version_newest_release_first(nowhere):
    link(nowhere / "versions/3.12.9/bin/python3.12", PY312)
    newest = link(nowhere / "versions/3.12.10/bin/python3.12", PY312)
    link(nowhere / "versions/3.12-dev/bin/python3.12", sys.executable)  # not a final release: last
    choice = pythons.find("python3.12")
    assert choice.interpreter is not None and choice.interpreter.cache_tag == "cpython-312"
    assert choice.interpreter.path == str(newest)
    assert runtime.find_interpreter("python3.12") == str(newest)


@needs312
def test_a_pyenv_shim_on_path_is_skipped_for_pyenvs_own_versions(nowhere, tmp_path):
    link(tmp_path / "shims" / "python3.12", "/bin/false")  # a shim that fails, as one with no version selected
    os.environ["PATH"] = f"{tmp_path / 'shims'}{os.pathsep}{os.environ['PATH']}"
    real = link(nowhere / "versions/3.12.1/bin/python3.12", PY312)
    assert pythons.find("python3.12").interpreter.path == str(real)


def test_nothing_found_is_a_warning_for_packaging_and_exit_3_for_invoke_local(nowhere):
    choice = pythons.find("python3.12")
    assert choice.interpreter is None and not choice.disabled and choice.refused is None
    assert "pyenv install 3.12" in bytecode.warning(choice)
    with pytest.raises(ToolMissing, match="no Python 3.12 interpreter found") as exc:
        runtime.find_interpreter("python3.12")
    assert exc.value.exit_code == 3


def test_an_explicit_choice_of_another_version_is_refused_never_passed_over(nowhere, monkeypatch):
    if sys.version_info[:2] == (3, 12):
        pytest.skip("the test interpreter is 3.12 itself")
    monkeypatch.setenv(pythons.ENV_VAR, sys.executable)
    choice = pythons.find("python3.12")
    assert choice.interpreter is None and choice.refused is not None
    assert choice.refused.found is not None and choice.refused.where == pythons.ENV_VAR
    with pytest.raises(ToolMissing, match="is not a Python 3.12 interpreter"):
        runtime.find_interpreter("python3.12")
    # an override from the caller comes first (invoke --local's own choice)
    monkeypatch.setenv(pythons.ENV_VAR, "none")
    assert pythons.find("python3.12").disabled
    assert pythons.find("python3.12", override=sys.executable).refused is not None
    with pytest.raises(ToolMissing, match="turns the runtime's Python off"):
        runtime.find_interpreter("python3.12")


def test_a_runtime_that_is_not_python_is_one_config_error():
    with pytest.raises(ConfigError, match="is not a Python runtime"):
        pythons.find("nodejs20.x")
