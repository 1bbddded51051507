"""Render an environment's tfvars and backend config (jinja2, StrictUndefined).

Values only ever reach the files through the ``tojson``/``hcl`` filters, so
every literal is valid JSON/HCL whatever it contains. The tfvars file is
written atomically and parsed back before it replaces the old one. Secure
parameters' values are never rendered.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployctl import limits
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError
from deployctl.fsutil import atomic_write

TFVARS_FILE = "deployctl.auto.tfvars.json"
BACKEND_FILE = "backend.hcl"
TEMPLATES = Path(__file__).parent / "templates"

# The env config sections passed to Terraform, with the same key names (the
# CLI-only section `tools` is not rendered; `state` is rendered derived, for the CI roles' grants).
SECTIONS = (
    "app", "aws", "artifacts", "protection", "logs", "lambda", "layers", "functions", "tables", "parameters", "api",
    "alarms", "ci", "state",
)
# Sections the schema does not require; an absent one renders as {} (the
# roots' optional() defaults apply).
OPTIONAL_SECTIONS = ("artifacts", "protection", "logs", "lambda", "layers", "parameters", "api", "alarms", "ci", "state")
ARTIFACT_FIELDS = ("s3_bucket", "s3_key", "s3_object_version")
# a layer version is replaced only when its content changes: source_code_hash is the zip's base64 SHA-256
LAYER_ARTIFACT_FIELDS = (*ARTIFACT_FIELDS, "source_code_hash")
# Parameter keys only deployctl reads (how a secret is generated, what rotating it breaks).
SECRET_ONLY_KEYS = ("generate", "invalidates")


@dataclass
class Rendered:
    tfvars_path: Path
    backend_path: Path
    tfvars: dict
    missing_artifacts: list[str]
    omitted_secrets: list[str]

    @property
    def missing_layers(self) -> list[str]:
        """Layers without a published artifact (the foundation plan only): not created yet."""
        return sorted(n for n, layer in self.tfvars.get("layers", {}).items() if not layer.get("s3_key"))

    def as_dict(self) -> dict:
        return {
            "tfvars": str(self.tfvars_path),
            "backend_config": str(self.backend_path),
            "keys": sorted(self.tfvars),
            "functions": {
                name: {k: fn.get(k, "") for k in ARTIFACT_FIELDS} for name, fn in sorted(self.tfvars["functions"].items())
            },
            "layers": {
                name: {k: layer.get(k, "") for k in LAYER_ARTIFACT_FIELDS}
                for name, layer in sorted(self.tfvars.get("layers", {}).items())
            },
            "missing_artifacts": self.missing_artifacts,
            "missing_layers": self.missing_layers,
            "omitted_secure_values": self.omitted_secrets,
        }


# -- filters -----------------------------------------------------------------


def _defined(value: Any) -> None:
    """Make jinja2's StrictUndefined raise when it reaches a filter."""
    if type(value).__name__ == "StrictUndefined":
        str(value)


def to_json(value: Any) -> str:
    """A JSON literal (sorted keys, stable): the tfvars filter."""
    _defined(value)
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"value cannot be written as JSON: {exc}") from None


def to_hcl(value: Any) -> str:
    """An HCL literal: strings quoted and escaped (also ``${``/``%{`` templates)."""
    _defined(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value, allow_nan=False)
    if isinstance(value, str):
        return _hcl_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_hcl(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{to_hcl(str(k))} = {to_hcl(v)}" for k, v in sorted(value.items())) + " }"
    if value is None:
        return "null"
    raise ConfigError(f"value of type {type(value).__name__} cannot be written as HCL")


# HCL's own escapes (hclsyntax spec, "Template Literals"): \n \r \t \" \\ and \uNNNN; JSON's \b
# and \f are not among them, so every other control character is written as \uNNNN.
_HCL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _hcl_string(value: str) -> str:
    """A quoted HCL string literal holding exactly ``value`` (also ``${``/``%{``, which HCL would
    otherwise read as a template: written ``$${``/``%%{``)."""
    out = []
    for ch in value:
        if ch in _HCL_ESCAPES:
            out.append(_HCL_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out).replace("${", "$${").replace("%{", "%%{") + '"'


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = to_json
    env.filters["hcl"] = to_hcl
    return env


def render_template(template: str, context: dict, *, source: str | None = None) -> str:
    """Render a template file from ``templates/`` (or ``source`` text); a missing value is a ConfigError naming it."""
    import jinja2

    env = _environment()
    try:
        tpl = env.from_string(source) if source is not None else env.get_template(template)
        return tpl.render(**context)
    except jinja2.UndefinedError as exc:
        name = _undefined_name(str(exc))
        raise ConfigError(
            f"template needs a value for '{name}' and none was given",
            where=f"template {template}",
            hint="set it in the env config (or fix the template)",
        ) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template error: {exc}", where=f"template {template}") from None


def _undefined_name(message: str) -> str:
    m = re.search(r"'([^']+)' is undefined", message) or re.search(r"has no attribute '([^']+)'", message)
    return m.group(1) if m else message


# -- what gets rendered ----------------------------------------------------------


def load_manifest(cfg: EnvConfig) -> dict:
    """The artifact manifest written by publish-lambda (empty functions map if absent)."""
    from deployctl.artifacts.manifest import load_manifest as _load

    return _load(cfg)


def tfvars_context(cfg: EnvConfig, manifest: dict, *, allow_missing_artifacts: bool = False) -> tuple[dict, list[str], list[str]]:
    """The template context: (context, functions without an artifact, secure parameters whose value was dropped)."""
    limits.check(cfg)  # AWS's limits on every generated name, and names two sources would both make
    data = copy.deepcopy(cfg.data)
    ctx: dict[str, Any] = {"environment": cfg.name}
    for section in SECTIONS:
        if section in data:
            ctx[section] = data[section]
        elif section in OPTIONAL_SECTIONS:
            ctx[section] = {}
    # derived values are rendered already derived
    ctx["artifacts"] = {**ctx["artifacts"], "bucket": cfg.artifact_bucket()}
    ctx["aws"] = {**ctx["aws"], "account_id": cfg.account_id}
    ctx["state"] = {"bucket": cfg.state_bucket(), "key": cfg.state_key()}

    missing = _fill_artifacts(cfg, ctx["functions"], manifest.get("functions") or {}, ARTIFACT_FIELDS, "functions")
    for layer in ctx["layers"].values():
        layer.pop("requirements", None)  # a build input, not a Terraform one
    missing_layers = _fill_artifacts(cfg, ctx["layers"], manifest.get("layers") or {}, LAYER_ARTIFACT_FIELDS,
                                     "layers")
    if missing_layers and not allow_missing_artifacts:
        raise ConfigError(
            f"no published artifact for layer(s) {', '.join(sorted(missing_layers))}",
            where=str(cfg.env_dir / "artifacts.json"),
            hint=f"run deployctl publish-lambda --env {cfg.name} (a first deploy starts with plan --foundation)",
        )
    if missing and not allow_missing_artifacts:
        raise ConfigError(
            f"no published artifact for function(s) {', '.join(sorted(missing))}",
            where=str(cfg.env_dir / "artifacts.json"),
            hint=f"run deployctl publish-lambda --env {cfg.name} (a first deploy starts with plan --foundation)",
        )

    omitted: list[str] = []
    for pname, param in ctx["parameters"].items():
        if param.get("secure"):
            if "value" in param:
                omitted.append(pname)
            param.pop("value", None)
        for key in SECRET_ONLY_KEYS:  # deployctl's own settings (deployctl.infra.secrets), not Terraform's
            param.pop(key, None)
    ctx["lambda_"] = ctx.pop("lambda")
    return ctx, sorted(missing), omitted


def _fill_artifacts(cfg: EnvConfig, items: dict, entries: dict, fields: tuple[str, ...], section: str) -> list[str]:
    """Set each item's S3 location (and a layer's source_code_hash) from its manifest entry.

    Items without an entry get "" in every field and are returned (missing artifacts). An entry
    in another bucket than the env's artifact bucket is refused."""
    from deployctl.artifacts.manifest import check_bucket

    kind = "" if section == "functions" else "of layer "
    missing: list[str] = []
    for name, item in items.items():
        art = entries.get(name)
        if not art:
            missing.append(name)
            item.update(dict.fromkeys(fields, ""))
            continue
        check_bucket(cfg, section, name, art)
        try:
            item.update({"s3_bucket": str(art["bucket"]), "s3_key": str(art["key"]),
                         "s3_object_version": str(art.get("version_id") or "")})
            if "source_code_hash" in fields:
                item["source_code_hash"] = str(art["code_sha256"])
        except KeyError as exc:
            raise ConfigError(
                f"artifact manifest entry {kind}'{name}' has no {exc.args[0]!r}",
                where=str(cfg.env_dir / "artifacts.json"),
                hint=f"re-run deployctl publish-lambda --env {cfg.name}",
            ) from None
    return missing


def backend_context(cfg: EnvConfig) -> dict:
    return {"environment": cfg.name, "bucket": cfg.state_bucket(), "key": cfg.state_key(), "region": cfg.region,
            "use_path_style": bool(cfg.get("aws.s3_use_path_style"))}


def render_tfvars_text(cfg: EnvConfig, manifest: dict | None = None, *, allow_missing_artifacts: bool = False) -> tuple[str, dict, list[str], list[str]]:
    """(text, parsed, missing artifacts, omitted secure values) without writing anything."""
    manifest = load_manifest(cfg) if manifest is None else manifest
    ctx, missing, omitted = tfvars_context(cfg, manifest, allow_missing_artifacts=allow_missing_artifacts)
    text = render_template("tfvars.json.j2", ctx)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:  # a template bug; never write such a file
        raise ConfigError(f"rendered tfvars are not valid JSON: {exc}", where="template tfvars.json.j2") from None
    # normalise the layout (stable diffs, stable fingerprints)
    return json.dumps(parsed, indent=2, sort_keys=True) + "\n", parsed, missing, omitted


def render(cfg: EnvConfig, *, allow_missing_artifacts: bool = False) -> Rendered:
    """Write ``deployctl.auto.tfvars.json`` and ``backend.hcl`` into the env root."""
    text, parsed, missing, omitted = render_tfvars_text(cfg, allow_missing_artifacts=allow_missing_artifacts)
    tfvars_path = cfg.env_dir / TFVARS_FILE
    atomic_write(tfvars_path, text)
    if json.loads(tfvars_path.read_text(encoding="utf-8")) != parsed:  # parse back what landed on disk
        raise ConfigError("rendered tfvars did not read back identically", where=str(tfvars_path))
    return Rendered(tfvars_path, write_backend(cfg), parsed, missing, omitted)


def write_backend(cfg: EnvConfig) -> Path:
    """Write ``backend.hcl`` (state bucket, key, region, lockfile) into the env root."""
    backend_path = cfg.env_dir / BACKEND_FILE
    atomic_write(backend_path, render_template("backend.hcl.j2", backend_context(cfg)))
    return backend_path


