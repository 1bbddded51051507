"""Names and wiring shared by Terraform, the local server and the CLI.

Terraform computes the same values in terraform/envs/*/main.tf locals; tests
keep the two in step. Keep this module free of heavy imports.
"""

from __future__ import annotations

from deployctl.config import EnvConfig, cfg_prefix

LIVE_ALIAS = "live"
STAGING_ALIAS = "staging"
OPENAPI_PATH = ("api", "openapi.json")  # relative to the project root
# Business metrics the handlers emit (shared.metrics, EMF) and the dashboard plots;
# terraform/envs/dev/naming.tf local.business_metrics must list the same names.
BUSINESS_METRICS = ("ItemsCreated", "UsersCreated", "UsersDeleted")


def metrics_namespace(cfg: EnvConfig) -> str:
    """CloudWatch namespace of the business metrics, e.g. ``deployctl-demo-dev``."""
    return cfg.prefix


def function_name(cfg: EnvConfig, function: str) -> str:
    """Physical Lambda function name, e.g. ``deployctl-demo-dev-create-item``."""
    return f"{cfg.prefix}-{function}"


def table_name(cfg: EnvConfig, table: str) -> str:
    """Physical DynamoDB table name, e.g. ``deployctl-demo-dev-items``."""
    return f"{cfg.prefix}-{table}"


def table_sid_suffix(table: str) -> str:
    """The part of a table's IAM statement ids (``ReadTable<suffix>``, ``WriteTable<suffix>``) made
    from its name: each hyphen-separated word capitalised, hyphens dropped (``user-events`` ->
    ``UserEvents``). Terraform's naming.tf ``local.table_sid_suffix`` computes the same
    (``replace(title(replace(name, "-", " ")), " ", "")``; a test runs both). Not injective
    (``a-b`` and ``a--b`` give ``AB``): deployctl.limits refuses tables whose suffixes collide."""
    return "".join(word[:1].upper() + word[1:] for word in table.split("-"))


def table_env_var(table: str) -> str:
    """Environment variable carrying a table's name: ``items`` -> ``TABLE_ITEMS``."""
    return "TABLE_" + table.upper().replace("-", "_")


def parameter_prefix(cfg: EnvConfig) -> str:
    """SSM prefix of the env's parameters, e.g. ``/dev/deployctl-demo/``."""
    return cfg_prefix(cfg)


def kms_alias(cfg: EnvConfig) -> str:
    """Alias of the env's KMS key (created by Terraform's kms module), e.g. ``alias/deployctl-demo-dev``."""
    return f"alias/{cfg.prefix}"


def artifact_key(function: str, sha256_hex: str) -> str:
    """Content-addressed S3 key of a Lambda zip."""
    return f"lambda/{function}/{sha256_hex}.zip"


def layer_key(layer: str, sha256_hex: str) -> str:
    """Content-addressed S3 key of a layer zip."""
    return f"layers/{layer}/{sha256_hex}.zip"


def layer_name(cfg: EnvConfig, layer: str) -> str:
    """Lambda layer name, e.g. ``deployctl-demo-dev-shared``."""
    return f"{cfg.prefix}-{layer}"


def function_environment(cfg: EnvConfig, function: str) -> dict[str, str]:
    """The environment variables a function runs with (no secrets, ever)."""
    fn = cfg.functions[function]
    tables = sorted(set(fn.get("tables_read", [])) | set(fn.get("tables_write", [])))
    env = {
        "APP_NAME": cfg.app,
        "ENVIRONMENT": cfg.name,
        "LOG_LEVEL": cfg.get("lambda.log_level", "INFO"),
        "CORS_ALLOWED_ORIGINS": ",".join(cfg.get("api.cors_allowed_origins", [])),
        # aws-lambda-powertools (the shared layer): Logger's service, Metrics' namespace and dimension
        "POWERTOOLS_SERVICE_NAME": cfg.app,
        "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace(cfg),
    }
    if fn.get("reads_parameters"):
        env["PARAMETER_PREFIX"] = parameter_prefix(cfg)
    for t in tables:
        env[table_env_var(t)] = table_name(cfg, t)
    env.update(fn.get("environment", {}))
    return env


def partition(region: str) -> str:
    """The ARN partition of a region: aws-cn for China, aws-us-gov for GovCloud, else aws."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
