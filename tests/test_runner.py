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


def test_tee_echoes_output_live_and_still_captures_it():
    import io

    echoed = io.StringIO()
    code = "import sys; print('one', flush=True); sys.stderr.write('two\\n'); print('three')"
    res = runner.run([sys.executable, "-c", code], tee=echoed)
    assert res.ok
    assert res.stdout == "one\nthree\n" and res.stderr == "two\n"
    assert sorted(echoed.getvalue().splitlines()) == ["one", "three", "two"]


CHILD = """
import pathlib, signal, sys, time
marker = pathlib.Path(sys.argv[1])
def on_int(signum, frame):
    time.sleep(0.5)               # like terraform writing state and releasing its lock
    marker.write_text("released")
    sys.exit(1)
signal.signal(signal.SIGINT, on_int)
marker.with_suffix(".ready").write_text("ready")
time.sleep(60)
"""

PARENT = """
import sys
from deployctl import runner
from deployctl.errors import Interrupted
try:
    runner.run([sys.executable, "-c", sys.argv[1], sys.argv[2]])
except Interrupted as exc:
    print("interrupted:", exc.message)
    sys.exit(exc.exit_code)
"""


def test_ctrl_c_is_forwarded_and_the_tool_is_waited_for(tmp_path):
    """A real SIGINT to deployctl reaches the tool, which finishes its clean-up first."""
    import os
    import signal
    import subprocess
    import time

    marker = tmp_path / "lock"
    # a new session: the signal goes only to our parent, as if only deployctl got it
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(marker)], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not marker.with_suffix(".ready").exists():
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    os.kill(parent.pid, signal.SIGINT)
    out, _ = parent.communicate(timeout=30)
    assert parent.returncode == 130
    assert "interrupted" in out
    assert marker.read_text() == "released"  # the child ran its handler before deployctl exited
