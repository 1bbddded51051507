"""The runner: argument lists only, tool discovery, swapping in tests."""

from __future__ import annotations

import sys

import pytest

from deployctl import runner
from deployctl.errors import ToolMissing


def test_arguments_are_passed_verbatim_never_through_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    res = runner.run([sys.executable, "-c", "import sys; print(sys.argv[1:])", f"; touch {marker}", "$(id)"])
    assert res.ok
    assert res.stdout.strip() == repr([f"; touch {marker}", "$(id)"])
    assert not marker.exists()


def test_missing_tool_is_a_tool_missing_error():
    with pytest.raises(ToolMissing) as info:
        runner.run(["definitely-not-a-real-tool-xyz", "--version"])
    assert info.value.exit_code == 3
    assert "definitely-not-a-real-tool-xyz" in info.value.one_line()


def test_exit_code_and_streams_are_reported():
    res = runner.run([sys.executable, "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)"])
    assert res.returncode == 3 and not res.ok and res.stderr == "bad"


def test_runner_can_be_swapped_for_tests():
    calls = []

    class Recording(runner.Runner):
        def run(self, argv, **kwargs):
            calls.append(list(argv))
            return super().run(argv, **kwargs)

    previous = runner.set_runner(Recording())
    try:
        runner.run([sys.executable, "-c", "pass"])
    finally:
        runner.set_runner(previous)
    assert calls == [[sys.executable, "-c", "pass"]]
    assert runner.get_runner() is previous
