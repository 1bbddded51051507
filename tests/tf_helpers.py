"""Helpers for the Terraform pipeline tests: copy a fixture project, run the CLI in-process."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tf"
VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
TERRAFORM = VENV_BIN / "terraform"
CHECKOV = VENV_BIN / "checkov"


def copy_project(name: str, dest: Path) -> Path:
    """A fresh copy of tests/fixtures/tf/<name> (a deployctl project) under ``dest``."""
    target = dest / name
    shutil.copytree(FIXTURES / name, target)
    return target


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(root: Path, *args: str, tools: bool = True) -> Run:
    """``deployctl --root ROOT [--terraform-bin .. --checkov-bin ..] ARGS`` in this process."""
    import contextlib
    import io

    from deployctl.cli import main

    argv = ["--root", str(root)]
    if tools:
        argv += ["--terraform-bin", str(TERRAFORM), "--checkov-bin", str(CHECKOV)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, *args])
    return Run(code, out.getvalue(), err.getvalue())
