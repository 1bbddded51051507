"""Find external tools and read their versions (through deployctl.runner)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

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


def checkov_version(binary: str) -> ToolVersion:
    path = runner.get_runner().which(binary)
    if path is None:
        raise ToolMissing(f"checkov was not found ('{binary}')", hint=CHECKOV_INSTALL)
    res = runner.run([binary, "--version"], timeout=120)
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
