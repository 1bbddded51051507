"""Which checkov is there, and does it start: tools.checkov_install and tools.checkov_version (doctor's
checkov line), with the real checkov install of .venv-checkov.

`checkov --version` imports every runner and check registry (about 5 s of CPU) to print one line.
For checkov's own console script, doctor reads the version from the installed distribution and asks
the script's Python to import checkov's version module: the same answer, started in a fraction of
that. Any doubt (a wrapper, a Python that fails, a version that disagrees) runs `checkov --version`.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deployctl import runner, tools
from deployctl.errors import ToolMissing
from tf_helpers import CHECKOV


class Spy(runner.Runner):
    def __init__(self):
        super().__init__()
        self.calls: list[list[str]] = []

    def run(self, argv, **kwargs):
        self.calls.append([str(a) for a in argv])
        return super().run(argv, **kwargs)


@pytest.fixture
def spy():
    rec = Spy()
    previous = runner.set_runner(rec)
    yield rec
    runner.set_runner(previous)


def _installed_version() -> str:
    installed = tools.checkov_install(CHECKOV)
    assert installed is not None and installed.plain_shebang
    return installed.version


def test_the_real_install_is_read_without_starting_checkov(spy):
    version = _installed_version()
    found = tools.checkov_version(str(CHECKOV))
    assert found.name == "checkov" and found.version == version == "3.3.30"
    assert not any("--version" in call for call in spy.calls), spy.calls
    (probe,) = spy.calls
    assert probe[0] == tools.checkov_install(CHECKOV).python and probe[1] == "-c"


def _fake_env(tmp_path: Path, python_target: str | None, version: str) -> Path:
    """A console script like checkov's whose shebang names ``env/bin/python`` (running
    ``python_target``, or a Python that fails) beside a dist-info saying ``version``."""
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    python = env / "bin" / "python"
    if python_target:
        python.write_text(f'#!/bin/sh\nexec "{python_target}" "$@"\n')  # that environment's packages
        python.chmod(0o755)
    else:
        python.write_text("#!/bin/sh\necho 'this Python is broken' >&2\nexit 1\n")
        python.chmod(0o755)
    dist = env / "lib" / "python3.11" / "site-packages" / f"checkov-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: checkov\nVersion: {version}\n")
    (dist / "RECORD").write_text("checkov/__init__.py,,\n")
    script = env / "bin" / "checkov"
    script.write_text(f"#!{python}\n" + CHECKOV.read_text().split("\n", 1)[1])
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_python_that_does_not_start_is_not_reported_as_a_working_checkov(tmp_path, spy):
    script = _fake_env(tmp_path, None, "3.3.30")
    assert tools.checkov_install(script).version == "3.3.30"  # the files alone look right
    with pytest.raises(ToolMissing) as exc:
        tools.checkov_version(str(script))
    assert "did not report a version" in exc.value.message and "this Python is broken" in exc.value.message
    assert [str(script), "--version"] in spy.calls  # asked the script itself after the probe failed


def test_installed_files_that_disagree_with_the_python_make_checkov_answer_itself(tmp_path, spy):
    real_python = tools.checkov_install(CHECKOV).python
    script = _fake_env(tmp_path, real_python, "9.9.9")
    found = tools.checkov_version(str(script))
    assert found.version == _installed_version()  # what checkov --version printed, not the planted 9.9.9
    assert [str(script), "--version"] in spy.calls


def test_a_wrapper_is_not_read_as_an_install(tmp_path):
    wrapper = tmp_path / "checkov"
    wrapper.write_text(f'#!/bin/sh\nexec "{CHECKOV}" "$@"\n')
    wrapper.chmod(0o755)
    assert tools.checkov_install(wrapper) is None
    assert tools.checkov_install(tmp_path / "missing") is None
