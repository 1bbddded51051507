"""Environment configuration: one place per environment.

``terraform/envs/defaults.toml`` holds what every environment shares (the
application, its functions, tables, parameters, default capacity, retention,
throttling and alarm thresholds). ``terraform/envs/<env>/env.toml`` overrides
any of it for that environment. Tables merge key by key; lists and scalars
replace.

Precedence for the settings that also have flags or variables:
    command-line flag  >  DEPLOYCTL_* environment variable  >  env.toml  >  defaults.toml

Everything is validated on load; an error names the file, the dotted key,
what was expected and what was found.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployctl.errors import ConfigError, ProjectNotFound, UnknownEnvironment
from deployctl.schema import Bool, Int, Invalid, ListOf, MapOf, Num, Str, Table

DEFAULTS_FILE = "defaults.toml"
ENV_FILE = "env.toml"
ROOT_MARKER = Path("terraform") / "envs" / DEFAULTS_FILE

NAME = r"[a-z][a-z0-9-]{0,30}"
REGION = r"[a-z]{2}(-gov)?-[a-z]+-\d"
# The environment's name (its folder under terraform/envs/): part of every resource name, the API
# stage, the SSM prefix and the state key. deployctl.limits checks the names it makes.
ENV_NAME = r"[a-z][a-z0-9-]{0,19}"
# An S3 general purpose bucket name (3-63, lowercase; deployctl.limits checks the remaining rules).
BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
# A CORS origin API Gateway puts into Access-Control-Allow-Origin: "*" or scheme://host[:port],
# host a DNS name or a bracketed IPv6 address (no spaces, no control characters, no path).
ORIGIN = r"\*|https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?"
# Tag values (app.name, owner, cost_center land in the provider's default_tags): at most 256
# characters of letters, digits, spaces and _ . : / = + - @ (AWS "Tag naming limits and
# requirements"; provider validation of tag values).
TAG_VALUE = Str(pattern=r"[\w .:/=+\-@]*", max_len=256, expected_text="a tag value (letters, digits, spaces, _.:/=+-@)")

FUNCTION = Table(
    {
        # dotted Python path of the handler inside lambda_src/, e.g. "items.create_item.handler"
        # Lambda's Handler is at most 128 characters (CreateFunction API reference)
        "handler": Str(pattern=r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+", max_len=128,
                       expected_text="a dotted handler path like 'items.create_item.handler'"),
        # Lambda's Description is at most 256 characters (CreateFunction API reference)
        "description": Str(max_len=256),
        "memory_mb": Int(min=128, max=10240),
        "timeout_s": Int(min=1, max=900),
        # 0 = no reservation (unreserved account concurrency)
        "reserved_concurrency": Int(min=0, max=1000),
        # tables this function reads and/or writes (names from [tables])
        "tables_read": ListOf(Str(pattern=NAME)),
        "tables_write": ListOf(Str(pattern=NAME)),
        # whether the function reads its configuration from SSM under its prefix
        "reads_parameters": Bool(),
        # plain, non-secret environment variables; Lambda's keys are [a-zA-Z]([a-zA-Z0-9_])+ (two characters
        # at least), all of them together at most 4 KB (deployctl.limits checks the total)
        "environment": MapOf(Str(max_len=4096), key_pattern=r"[A-Z][A-Z0-9_]+"),
        # layers (names from [layers]) attached to the function, in order; at most 5
        "layers": ListOf(Str(pattern=NAME)),
    },
    required=("handler",),
)

MAX_LAYERS = 5  # Lambda's limit of layers per function

LAYER = Table(
    {
        # PublishLayerVersion's Description is at most 256 characters
        "description": Str(max_len=256),
        # pinned requirements (with --hash lines where practical), relative to lambda_src/
        "requirements": Str(pattern=r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.txt", max_len=1024,
                            expected_text="a path under lambda_src/ like 'layers/shared/requirements.txt'"),
    },
    required=("requirements",),
)

# A key attribute name: DynamoDB accepts 1-255 bytes for the name of a key attribute
# (DynamoDB "Attribute names" quotas); these characters are one byte each.
ATTRIBUTE = r"[A-Za-z_][A-Za-z0-9_.-]{0,254}"

GSI = Table(
    {
        "partition_key": Str(pattern=ATTRIBUTE),
        "partition_key_type": Str(choices=("S", "N", "B")),
        "sort_key": Str(pattern=f"({ATTRIBUTE})?"),
        "sort_key_type": Str(choices=("S", "N", "B")),
        "projection_type": Str(choices=("ALL", "KEYS_ONLY")),
    },
    required=("partition_key",),
)

CAPACITY = Table(
    {
        "read_min": Int(min=1, max=40000),
        "read_max": Int(min=1, max=40000),
        "write_min": Int(min=1, max=40000),
        "write_max": Int(min=1, max=40000),
        "target_utilization": Num(min=20, max=90),
    }
)

TABLE = Table(
    {
        "partition_key": Str(pattern=ATTRIBUTE),
        "partition_key_type": Str(choices=("S", "N", "B")),
        "sort_key": Str(pattern=f"({ATTRIBUTE})?"),
        "sort_key_type": Str(choices=("S", "N", "B")),
        "billing_mode": Str(choices=("PAY_PER_REQUEST", "PROVISIONED")),
        "capacity": CAPACITY,
        "stream": Bool(),
        "ttl_attribute": Str(pattern=r"([A-Za-z_][A-Za-z0-9_]{0,254})?"),
        "gsis": MapOf(GSI, key_pattern=r"[A-Za-z][A-Za-z0-9_.-]{2,254}"),
    },
    required=("partition_key",),
)

# how `deployctl secret ensure|rotate` makes a secure parameter's value
SECRET_GENERATORS = ("random32", "none")

PARAMETER = Table(
    {
        # SSM PutParameter Description: at most 1024 characters (API reference; provider validation)
        "description": Str(max_len=1024),
        # a plain value; never put secrets here: declare "secure = true" and deployctl generates it.
        # A Standard-tier String holds at most 4 KB (PutParameter Value); newlines are allowed
        "value": Str(max_len=4096, allow_control=True),
        "secure": Bool(),
        # secure only: "random32" (default: 32 random bytes, base64url) or "none" (set by hand)
        "generate": Str(choices=SECRET_GENERATORS),
        # secure only: what replacing the value breaks (shown by `deployctl secret rotate`)
        "invalidates": Str(max_len=1024),
    }
)

# [rollout]: progressive delivery (`deployctl promote --strategy`, deployctl.delivery). CLI-only, never rendered.
ROLLOUT_STEP = Table({"weight": Int(min=1, max=100), "bake_s": Int(min=0, max=86400)}, required=("weight",))
ROLLOUT_TARGET = {
    # a SAM DeploymentPreference type (Canary10Percent5Minutes, ..., AllAtOnce) or a name from [rollout.strategies]
    "strategy": Str(pattern=r"[A-Za-z][A-Za-z0-9-]*"),
    # the new version's Errors / Invocations (ExecutedVersion dimension), in percent, that rolls back
    "error_rate_percent": Num(min=0, max=100),
    # the pre-traffic smoke event: a route of api/openapi.json (+ body), or a JSON file under the project
    "smoke_route": Str(pattern=r"[A-Z]+ /\S*", expected_text='"METHOD /path", e.g. "GET /items"'),
    "smoke_body": Str(),
    "smoke_event": Str(pattern=r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.json", expected_text="a .json path under the project"),
}
ROLLOUT = Table(
    {
        **ROLLOUT_TARGET,
        "poll_s": Int(min=1, max=300),
        "strategies": MapOf(Table({"steps": ListOf(ROLLOUT_STEP, min_items=1)}, required=("steps",)),
                            key_pattern=r"[A-Za-z][A-Za-z0-9-]*"),
        "functions": MapOf(Table(dict(ROLLOUT_TARGET))),
    }
)

SCHEMA = Table(
    {
        "app": Table(
            {
                "name": Str(pattern=r"[a-z][a-z0-9-]{1,20}", expected_text="a lowercase name of 2-21 characters"),
                "owner": TAG_VALUE,
                "cost_center": TAG_VALUE,
            },
            required=("name",),
        ),
        "aws": Table(
            {
                "region": Str(pattern=REGION, expected_text="an AWS region like 'eu-west-1'"),
                # the account-id guard: the only account this environment may be applied to
                "account_id": Str(pattern=r"(\d{12})?", expected_text="a 12-digit AWS account id"),
                # S3 path-style addressing (bucket in the path, not the host name): needed by emulators
                # reached through a host name, e.g. LocalStack's http://localhost:4566; rendered into
                # backend.hcl (use_path_style) and the provider (s3_use_path_style); boto3 follows it too
                "s3_use_path_style": Bool(),
            },
            required=("region",),
        ),
        "tools": Table(
            {
                "terraform": Str(),
                "checkov": Str(),
                "terraform_min_version": Str(pattern=r"\d+\.\d+(\.\d+)?"),
                # the CPython of [lambda].runtime that compiles the zips' bytecode (path or command;
                # "none" = ship no .pyc); "" = found on PATH or under pyenv (deployctl.artifacts.bytecode)
                "lambda_python": Str(),
            }
        ),
        "state": Table(
            {
                # "" = derived: "<app>-tfstate-<account_id>-<region>"
                "bucket": Str(pattern=f"({BUCKET})?", expected_text='an S3 bucket name (3-63, lowercase) or ""'),
                # "" = derived: "<app>/<env>/terraform.tfstate". An S3 key is at most 1024 bytes and the
                # lock file adds ".tflock"; no control characters (S3 cannot list them in XML, and
                # they have no place in backend.hcl); no leading or trailing "/" and no "//" (Terraform's
                # s3 backend refuses them: "The value must not start or end with "/"", "Value must not
                # contain "//"", seen with terraform 1.11 init); deployctl.limits checks the UTF-8 bytes
                "key": Str(pattern=r"([^/](/?[^/])*)?", max_len=1017,
                           expected_text='an S3 object key (no leading or trailing "/", no "//") or ""'),
            }
        ),
        "ci": Table(
            {
                # the one GitHub repository whose workflows get the OIDC plan/apply roles; "" = no CI roles
                "github_repository": Str(
                    pattern=r"([A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100})?",
                    expected_text='"owner/name" of a GitHub repository, or "" (no CI roles)',
                ),
                # reuse the account's token.actions.githubusercontent.com provider; "" = create it
                "oidc_provider_arn": Str(
                    pattern=r"(arn:aws[a-z-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com)?",
                    expected_text='"" or arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com',
                ),
            }
        ),
        "artifacts": Table(
            {
                # "" = derived: "<app>-<env>-artifacts-<account_id>"
                "bucket": Str(pattern=f"({BUCKET})?", expected_text='an S3 bucket name (3-63, lowercase) or ""'),
                "noncurrent_version_days": Int(min=1, max=3650),
            }
        ),
        "protection": Table(
            {
                # prod-style protections: deletion protection, prevent_destroy, no force_destroy
                "deletion_protection": Bool(),
                "kms_deletion_window_days": Int(min=7, max=30),
            }
        ),
        "logs": Table({"retention_days": Int(min=1, max=3653)}),
        "lambda": Table(
            {
                "runtime": Str(pattern=r"python3\.(1[2-9]|[2-9]\d)", expected_text="python3.12 or newer"),
                "architecture": Str(choices=("x86_64", "arm64")),
                "memory_mb": Int(min=128, max=10240),
                "timeout_s": Int(min=1, max=900),
                "log_level": Str(choices=("DEBUG", "INFO", "WARNING", "ERROR")),
                # deployctl prune: the newest N function/layer versions always kept (default 5)
                "keep_versions": Int(min=1, max=1000),
            }
        ),
        "functions": MapOf(FUNCTION),
        "layers": MapOf(LAYER, key_pattern=NAME),
        "tables": MapOf(TABLE),
        # no "//" and no trailing "/": SSM refuses such names
        "parameters": MapOf(PARAMETER, key_pattern=r"[a-z][a-z0-9_-]*(/[a-z0-9_-]+)*"),
        "api": Table(
            {
                "throttle_rate_limit": Num(min=1, max=100000),
                "throttle_burst_limit": Int(min=1, max=100000),
                "cors_allowed_origins": ListOf(Str(pattern=ORIGIN, max_len=1024,
                                                   expected_text='"*" or an origin like "https://example.com:8443"')),
                "data_trace": Bool(),
                "logging_level": Str(choices=("OFF", "ERROR", "INFO")),
            }
        ),
        "alarms": Table(
            {
                "email": Str(pattern=r"([^@\s]+@[^@\s]+\.[^@\s]+)?", max_len=254, expected_text="an email address or \"\""),
                "period_s": Int(min=60, max=86400),
                "evaluation_periods": Int(min=1, max=100),
                "api_5xx_threshold": Num(min=0),
                "api_p99_latency_ms": Num(min=1),
                "lambda_errors_threshold": Num(min=0),
                "lambda_throttles_threshold": Num(min=0),
                "dlq_depth_threshold": Num(min=0),
                "dynamodb_throttles_threshold": Num(min=0),
            }
        ),
        "rollout": ROLLOUT,
    },
    required=("app", "aws", "functions", "tables"),
)


def find_root(start: Path | None = None, *, source: str = "--root", cwd: Path | None = None) -> Path:
    """The project root.

    ``start`` (from ``--root``/``DEPLOYCTL_ROOT``; named by ``source`` in errors) must
    hold ``terraform/envs/defaults.toml``. Without it: ``DEPLOYCTL_ROOT`` when set, else
    the nearest ancestor of the working directory holding that file. There is no other
    fallback (never the checkout deployctl was installed from): outside a project this is
    a :class:`ProjectNotFound` (exit 2) saying how to point at one.
    """
    if start is None and os.environ.get("DEPLOYCTL_ROOT"):
        start, source = Path(os.environ["DEPLOYCTL_ROOT"]), "DEPLOYCTL_ROOT"
    if start is not None:
        start = Path(start).expanduser()
        if (start / ROOT_MARKER).is_file():
            return start.resolve()
        what = "does not exist" if not start.exists() else "is not a directory" if not start.is_dir() \
            else f"holds no {ROOT_MARKER.as_posix()}"
        raise ProjectNotFound(
            f"{source} {start}: {what}",
            hint=f"give the directory of a project checkout, the one holding {ROOT_MARKER.as_posix()}",
        )
    here = (cwd or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    raise ProjectNotFound(
        f"no {ROOT_MARKER.as_posix()} found in {here} or any parent",
        hint="run deployctl inside a project checkout, or point at one with --root DIR or DEPLOYCTL_ROOT=DIR",
    )


def env_from_cwd(root: Path, cwd: Path | None = None) -> str | None:
    """The env whose folder (``terraform/envs/<env>/``, or a directory below it) holds the working directory."""
    envs = (root / "terraform" / "envs").resolve()
    try:
        rel = (cwd or Path.cwd()).resolve().relative_to(envs)
    except (ValueError, OSError):
        return None
    name = rel.parts[0] if rel.parts else None
    return name if name and (envs / name).is_dir() else None


def known_envs(root: Path) -> list[str]:
    envs = root / "terraform" / "envs"
    try:
        return sorted(p.name for p in envs.iterdir() if (p / ENV_FILE).is_file()) if envs.is_dir() else []
    except OSError as exc:
        raise ConfigError(f"cannot list the environments: {exc.strerror}", where=str(envs),
                          hint="check the directory's permissions") from None


def _read_toml(path: Path) -> dict:
    """Parse one config file; every way it can be unreadable is a one-line ConfigError naming it."""
    try:
        with path.open("rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", where=str(path), hint="it must be a TOML file") from None
    except PermissionError:
        raise ConfigError("permission denied reading it", where=str(path),
                          hint="make it readable by this user (chmod u+r)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", where=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})", where=str(path),
            hint="TOML files must be UTF-8: re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path), hint="fix the syntax") from None


def _merge(base: dict, over: Mapping, origin: dict[str, Path], source: Path, prefix: str = "") -> dict:
    """Deep-merge ``over`` into ``base`` (in place), recording which file set each key."""
    for key, value in over.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, source, dotted)
        else:
            base[key] = copy.deepcopy(value)
            _mark(origin, dotted, value, source)
    return base


def _mark(origin: dict[str, Path], dotted: str, value: Any, source: Path) -> None:
    origin[dotted] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(origin, f"{dotted}.{k}", v, source)


@dataclass
class EnvConfig:
    """The validated, merged configuration of one environment."""

    name: str
    root: Path
    data: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    origin: dict[str, Path] = field(default_factory=dict)

    # Convenience accessors used all over the CLI.
    @property
    def env_dir(self) -> Path:
        return self.root / "terraform" / "envs" / self.name

    @property
    def work_dir(self) -> Path:
        """Where deployctl keeps this env's generated, git-ignored state (plans, caches, manifests)."""
        return self.root / ".deployctl" / self.name

    @property
    def app(self) -> str:
        return self.data["app"]["name"]

    @property
    def protected(self) -> bool:
        """prod, or an env with ``protection.deletion_protection``: changes to it need confirmation and a clean commit."""
        return self.name == "prod" or bool(self.get("protection.deletion_protection"))

    @property
    def region(self) -> str:
        return self.data["aws"]["region"]

    @property
    def account_id(self) -> str:
        return self.data["aws"].get("account_id", "")

    @property
    def functions(self) -> dict[str, dict]:
        return self.data["functions"]

    @property
    def layers(self) -> dict[str, dict]:
        return self.data.get("layers", {})

    @property
    def tables(self) -> dict[str, dict]:
        return self.data["tables"]

    @property
    def prefix(self) -> str:
        """Resource name prefix, e.g. ``deployctl-demo-dev``."""
        return f"{self.app}-{self.name}"

    def artifact_bucket(self) -> str:
        explicit = self.data.get("artifacts", {}).get("bucket", "")
        if explicit:
            return explicit
        account = self.account_id or "local"
        return f"{self.prefix}-artifacts-{account}"

    def state_bucket(self) -> str:
        explicit = self.data.get("state", {}).get("bucket", "")
        if explicit:
            return explicit
        account = self.account_id or "local"
        return f"{self.app}-tfstate-{account}-{self.region}"

    def state_key(self) -> str:
        return self.data.get("state", {}).get("key", "") or f"{self.app}/{self.name}/terraform.tfstate"

    def where(self, dotted: str) -> str:
        """The file that set ``dotted`` (for error messages). A list item (``key[3]``) is
        reported against the file that set the list: lists replace, they do not merge."""
        probe = re.sub(r"(\[\d+\])+$", "", dotted)
        while probe:
            if probe in self.origin:
                return str(self.origin[probe])
            probe = probe.rpartition(".")[0]
        return str(self.files[-1]) if self.files else "config"

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def load_env(name: str | None, root: Path | None = None) -> EnvConfig:
    """Load, merge and validate the configuration of environment ``name``."""
    root = root or find_root()
    envs = known_envs(root)
    if not name:
        raise UnknownEnvironment(
            "no environment given",
            hint=f"pass --env, set DEPLOYCTL_ENV or run from terraform/envs/<env>/; "
                 f"known environments: {', '.join(envs) or 'none'}",
        )
    env_dir = root / "terraform" / "envs" / name
    if name not in envs and "/" not in name and name not in (".", "..") and env_dir.is_dir():
        env_file = env_dir / ENV_FILE
        if env_file.exists():  # not a regular file
            raise ConfigError("is not a regular file", where=str(env_file), hint="it must be a TOML file")
        example = next((e for e in envs), None)
        raise ConfigError(
            f"environment '{name}' has a folder but no {ENV_FILE}",
            where=str(env_file),
            hint=(f"create it, e.g. cp {root / 'terraform' / 'envs' / example / ENV_FILE} {env_file}, "
                  "then set aws.region and aws.account_id") if example
            else "create it with [aws] region = \"...\" and account_id = \"...\"",
        )
    if name not in envs:
        raise UnknownEnvironment(
            f"unknown environment '{name}'",
            where=str(root / "terraform" / "envs"),
            hint=f"known environments: {', '.join(envs) or 'none'}",
        )
    if not re.fullmatch(ENV_NAME, name):
        raise ConfigError(
            f"environment name {name!r}: expected {ENV_NAME} (lowercase, at most 20 characters: it is part of "
            "every resource name, the API stage and the state key)",
            where=str(env_dir), hint="rename the folder",
        )
    defaults_path = root / "terraform" / "envs" / DEFAULTS_FILE
    env_path = root / "terraform" / "envs" / name / ENV_FILE
    return _build(name, root, [defaults_path, env_path])


def load_defaults(root: Path | None = None) -> EnvConfig:
    """The validated shared configuration (defaults.toml only), for env-less commands like ``package``."""
    root = root or find_root()
    return _build("defaults", root, [root / "terraform" / "envs" / DEFAULTS_FILE])


def _build(name: str, root: Path, files: list[Path]) -> EnvConfig:
    """Merge ``files`` in order (later wins), validate, and cross-check."""
    origin: dict[str, Path] = {}
    merged: dict = {}
    for path in files:
        _merge(merged, _read_toml(path), origin, path)
    cfg = EnvConfig(name=name, root=root, data=merged, files=files, origin=origin)
    try:
        cfg.data = SCHEMA.check("", merged)
    except Invalid as exc:
        where = cfg.where(exc.key)
        if exc.missing:
            raise ConfigError(
                f"key '{exc.key}' is missing: expected {exc.expected}", where=where, hint="add it to the file"
            ) from None
        raise ConfigError(f"key '{exc.key}': expected {exc.expected}, found {exc.found_text}", where=where) from None
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: EnvConfig) -> None:
    tables = set(cfg.tables)
    for fname, fn in cfg.functions.items():
        for key in ("tables_read", "tables_write"):
            for t in fn.get(key, []):
                if t not in tables:
                    dotted = f"functions.{fname}.{key}"
                    raise ConfigError(
                        f"key '{dotted}': expected a table name from [tables] ({', '.join(sorted(tables))}), found {t!r}",
                        where=cfg.where(dotted),
                    )
    for lname, layer in cfg.layers.items():
        if ".." in layer["requirements"].split("/"):
            dotted = f"layers.{lname}.requirements"
            raise ConfigError(
                f"key '{dotted}': expected a path inside lambda_src/, found {layer['requirements']!r}",
                where=cfg.where(dotted),
            )
    for fname, fn in cfg.functions.items():
        names = fn.get("layers", [])
        dotted = f"functions.{fname}.layers"
        unknown = [n for n in names if n not in cfg.layers]
        if unknown:
            raise ConfigError(
                f"key '{dotted}': expected layer names from [layers] ({', '.join(sorted(cfg.layers)) or 'none defined'}), "
                f"found {unknown[0]!r}",
                where=cfg.where(dotted),
            )
        if len(names) > MAX_LAYERS or len(set(names)) != len(names):
            raise ConfigError(
                f"key '{dotted}': expected at most {MAX_LAYERS} distinct layers, found {names!r}",
                where=cfg.where(dotted),
            )
    for tname, table in cfg.tables.items():
        cap = table.get("capacity", {})
        for kind in ("read", "write"):
            lo, hi = cap.get(f"{kind}_min"), cap.get(f"{kind}_max")
            if lo is not None and hi is not None and lo > hi:
                dotted = f"tables.{tname}.capacity.{kind}_max"
                raise ConfigError(
                    f"key '{dotted}': expected a number >= {kind}_min ({lo}), found number {hi}",
                    where=cfg.where(dotted),
                )
    for pname, param in cfg.data.get("parameters", {}).items():
        if param.get("secure") and param.get("value"):
            dotted = f"parameters.{pname}.value"
            raise ConfigError(
                f"key '{dotted}': a secure parameter's value must not be in a config file (it would land in tfvars)",
                where=cfg.where(dotted),
                hint=(f"remove it: deployctl secret ensure --env {cfg.name} generates one, or, with generate = \"none\", "
                      f"aws ssm put-parameter --type SecureString --key-id alias/{cfg.prefix} --name {cfg_prefix(cfg)}{pname}"),
            )
        for key in ("generate", "invalidates"):
            if key in param and not param.get("secure"):
                dotted = f"parameters.{pname}.{key}"
                raise ConfigError(f"key '{dotted}': only a secure parameter (secure = true) has a {key}",
                                  where=cfg.where(dotted), hint=f"remove {key}, or set secure = true")
    _rollout_checks(cfg)
    if cfg.data.get("protection", {}).get("deletion_protection") and not cfg.account_id:
        raise ConfigError(
            "key 'aws.account_id' is missing: a protected environment needs the account-id guard",
            where=cfg.where("aws.account_id"),
            hint="set aws.account_id to the 12-digit account this environment lives in",
        )


def _rollout_checks(cfg: EnvConfig) -> None:
    """Custom rollout steps: weights rising to 100; per-function overrides name known functions."""
    rollout = cfg.data.get("rollout", {})
    for sname, strategy in rollout.get("strategies", {}).items():
        weights = [step["weight"] for step in strategy["steps"]]
        if weights[-1] != 100 or any(b <= a for a, b in zip(weights, weights[1:], strict=False)):
            dotted = f"rollout.strategies.{sname}.steps"
            raise ConfigError(f"key '{dotted}': expected weights rising step by step to 100, found {weights}",
                              where=cfg.where(dotted), hint="e.g. steps = [{weight = 10, bake_s = 60}, {weight = 100}]")
    for fname in rollout.get("functions", {}):
        if fname not in cfg.functions:
            dotted = f"rollout.functions.{fname}"
            raise ConfigError(f"key '{dotted}': expected a function name from [functions] "
                              f"({', '.join(sorted(cfg.functions))}), found {fname!r}", where=cfg.where(dotted))


@dataclass
class Settings:
    """Process-wide settings resolved from flags and DEPLOYCTL_* variables.

    A value of ``None`` means "not given on the command line or in the
    environment"; the env config (then the defaults) decide.
    """

    env: str | None = None
    json: bool = False
    debug: bool = False
    terraform_bin: str | None = None
    checkov_bin: str | None = None
    root: Path | None = None
    assume_yes: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if environ is None else environ
        return cls(
            env=e.get("DEPLOYCTL_ENV") or None,
            json=_truthy(e.get("DEPLOYCTL_JSON")),
            debug=_truthy(e.get("DEPLOYCTL_DEBUG")),
            terraform_bin=e.get("DEPLOYCTL_TERRAFORM") or None,
            checkov_bin=e.get("DEPLOYCTL_CHECKOV") or None,
            root=Path(e["DEPLOYCTL_ROOT"]) if e.get("DEPLOYCTL_ROOT") else None,
        )

    def project_root(self) -> Path:
        """``--root`` > ``DEPLOYCTL_ROOT`` > the nearest ancestor of the cwd holding
        ``terraform/envs/defaults.toml``; else ProjectNotFound (exit 2)."""
        if self.root:
            from_var = os.environ.get("DEPLOYCTL_ROOT")
            source = "DEPLOYCTL_ROOT" if from_var and Path(from_var) == Path(self.root) else "--root"
            return find_root(Path(self.root), source=source)
        return find_root()

    def resolve_env(self, root: Path | None = None) -> str | None:
        """``--env`` > ``DEPLOYCTL_ENV`` > the env folder the working directory is in. Records the
        answer in ``self.env`` (so JSON envelopes name it)."""
        if not self.env:
            self.env = env_from_cwd(root or self.project_root())
        return self.env

    def load_env(self, name: str | None = None) -> EnvConfig:
        root = self.project_root()
        return load_env(name or self.resolve_env(root), root)

    def terraform(self, cfg: EnvConfig | None = None) -> str:
        """flag > DEPLOYCTL_TERRAFORM > env.toml > defaults.toml > 'terraform'."""
        if self.terraform_bin:
            return self.terraform_bin
        if cfg is not None and cfg.get("tools.terraform"):
            return cfg.get("tools.terraform")
        return "terraform"

    def checkov(self, cfg: EnvConfig | None = None) -> str:
        """flag > DEPLOYCTL_CHECKOV > env.toml > defaults.toml > checkov on PATH > the
        project's own .venv-checkov (made by scripts/setup)."""
        if self.checkov_bin:
            return self.checkov_bin
        if cfg is not None and cfg.get("tools.checkov") and cfg.get("tools.checkov") != "checkov":
            return cfg.get("tools.checkov")
        import shutil

        if shutil.which("checkov"):
            return "checkov"
        try:
            local = self.project_root() / ".venv-checkov" / "bin" / "checkov"
        except ConfigError:
            return "checkov"
        return str(local) if local.exists() else "checkov"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def cfg_prefix(cfg: EnvConfig) -> str:
    """SSM prefix of an environment (deployctl.naming.parameter_prefix re-exports it)."""
    return f"/{cfg.name}/{cfg.app}/"
