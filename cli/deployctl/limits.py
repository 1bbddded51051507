"""AWS's limits on every name and value deployctl generates from the env config.

``deployctl render`` (so also ``plan``, ``up`` and ``destroy``) checks the fully generated
names (prefix + key, exactly as :mod:`deployctl.naming` and the Terraform modules build
them), not only the config keys, and refuses, in one line naming the file and dotted key,
anything AWS would reject at apply time:

* a length or character set AWS does not accept (each rule cites where its limit comes from);
* two config entries, or a config entry and a name another module makes (the REST API's
  logs role, the CI roles, the alarms topic, ...), that would give one AWS name twice;
* table names whose IAM statement ids collide once normalised (``a-b`` and ``a--b``);
* a Lambda environment larger than 4 KB, or one setting a variable Lambda reserves.

Sources: the AWS API references (limits of each API's name parameter) and the validators of
hashicorp/terraform-provider-aws (``internal/service/<svc>``), which check the same values
at plan time. Where the two differ, the stricter one is used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from deployctl import naming
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError


@dataclass(frozen=True)
class NameRule:
    what: str
    max_len: int
    pattern: str  # the characters AWS accepts (full match)
    min_len: int = 1
    namespace: str | None = None  # names in one namespace must be unique (None: scoped to a parent)


# -- the rules ---------------------------------------------------------------------------
# Lambda CreateFunction FunctionName: 1-64 characters, [a-zA-Z0-9-_]+ (API reference,
# "FunctionName ... Length Constraints ... 64 characters"); provider validFunctionName.
LAMBDA_FUNCTION = NameRule("Lambda function name", 64, r"[a-zA-Z0-9_-]+", namespace="lambda-function")
# IAM CreateRole RoleName: 1-64, [\w+=,.@-]+ (IAM API reference); provider aws_iam_role name
# validation (StringLenBetween(1, 64), ^[\w+=,.@-]*$). Role names are unique in the account,
# whatever the role's path.
IAM_ROLE = NameRule("IAM role name", 64, r"[\w+=,.@-]+", namespace="iam-role")
# IAM PutRolePolicy PolicyName: 1-128, [\w+=,.@-]+ (unique per role only).
IAM_ROLE_POLICY = NameRule("IAM role policy name", 128, r"[\w+=,.@-]+")
# IAM policy statement Sid: [A-Za-z0-9] only (IAM JSON policy reference, "Sid"); unique per policy.
IAM_SID = NameRule("IAM statement id", 128, r"[A-Za-z0-9]+", namespace="iam-sid")
# CloudWatch Logs CreateLogGroup logGroupName: 1-512, [\.\-_/#A-Za-z0-9]+ (API reference;
# provider validLogGroupName).
LOG_GROUP = NameRule("CloudWatch log group name", 512, r"[.\-_/#A-Za-z0-9]+", namespace="log-group")
# SQS CreateQueue QueueName: up to 80 characters, alphanumerics, hyphens and underscores.
SQS_QUEUE = NameRule("SQS queue name", 80, r"[A-Za-z0-9_-]+", namespace="sqs")
# SNS CreateTopic Name: up to 256 characters, alphanumerics, hyphens and underscores.
SNS_TOPIC = NameRule("SNS topic name", 256, r"[A-Za-z0-9_-]+", namespace="sns")
# CloudWatch PutMetricAlarm AlarmName: 1-255 (API reference; provider StringLenBetween(1, 255)).
ALARM = NameRule("CloudWatch alarm name", 255, r"[^\x00-\x1f\x7f]+", namespace="alarm")
# CloudWatch PutDashboard DashboardName: up to 255, A-Z, a-z, 0-9, "-" and "_".
DASHBOARD = NameRule("CloudWatch dashboard name", 255, r"[A-Za-z0-9_-]+", namespace="dashboard")
# DynamoDB CreateTable TableName: 3-255, [a-zA-Z0-9_.-]+ (API reference; provider validation).
DYNAMODB_TABLE = NameRule("DynamoDB table name", 255, r"[a-zA-Z0-9_.-]+", min_len=3, namespace="dynamodb-table")
# Lambda PublishLayerVersion LayerName: 1-140, [a-zA-Z0-9-_]+ (API reference).
LAMBDA_LAYER = NameRule("Lambda layer name", 140, r"[a-zA-Z0-9_-]+", namespace="lambda-layer")
# Application Auto Scaling PutScalingPolicy PolicyName: 1-256, \p{Print}+ (unique per scalable target).
SCALING_POLICY = NameRule("Application Auto Scaling policy name", 256, r"[\x20-\x7e]+")
# KMS CreateAlias AliasName: 1-256, alias/[a-zA-Z0-9/_-]+, never alias/aws/ (KMS API reference).
KMS_ALIAS = NameRule("KMS alias", 256, r"alias/(?!aws/)[a-zA-Z0-9/_-]+", namespace="kms-alias")
# API Gateway CreateStage stageName: [A-Za-z0-9_-]+, up to 128 (API Gateway quotas and API reference).
API_STAGE = NameRule("API Gateway stage name", 128, r"[A-Za-z0-9_-]+")
# SSM PutParameter Name: a-zA-Z0-9_.-/ only (Parameter Store "Requirements and constraints for
# parameter names"); the length is bounded with the ARN below, hierarchies at 15 levels.
SSM_PARAMETER = NameRule("SSM parameter name", 2048, r"/[a-zA-Z0-9_.\-/]+", namespace="ssm-parameter")
SSM_ARN_MAX = 1011  # "including the full length of the parameter ARN, is 1011 characters"
SSM_MAX_DEPTH = 15

# S3 bucket naming rules (S3 User Guide, "General purpose bucket naming rules"): 3-63 characters,
# lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit,
# no "..", not an IP address, none of the reserved prefixes/suffixes.
S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# terraform/modules/artifact_bucket: the access-log bucket is "<artifact bucket>-access-logs"
ACCESS_LOGS_SUFFIX = "-access-logs"

# Lambda environment: keys [a-zA-Z]([a-zA-Z0-9_])+, "the total size of all environment variables
# doesn't exceed 4 KB" (Lambda developer guide, "Working with Lambda environment variables"; the
# API's Environment.Variables). Lambda measures the variables as one JSON object (its error quotes
# the "String measured"), so the compact JSON's UTF-8 bytes are counted here. Lambda refuses the
# reserved keys it sets itself (same guide, "Defined runtime environment variables").
LAMBDA_ENV_MAX_BYTES = 4096
LAMBDA_RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})

# Names other modules make from the prefix alone; a config key must never produce one of them.
# Reserved whether or not [ci] is set today: enabling CI later must not meet a function role
# of the same name (it would fail the foundation apply, or worse, the CI grants that name the
# CI roles by ARN would reach that function's role).
def fixed_names(cfg: EnvConfig) -> list[tuple[NameRule, str, str]]:
    p = cfg.prefix
    return [
        (IAM_ROLE, f"{p}-apigateway-cloudwatch", "the API Gateway logs role (terraform/modules/rest_api)"),
        (IAM_ROLE_POLICY, f"{p}-apigateway-logs", "the API Gateway logs role's policy (terraform/modules/rest_api)"),
        (IAM_ROLE, f"{p}-github-plan", "the CI plan role (terraform/modules/ci_identity)"),
        (IAM_ROLE, f"{p}-github-apply", "the CI apply role (terraform/modules/ci_identity)"),
        (SNS_TOPIC, f"{p}-alarms", "the alarms topic (terraform/modules/monitoring)"),
        (DASHBOARD, p, "the dashboard (terraform/modules/monitoring)"),
        (ALARM, f"{p}-api-5xx", "the API 5XX alarm (terraform/modules/monitoring)"),
        (ALARM, f"{p}-api-p99-latency", "the API latency alarm (terraform/modules/monitoring)"),
        (KMS_ALIAS, naming.kms_alias(cfg), "the env's KMS alias (terraform/modules/kms)"),
        (LOG_GROUP, f"/aws/apigateway/{p}/{cfg.name}/access", "the API access log group (terraform/modules/rest_api)"),
        (API_STAGE, cfg.name, "the API stage (the env name)"),
    ]


def table_statement_ids(table: str) -> tuple[str, str]:
    """The IAM statement ids of a table's read and write grants (naming.table_sid_suffix)."""
    suffix = naming.table_sid_suffix(table)
    return f"ReadTable{suffix}", f"WriteTable{suffix}"


def generated(cfg: EnvConfig) -> list[tuple[str, NameRule, str]]:
    """(dotted config key, rule, generated name) for every name derived from a config key."""
    out: list[tuple[str, NameRule, str]] = []
    for f in cfg.functions:
        key = f"functions.{f}"
        fname = naming.function_name(cfg, f)
        out += [
            (key, LAMBDA_FUNCTION, fname),
            (key, IAM_ROLE, fname),  # terraform/modules/lambda_function: the role is named like the function
            (key, IAM_ROLE_POLICY, f"{fname}-least-privilege"),
            (key, LOG_GROUP, f"/aws/lambda/{fname}"),
            (key, SQS_QUEUE, f"{fname}-dlq"),
            *((key, ALARM, f"{cfg.prefix}-lambda-{f}-{suffix}") for suffix in ("errors", "throttles", "dlq-depth")),
        ]
    for t, table in cfg.tables.items():
        key = f"tables.{t}"
        tname = naming.table_name(cfg, t)
        out += [(key, DYNAMODB_TABLE, tname), (key, ALARM, f"{cfg.prefix}-dynamodb-{t}-throttles")]
        out += [(key, IAM_SID, sid) for sid in table_statement_ids(t)]
        if table.get("billing_mode") == "PROVISIONED":
            targets = ["table", *(f"index-{g}" for g in table.get("gsis", {}))]
            out += [(key, SCALING_POLICY, f"{tname}-{target}-{kind}-target-tracking")
                    for target in targets for kind in ("read", "write")]
    for layer in cfg.layers:
        out.append((f"layers.{layer}", LAMBDA_LAYER, naming.layer_name(cfg, layer)))
    for param in cfg.data.get("parameters", {}):
        out.append((f"parameters.{param}", SSM_PARAMETER, naming.parameter_prefix(cfg) + param))
    return out


def _rule_problem(rule: NameRule, name: str) -> str | None:
    if not rule.min_len <= len(name) <= rule.max_len:
        return f"{rule.what} {_show(name)} is {len(name)} characters; AWS accepts {rule.min_len}-{rule.max_len}"
    if not re.fullmatch(rule.pattern, name):
        char_class = rule.pattern[:-1] if rule.pattern.startswith("[") and rule.pattern.endswith("]+") else None
        bad = next((c for c in name if not re.fullmatch(char_class, c)), None) if char_class else None
        what = f"it holds {bad!r}" if bad else f"it does not match {rule.pattern}"
        return f"{rule.what} {_show(name)} is not accepted by AWS ({what})"
    return None


def _show(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def check(cfg: EnvConfig) -> None:
    """Raise a ConfigError (exit 2, one line: file, dotted key, what, how to fix) for the first
    generated name or value AWS would refuse, or that two sources would both generate."""
    seen: dict[tuple[str, str], str] = {}
    for rule, name, owner in fixed_names(cfg):
        problem = _rule_problem(rule, name)
        if problem:
            _fail(cfg, "app.name", f"{problem} (it is {owner})", "shorten app.name or the environment's name")
        if rule.namespace:
            seen[(rule.namespace, name)] = owner
    for key, rule, name in generated(cfg):
        problem = _rule_problem(rule, name)
        if problem:
            _fail(cfg, key, problem, f"rename or shorten {key.rpartition('.')[2]!r}")
        if rule is SSM_PARAMETER:
            _check_parameter(cfg, key, name)
        if rule.namespace:
            other = seen.setdefault((rule.namespace, name), f"'{key}'")
            if other != f"'{key}'":
                _fail(cfg, key, f"{rule.what} {_show(name)} is also made by {other}",
                      f"rename {key.rpartition('.')[2]!r}: each name must be unique")
    _check_buckets(cfg)
    for f in cfg.functions:
        _check_environment(cfg, f)
    _check_other_envs(cfg)


def _names(cfg: EnvConfig) -> dict[tuple[str, str], str]:
    """(namespace, name) -> the dotted key that makes it, for every unique-per-account name of ``cfg``."""
    out = {(rule.namespace, name): "app.name" for rule, name, _ in fixed_names(cfg) if rule.namespace}
    out.update({(rule.namespace, name): key for key, rule, name in generated(cfg) if rule.namespace})
    return {k: v for k, v in out.items() if k[0] != IAM_SID.namespace}  # statement ids are per policy


def _check_other_envs(cfg: EnvConfig) -> None:
    """Envs share an account's namespaces when one env's name continues the other's after a hyphen
    (``dev`` and ``dev-eu``): ``<app>-dev`` + function ``eu-x`` is ``<app>-dev-eu`` + ``x``. Refuse a
    name the other env makes too (that env's own config errors are left to its own render)."""
    from deployctl.config import known_envs, load_env

    if cfg.name == "defaults":
        return
    related = [e for e in known_envs(cfg.root)
               if e != cfg.name and (e.startswith(cfg.name + "-") or cfg.name.startswith(e + "-"))]
    if not related:
        return
    mine = _names(cfg)
    for env in related:
        try:
            other = _names(load_env(env, cfg.root))
        except ConfigError:
            continue
        for (namespace, name), key in sorted(mine.items()):
            if (namespace, name) in other:
                _fail(cfg, key, f"{name!r} is also a name env '{env}' makes (from its '{other[(namespace, name)]}')",
                      f"rename {key.rpartition('.')[2]!r} or one of the environments: envs whose names continue "
                      "each other after a hyphen share a name space")


def _check_parameter(cfg: EnvConfig, key: str, name: str) -> None:
    arn = f"arn:{naming.partition(cfg.region)}:ssm:{cfg.region}:{cfg.account_id or '0' * 12}:parameter{name}"
    if len(arn) > SSM_ARN_MAX:
        _fail(cfg, key, f"SSM parameter {_show(name)} makes an ARN of {len(arn)} characters; AWS accepts at most "
                        f"{SSM_ARN_MAX}", "shorten the parameter's name")
    if name.count("/") > SSM_MAX_DEPTH:
        _fail(cfg, key, f"SSM parameter {_show(name)} is {name.count('/')} levels deep; AWS accepts {SSM_MAX_DEPTH}",
              "use fewer '/' in the parameter's name")


def bucket_problem(name: str) -> str | None:
    """Why S3 would refuse ``name`` as a general purpose bucket name (None: it is valid)."""
    if not 3 <= len(name) <= 63:
        return f"is {len(name)} characters; S3 accepts 3-63"
    if not S3_BUCKET_RE.fullmatch(name):
        return "may hold only lowercase letters, digits, '.' and '-', and must begin and end with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "must not hold '..', '.-' or '-.'"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return "must not be formatted as an IP address"
    if name.startswith(S3_RESERVED_PREFIXES) or name.endswith(S3_RESERVED_SUFFIXES):
        return "uses a prefix or suffix S3 reserves"
    return None


def _check_buckets(cfg: EnvConfig) -> None:
    explicit = bool(cfg.get("artifacts.bucket"))
    bucket = cfg.artifact_bucket()
    for name, what in ((bucket, "artifact bucket"), (bucket + ACCESS_LOGS_SUFFIX, "artifact bucket's access-log bucket")):
        problem = bucket_problem(name)
        if problem:
            key = "artifacts.bucket" if explicit else "app.name"
            fix = ("set artifacts.bucket to a valid name of at most 51 characters (its access-log bucket adds "
                   "'-access-logs')") if explicit else \
                "set artifacts.bucket to a shorter name (the derived one is too long), or shorten app.name"
            _fail(cfg, key, f"the {what} {name!r} {problem}", fix)
    # S3 object keys are at most 1024 bytes of UTF-8 (S3 User Guide, "Naming Amazon S3 objects");
    # Terraform's lock file is the state key plus ".tflock"
    state_key = cfg.state_key() + ".tflock"
    if len(state_key.encode()) > 1024:
        _fail(cfg, "state.key" if cfg.get("state.key") else "app.name",
              f"the state lock key is {len(state_key.encode())} bytes; S3 keys hold at most 1024", "shorten state.key")
    state = cfg.state_bucket()
    problem = bucket_problem(state)
    if problem:
        key = "state.bucket" if cfg.get("state.bucket") else "app.name"
        _fail(cfg, key, f"the state bucket {state!r} {problem}", "set state.bucket to a valid bucket name")


def _check_environment(cfg: EnvConfig, function: str) -> None:
    key = f"functions.{function}.environment"
    own = cfg.functions[function].get("environment", {})
    for var in sorted(own):
        if var in LAMBDA_RESERVED_ENV or var.startswith("AWS_LAMBDA_"):
            _fail(cfg, f"{key}.{var}", f"{var} is a variable Lambda reserves and sets itself", f"remove {var}")
    env = naming.function_environment(cfg, function)
    size = len(json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode())
    if size > LAMBDA_ENV_MAX_BYTES:
        _fail(cfg, key if own else f"functions.{function}",
              f"the function's environment variables (with the ones deployctl sets) are {size} bytes; "
              f"Lambda accepts at most {LAMBDA_ENV_MAX_BYTES}", "move large values to an SSM parameter")


def _fail(cfg: EnvConfig, dotted: str, message: str, hint: str) -> None:
    raise ConfigError(f"key '{dotted}': {message}", where=cfg.where(dotted), hint=hint)
