# The whole stack of one environment. Functions, tables, parameters, routes and
# alarm thresholds are data (env config rendered to deployctl.auto.tfvars.json
# and api/openapi.json): adding one is an entry in config, not a copied block.

locals {
  # The single OpenAPI document (routes) shared with `deployctl local` and the tests.
  openapi_body = file("${path.root}/../../../api/openapi.json")

  table_read_actions     = ["dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
  table_write_actions    = ["dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
  parameter_read_actions = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]

  # IAM path of every role of the env: the CI apply role's role grants are scoped to it
  # (a name prefix like <app>-dev-* would also match <app>-dev-eu-*).
  iam_path = "/${var.app.name}/${var.environment}/"
  # The tag that marks the env's key; the CI roles reach no key without it.
  key_tag = { key = "DeployctlStack", value = local.prefix }

  # Exactly what each function's config lists: reads and writes on named
  # tables (and their indexes), reads under the env's parameter prefix.
  function_statements = {
    for name, fn in var.functions : name => merge(
      {
        for table in fn.tables_read : "ReadTable${local.table_sid_suffix[table]}" => {
          actions   = local.table_read_actions
          resources = module.tables[table].iam_resources
        }
      },
      {
        for table in fn.tables_write : "WriteTable${local.table_sid_suffix[table]}" => {
          actions   = local.table_write_actions
          resources = module.tables[table].iam_resources
        }
      },
      {
        for sid in(fn.reads_parameters ? ["ReadParameters"] : []) : sid => {
          actions   = local.parameter_read_actions
          resources = module.app_config.iam_resources
        }
      },
    )
  }
}

# ---- foundation (deployctl's first, targeted plan: module.kms, module.iam_boundary,
# module.artifact_bucket and module.ci_identity)

module "kms" {
  source = "../../modules/kms"

  account_id              = var.aws.account_id
  alias_name              = local.kms_alias_name
  deletion_window_in_days = var.protection.kms_deletion_window_days
  region                  = var.aws.region
  tags                    = { (local.key_tag.key) = local.key_tag.value }
}

# The permissions boundary every role of the env carries (function roles, the API
# Gateway logs role). Part of the foundation: the apply role may not change it.
module "iam_boundary" {
  source = "../../modules/iam_boundary"

  account_id       = var.aws.account_id
  kms_key_arn      = module.kms.key_arn
  name             = local.prefix
  parameter_prefix = local.parameter_prefix
  path             = local.iam_path
  region           = var.aws.region
}

module "artifact_bucket" {
  source = "../../modules/artifact_bucket"

  account_id              = var.aws.account_id
  bucket_name             = local.artifact_bucket
  force_destroy           = !var.protection.deletion_protection
  kms_key_arn             = module.kms.key_arn
  noncurrent_version_days = var.artifacts.noncurrent_version_days
}

# GitHub Actions OIDC plan/apply roles for one repository ([ci] github_repository; "" = none).
# Part of the foundation: applied by a person, never by the apply role (it cannot change them).
module "ci_identity" {
  source = "../../modules/ci_identity"
  count  = var.ci.github_repository == "" ? 0 : 1

  account_id               = var.aws.account_id
  apply_subjects           = ["environment:${var.environment}"]
  artifact_bucket_name     = local.artifact_bucket
  key_tag                  = local.key_tag
  kms_key_arn              = module.kms.key_arn
  name                     = local.prefix
  oidc_provider_arn        = var.ci.oidc_provider_arn
  parameter_prefix         = local.parameter_prefix
  permissions_boundary_arn = module.iam_boundary.arn
  plan_subjects            = ["pull_request", "ref:refs/heads/main"] # PR plans; the scheduled drift check on main
  region                   = var.aws.region
  repository               = var.ci.github_repository
  role_path                = local.iam_path
  rollout_records_prefix   = "deployctl/rollouts/${var.environment}/"
  secure_parameter_names   = [for name, p in var.parameters : "${local.parameter_prefix}${name}" if p.secure]
  state_bucket             = var.state.bucket
  state_key                = var.state.key
}

# ---- data and configuration -----------------------------------------------------

module "tables" {
  source   = "../../modules/dynamodb_table"
  for_each = var.tables

  billing_mode             = each.value.billing_mode
  capacity                 = each.value.capacity
  deletion_protection      = var.protection.deletion_protection
  global_secondary_indexes = each.value.gsis
  kms_key_arn              = module.kms.key_arn
  name                     = "${local.prefix}-${each.key}"
  partition_key            = each.value.partition_key
  partition_key_type       = each.value.partition_key_type
  sort_key                 = each.value.sort_key
  sort_key_type            = each.value.sort_key_type
  stream_enabled           = each.value.stream
  ttl_attribute            = each.value.ttl_attribute
}

module "app_config" {
  source = "../../modules/app_config"

  app         = var.app.name
  environment = var.environment
  parameters  = var.parameters
  region      = var.aws.region
}

# ---- compute and edge -------------------------------------------------------------

# One layer version per [layers.NAME] that has a published artifact (the
# foundation plan runs before publish-lambda: such a layer is not created yet).
module "layers" {
  source   = "../../modules/lambda_layer"
  for_each = { for name, layer in var.layers : name => layer if layer.s3_key != "" }

  compatible_architectures = [var.lambda.architecture]
  compatible_runtimes      = [var.lambda.runtime]
  description              = each.value.description
  layer_name               = "${local.prefix}-${each.key}"
  s3_bucket                = each.value.s3_bucket
  s3_key                   = each.value.s3_key
  s3_object_version        = each.value.s3_object_version
  skip_destroy             = var.protection.deletion_protection
  source_code_hash         = each.value.source_code_hash
}

module "functions" {
  source   = "../../modules/lambda_function"
  for_each = var.functions

  architecture                   = var.lambda.architecture
  description                    = each.value.description
  environment_variables          = local.function_environment[each.key]
  function_name                  = "${local.prefix}-${each.key}"
  handler                        = each.value.handler
  kms_key_arn                    = module.kms.key_arn
  layers                         = [for layer in each.value.layers : module.layers[layer].arn if contains(keys(module.layers), layer)]
  log_retention_days             = var.logs.retention_days
  memory_size                    = coalesce(each.value.memory_mb, var.lambda.memory_mb)
  permissions_boundary           = module.iam_boundary.arn
  policy_statements              = local.function_statements[each.key]
  reserved_concurrent_executions = each.value.reserved_concurrency > 0 ? each.value.reserved_concurrency : null
  role_path                      = local.iam_path
  runtime                        = var.lambda.runtime
  s3_bucket                      = each.value.s3_bucket
  s3_key                         = each.value.s3_key
  s3_object_version              = each.value.s3_object_version
  timeout                        = coalesce(each.value.timeout_s, var.lambda.timeout_s)
}

module "api" {
  source = "../../modules/rest_api"

  cors_allowed_origins   = var.api.cors_allowed_origins
  data_trace_enabled     = var.api.data_trace
  functions              = { for name, fn in module.functions : name => { function_name = fn.function_name, invoke_arn = fn.live_alias_invoke_arn } }
  kms_key_arn            = module.kms.key_arn
  log_retention_days     = var.logs.retention_days
  logging_level          = var.api.logging_level
  name                   = local.prefix
  openapi_body           = local.openapi_body
  permissions_boundary   = module.iam_boundary.arn
  region                 = var.aws.region
  role_path              = local.iam_path
  stage_name             = var.environment
  throttling_burst_limit = var.api.throttle_burst_limit
  throttling_rate_limit  = var.api.throttle_rate_limit
}

# ---- operations -------------------------------------------------------------------

module "monitoring" {
  source = "../../modules/monitoring"

  alarm_email        = var.alarms.email
  api_name           = module.api.name
  api_stage          = module.api.stage_name
  business_metrics   = local.business_metrics
  dashboard_name     = local.prefix
  evaluation_periods = var.alarms.evaluation_periods
  functions          = { for name, fn in module.functions : name => { function_name = fn.function_name, dlq_name = fn.dlq_name } }
  kms_key_arn        = module.kms.key_arn
  name               = local.prefix
  period_s           = var.alarms.period_s
  region             = var.aws.region
  tables             = { for name, table in module.tables : name => { table_name = table.name, index_names = table.index_names } }

  thresholds = {
    api_5xx            = var.alarms.api_5xx_threshold
    api_p99_latency_ms = var.alarms.api_p99_latency_ms
    dlq_depth          = var.alarms.dlq_depth_threshold
    dynamodb_throttles = var.alarms.dynamodb_throttles_threshold
    lambda_errors      = var.alarms.lambda_errors_threshold
    lambda_throttles   = var.alarms.lambda_throttles_threshold
  }
}
