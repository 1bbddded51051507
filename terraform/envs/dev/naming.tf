# Pure locals (only var.*): names and function
# environments. Must equal deployctl.naming; tests evaluate this file with the
# real terraform binary and compare with the Python side.

locals {
  prefix           = "${var.app.name}-${var.environment}"
  parameter_prefix = "/${var.environment}/${var.app.name}/"
  kms_alias_name   = local.prefix # alias/<app>-<env>: deployctl publish-lambda looks the key up by it
  artifact_bucket  = var.artifacts.bucket != "" ? var.artifacts.bucket : "${local.prefix}-artifacts-${var.aws.account_id}"

  # Business metrics (Embedded Metric Format, aws-lambda-powertools Metrics): the
  # handlers emit them under this namespace with dimension service = app name
  # (from POWERTOOLS_METRICS_NAMESPACE / POWERTOOLS_SERVICE_NAME below), the
  # dashboard plots them. Names must equal the handlers' shared.metrics calls
  # (deployctl.naming.BUSINESS_METRICS; a test keeps them in step).
  business_metrics = {
    namespace  = local.prefix
    dimensions = { service = var.app.name }
    metrics    = ["ItemsCreated", "UsersCreated", "UsersDeleted"]
  }

  # The part of each table's IAM statement ids (ReadTable<suffix>, WriteTable<suffix>): "user-events" ->
  # "UserEvents". Must equal deployctl.naming.table_sid_suffix (a test keeps them in step); deployctl
  # refuses two tables whose suffixes collide ("a-b" and "a--b").
  table_sid_suffix = { for name in keys(var.tables) : name => replace(title(replace(name, "-", " ")), " ", "") }

  # Must equal deployctl.naming.function_environment (a test keeps them in step).
  function_environment = {
    for name, fn in var.functions : name => merge(
      {
        APP_NAME             = var.app.name
        ENVIRONMENT          = var.environment
        LOG_LEVEL            = var.lambda.log_level
        CORS_ALLOWED_ORIGINS = join(",", var.api.cors_allowed_origins)
        # aws-lambda-powertools (the shared layer): Logger's service, Metrics' namespace and dimension
        POWERTOOLS_SERVICE_NAME      = local.business_metrics.dimensions.service
        POWERTOOLS_METRICS_NAMESPACE = local.business_metrics.namespace
      },
      fn.reads_parameters ? { PARAMETER_PREFIX = local.parameter_prefix } : {},
      { for table in setunion(fn.tables_read, fn.tables_write) : "TABLE_${upper(replace(table, "-", "_"))}" => "${local.prefix}-${table}" },
      fn.environment,
    )
  }
}
