"""A thin wrapper over terraform/tofu (through deployctl.runner).

Every call runs in the env root with ``-input=false -no-color``; failures are
turned into one clear error: the state lock (who holds it, since when), an
unreachable backend, or the first ``Error:`` terraform printed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from deployctl import runner, tools
from deployctl.config import EnvConfig, Settings
from deployctl.errors import OperationFailed
from deployctl.infra import tfinit
from deployctl.ui import UI

DEFAULT_MIN_VERSION = "1.10.0"
AUTOMATION_ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class LockInfo:
    id: str = ""
    who: str = ""
    created: str = ""
    operation: str = ""
    path: str = ""


def parse_lock_error(text: str) -> LockInfo | None:
    """The ``Lock Info:`` block of terraform's "Error acquiring the state lock"."""
    text = _ANSI.sub("", text)
    if "acquiring the state lock" not in text and "Lock Info:" not in text:
        return None
    info = LockInfo()
    for field_name, label in (("id", "ID"), ("who", "Who"), ("created", "Created"), ("operation", "Operation"), ("path", "Path")):
        m = re.search(rf"^\s*{label}:\s*(.*?)\s*$", text, re.MULTILINE)
        if m:
            setattr(info, field_name, m.group(1))
    return info


def first_error(text: str) -> str:
    """The first ``Error: ...`` of terraform's output, with its location and explanation."""
    lines = [_ANSI.sub("", ln).strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("Error:"):
            continue
        msg = line[len("Error:") :].strip()
        location = detail = ""
        for ln in lines[i + 1 : i + 20]:
            if ln.startswith("Error:"):
                break
            if not ln or ln[:1] in {"├", "│", "└", "╵", "╷"} or re.match(r"^\d+:", ln):
                continue
            if ln.startswith("on ") and not location:
                location = ln[3:].rstrip(":")
                continue
            detail = ln
            break
        text_out = f"{msg}: {detail}" if detail and detail not in msg else msg
        return f"{text_out} ({location})" if location else text_out
    tail = [ln for ln in lines if ln]
    return tail[-1] if tail else "no error output"


_BACKEND_PATTERNS = (
    "error configuring s3 backend",
    "failed to get existing workspaces",
    "error loading state",
    "nosuchbucket",
    "failed to load state",
    "error refreshing state",
    "no valid credential sources",
    "failed to configure the backend",
    "error inspecting states",
    "unable to access",
)


class Terraform:
    """terraform (or tofu) for one environment root."""

    def __init__(self, cfg: EnvConfig, settings: Settings, ui: UI | None = None, *, workdir: Path | None = None):
        self.cfg = cfg
        self.binary = settings.terraform(cfg)
        self.minimum = cfg.get("tools.terraform_min_version") or DEFAULT_MIN_VERSION
        self.workdir = workdir or cfg.env_dir
        self.ui = ui
        self._version: tools.ToolVersion | None = None

    # -- version guard ------------------------------------------------------------
    def version(self) -> tools.ToolVersion:
        """Flavour and version; ToolMissing (exit 3) if absent or older than tools.terraform_min_version."""
        if self._version is None:
            self._version = tools.terraform_version(self.binary, self.minimum)
        return self._version

    # -- commands --------------------------------------------------------------------
    def _run(self, args: list[str], what: str, *, timeout: float | None = None, stream: bool = False) -> runner.Result:
        """Run one terraform command; ``stream`` echoes its output live to stderr (plan, apply)."""
        self.version()
        tee = self.ui.err if (stream and self.ui is not None) else None
        res = runner.run([self.binary, *args], cwd=self.workdir, env=AUTOMATION_ENV, timeout=timeout, tee=tee)
        if tee is None and self.ui is not None and not res.ok and res.stderr.strip():
            self.ui.info(_ANSI.sub("", res.stderr).rstrip())
        if not res.ok:
            self._raise(res, what)
        return res

    def _raise(self, res: runner.Result, what: str) -> None:
        text = res.stderr + "\n" + res.stdout
        lock = parse_lock_error(text)
        where = str(self.workdir)
        if lock is not None:
            since = f" since {lock.created}" if lock.created else ""
            op = f" ({lock.operation})" if lock.operation else ""
            raise OperationFailed(
                f"terraform {what}: the state is locked by {lock.who or 'someone else'}{since}{op}, lock id {lock.id or '?'}",
                where=where,
                hint="wait for that run to finish; if it died, release the lock with "
                f"`terraform -chdir={where} force-unlock {lock.id or 'LOCK_ID'}`",
            )
        message = first_error(text)
        if any(p in text.lower() for p in _BACKEND_PATTERNS):
            raise OperationFailed(
                f"terraform {what}: the state backend is unreachable: {message}",
                where=where,
                hint="check AWS credentials and network, and that `deployctl bootstrap` created the state bucket",
            )
        raise OperationFailed(f"terraform {what} failed: {message}", where=where, hint="fix the error above and re-run")

    def _init_args(self, backend_config: Path | None) -> list[str]:
        args = ["init", "-input=false", "-no-color"]
        if backend_config is not None:
            args.append(f"-backend-config={backend_config}")
        return args

    def init(self, backend_config: Path | None = None) -> None:
        self._run(self._init_args(backend_config), "init")

    def _init_digest(self, backend_config: Path | None) -> str | None:
        env = {**os.environ, **getattr(runner.get_runner(), "extra_env", {}), **AUTOMATION_ENV}
        tfv = self.version()
        return tfinit.init_digest(workdir=self.workdir, argv=self._init_args(backend_config), binary=tfv.path,
                                  version=f"{tfv.name} {tfv.version}", env=env, backend_config=backend_config)

    def init_current(self, backend_config: Path | None, record: Path) -> bool:
        """Whether the last successful init, recorded in ``record``, had exactly the inputs of now
        (:mod:`deployctl.infra.tfinit`): then init has nothing to do."""
        current = self._init_digest(backend_config)
        return current is not None and current == tfinit.recorded(record)

    def init_and_record(self, backend_config: Path | None, record: Path) -> None:
        """``init``, then record its inputs in ``record``; a failed init records nothing."""
        tfinit.forget(record)
        self.init(backend_config)
        after = self._init_digest(backend_config)
        if after is not None:
            tfinit.save(record, after)

    def plan(self, out: Path, *, targets: list[str] | None = None, destroy: bool = False,
             refresh_only: bool = False) -> runner.Result:
        args = ["plan", "-input=false", "-no-color", "-compact-warnings", "-lock-timeout=0s", f"-out={out}"]
        args += [f"-target={t}" for t in targets or []]
        if destroy:
            args.append("-destroy")
        if refresh_only:  # deployctl drift: what changed outside Terraform, nothing else
            args.append("-refresh-only")
        return self._run(args, "plan", stream=True)

    def show_json(self, planfile: Path) -> dict:
        return self.show_json_text(planfile)[1]

    def show_json_text(self, planfile: Path) -> tuple[str, dict]:
        """``show -json``: the text terraform printed and the document it parses to (both secret)."""
        res = self._run(["show", "-json", "-no-color", str(planfile)], "show")
        try:
            return res.stdout, json.loads(res.stdout)
        except json.JSONDecodeError as exc:
            raise OperationFailed(f"terraform show -json did not print JSON: {exc}", where=str(planfile)) from None

    def apply(self, planfile: Path) -> runner.Result:
        # A saved plan: no -var, no -target, no -auto-approve needed (it was reviewed).
        return self._run(["apply", "-input=false", "-no-color", "-lock-timeout=0s", str(planfile)], "apply", stream=True)

    def state_list(self) -> list[str]:
        res = self._run(["state", "list"], "state list")
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    def output_json(self) -> dict:
        res = self._run(["output", "-json", "-no-color"], "output")
        try:
            return json.loads(res.stdout or "{}")
        except json.JSONDecodeError as exc:
            raise OperationFailed(f"terraform output -json did not print JSON: {exc}") from None


# -- what the root declares ------------------------------------------------------------

_COMMENT = re.compile(r"(?m)^\s*(#|//).*$")


def _tf_text(directory: Path) -> str:
    parts = []
    for path in sorted(directory.glob("*.tf")):
        parts.append(_COMMENT.sub("", path.read_text(encoding="utf-8", errors="replace")))
    return "\n".join(parts)


def backend_type(env_dir: Path) -> str:
    """The backend the root declares (``"s3"``...), or ``"local"`` when it declares none."""
    m = re.search(r'\bbackend\s+"([a-z0-9_]+)"', _tf_text(env_dir))
    return m.group(1) if m else "local"


_AWS = re.compile(r'provider\s+"aws"|hashicorp/aws|(resource|data)\s+"aws_')
_SOURCE = re.compile(r'source\s*=\s*"(\.{1,2}/[^"]+)"')


def uses_aws(env_dir: Path) -> bool:
    """Whether the root (or a local module it calls) uses the AWS provider."""
    seen: set[Path] = set()
    todo = [env_dir.resolve()]
    while todo:
        d = todo.pop()
        if d in seen or not d.is_dir():
            continue
        seen.add(d)
        text = _tf_text(d)
        if _AWS.search(text):
            return True
        todo += [(d / m).resolve() for m in _SOURCE.findall(text)]
    return False
