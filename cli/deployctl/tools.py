"""Find external tools and read their versions (through deployctl.runner)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from deployctl import runner
from deployctl.errors import DeployctlError, ToolMissing

TERRAFORM_INSTALL = (
    "install terraform >= {min} (https://developer.hashicorp.com/terraform/install) or OpenTofu "
    "(https://opentofu.org/docs/intro/install/), then pass --terraform-bin or set DEPLOYCTL_TERRAFORM"
)
CHECKOV_INSTALL = (
    "run `bash scripts/setup` (it creates .venv-checkov from the hashed lock requirements/checkov.txt), "
    "or point --checkov-bin / DEPLOYCTL_CHECKOV at a checkov 3.3.30"
)


@dataclass
class ToolVersion:
    name: str  # "terraform", "tofu" or "checkov"
    path: str
    version: str


def parse_version(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return ()
    return tuple(int(x) for x in m.groups(default="0"))


def version_ok(found: str, minimum: str) -> bool:
    return parse_version(found) >= parse_version(minimum)


def terraform_version(binary: str, minimum: str | None = None) -> ToolVersion:
    """The flavour (terraform/tofu) and version of ``binary``; ToolMissing if absent or too old."""
    path = runner.get_runner().which(binary)
    if path is None:
        raise ToolMissing(f"'{binary}' was not found", hint=TERRAFORM_INSTALL.format(min=minimum or "1.10"))
    res = runner.run([binary, "version", "-json"], timeout=60)
    version, name = "", "terraform"
    if res.ok:
        try:
            doc = json.loads(res.stdout)
            version = doc.get("terraform_version", "")
        except json.JSONDecodeError:
            version = ""
    if not version:
        res = runner.run([binary, "version"], timeout=60)
        version = ".".join(map(str, parse_version(res.stdout))) if res.ok else ""
    if not version:
        raise ToolMissing(f"'{binary}' did not report a version", hint=TERRAFORM_INSTALL.format(min=minimum or "1.10"))
    if "opentofu" in (res.stdout + res.stderr).lower() or "tofu" in binary.rsplit("/", 1)[-1]:
        name = "tofu"
    if minimum and not version_ok(version, minimum):
        raise ToolMissing(
            f"{name} {version} at {path} is too old: {minimum} or newer is needed",
            hint=TERRAFORM_INSTALL.format(min=minimum),
        )
    return ToolVersion(name=name, path=path, version=version)


# every checkov run's environment (the gate's scans, its identity, doctor): offline, no Prisma
# mapping download, no SCA scan, and no PyPI request for a newer release on import
CHECKOV_ENV = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
               "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
_TRAMPOLINE = re.compile(r"""^'''exec' "?([^"\s]+)"?""")  # pip's console script form for a long shebang
# the body of checkov's console script (checkov 3)
CHECKOV_CONSOLE_SCRIPT = ("from checkov.main import Checkov", "sys.exit(Checkov().run())")


@dataclass(frozen=True)
class CheckovInstall:
    """checkov behind its own Python console script: that script's Python and the installed
    distribution's version and RECORD digest (``checkov-*.dist-info``), read without starting it."""
    python: str
    version: str
    record_sha256: str
    plain_shebang: bool  # `#!/path/python` alone (no interpreter options), or pip's trampoline


def _shebang_python(lines: list[str]) -> str | None:
    interp = (lines[0][2:].split() or [""])[0]
    trampoline = _TRAMPOLINE.match(lines[1])
    if Path(interp).name in {"sh", "bash"} and trampoline:
        interp = trampoline.group(1)
    return interp if Path(interp).name.startswith("python") else None


def checkov_console_python(script: Path) -> tuple[str, bool] | None:
    """The Python named by checkov's console script ``script`` and whether the script is exactly
    checkov's own (no interpreter options, checkov's entry point); None when it is not a Python
    script importing checkov.main (a wrapper, a packaged binary, unreadable)."""
    try:
        with open(script, "rb") as fh:
            text = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].startswith("#!") or CHECKOV_CONSOLE_SCRIPT[0] not in text:
        return None
    python = _shebang_python(lines)
    if python is None:
        return None
    plain = len(lines[0][2:].split()) == 1 or bool(_TRAMPOLINE.match(lines[1]))
    return python, plain and all(part in text for part in CHECKOV_CONSOLE_SCRIPT)


def checkov_install(script: Path) -> CheckovInstall | None:
    """What :class:`CheckovInstall` says of ``script``, or None on any doubt (a wrapper, a packaged
    binary, no single dist-info): then only running the script tells."""
    console = checkov_console_python(script)
    if console is None:
        return None
    python, plain = console
    dists = list(Path(python).parent.parent.glob("lib/python3*/site-packages/checkov-*.dist-info"))
    if len(dists) != 1:
        return None
    try:
        meta = (dists[0] / "METADATA").read_text(encoding="utf-8", errors="replace")
        record = hashlib.sha256((dists[0] / "RECORD").read_bytes()).hexdigest()
    except OSError:
        return None
    version = next((line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Version:")), "")
    return CheckovInstall(python, version, record, plain) if version else None


# what doctor asks checkov's own Python instead of `checkov --version` (which imports every runner
# and check registry, about 5 s of CPU): that it starts and imports the installed package's version
_CHECKOV_PROBE = "import checkov.version, sys; sys.stdout.write(checkov.version.version)"


def checkov_version(binary: str) -> ToolVersion:
    path = runner.get_runner().which(binary)
    if path is None:
        raise ToolMissing(f"checkov was not found ('{binary}')", hint=CHECKOV_INSTALL)
    installed = checkov_install(Path(path))
    if installed is not None:
        probe = runner.run([installed.python, "-c", _CHECKOV_PROBE], timeout=60)
        if probe.ok and probe.stdout.strip() == installed.version:
            return ToolVersion(name="checkov", path=path, version=installed.version)
    # not checkov's own console script, or its Python disagrees: ask it (the error, if any, is its own)
    res = runner.run([binary, "--version"], env=CHECKOV_ENV, timeout=120)
    version = res.stdout.strip().splitlines()[-1] if res.ok and res.stdout.strip() else ""
    if not version:
        raise ToolMissing(f"'{binary}' did not report a version: {res.stderr.strip()[:200]}", hint=CHECKOV_INSTALL)
    return ToolVersion(name="checkov", path=path, version=version)


def safe(fn, *args, **kwargs):
    """(result, error) instead of raising: for doctor-style reports."""
    try:
        return fn(*args, **kwargs), None
    except DeployctlError as exc:
        return None, exc
