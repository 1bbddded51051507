# One variable per section `deployctl render` writes to deployctl.auto.tfvars.json
# (same key names as the env config). Optional defaults mirror
# terraform/envs/defaults.toml (a test keeps them in step).

variable "alarms" {
  description = "Alarm thresholds, period and the optional email subscription."
  type = object({
    email                        = optional(string, "")
    period_s                     = optional(number, 300)
    evaluation_periods           = optional(number, 1)
    api_5xx_threshold            = optional(number, 5)
    api_p99_latency_ms           = optional(number, 2000)
    lambda_errors_threshold      = optional(number, 1)
    lambda_throttles_threshold   = optional(number, 1)
    dlq_depth_threshold          = optional(number, 1)
    dynamodb_throttles_threshold = optional(number, 1)
  })
  default = {}

  validation {
    condition = (
      (var.alarms.email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarms.email))) &&
      var.alarms.period_s >= 60 && var.alarms.period_s % 60 == 0 &&
      var.alarms.evaluation_periods >= 1 &&
      min(var.alarms.api_5xx_threshold, var.alarms.lambda_errors_threshold, var.alarms.lambda_throttles_threshold, var.alarms.dlq_depth_threshold, var.alarms.dynamodb_throttles_threshold) >= 0 &&
      var.alarms.api_p99_latency_ms >= 1
    )
    error_message = "alarms: email must be an address or \"\", period_s a multiple of 60, evaluation_periods >= 1, thresholds >= 0."
  }
}

variable "api" {
  description = "Stage throttling, CORS origins and execution logging."
  type = object({
    throttle_rate_limit  = optional(number, 50)
    throttle_burst_limit = optional(number, 100)
    cors_allowed_origins = optional(list(string), ["http://localhost:3000"])
    data_trace           = optional(bool, false)
    logging_level        = optional(string, "INFO")
  })
  default = {
    throttle_rate_limit  = 50
    throttle_burst_limit = 100
    cors_allowed_origins = ["http://localhost:3000"]
    data_trace           = false
    logging_level        = "INFO"
  }

  validation {
    condition     = var.api.throttle_rate_limit > 0 && var.api.throttle_burst_limit >= 1 && contains(["OFF", "ERROR", "INFO"], var.api.logging_level)
    error_message = "api: throttle limits must be positive and logging_level OFF, ERROR or INFO."
  }

  validation {
    condition     = !var.api.data_trace || var.environment == "dev"
    error_message = "api.data_trace logs full requests and responses: allowed in dev only."
  }

  validation {
    condition     = var.environment != "prod" || !contains(var.api.cors_allowed_origins, "*")
    error_message = "api.cors_allowed_origins must list explicit origins in prod, not \"*\"."
  }
}

variable "app" {
  description = "Application name (prefix of every resource name), owner and cost center (tags)."
  type = object({
    name        = optional(string, "deployctl-demo")
    owner       = optional(string, "platform-team")
    cost_center = optional(string, "platform")
  })
  default = {}

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.app.name))
    error_message = "app.name must be a lowercase name of 2-21 characters."
  }
}

variable "artifacts" {
  description = "Artifact bucket name (rendered already derived) and noncurrent version expiry."
  type = object({
    bucket                  = optional(string, "")
    noncurrent_version_days = optional(number, 30)
  })
  default = {}

  validation {
    condition     = var.artifacts.noncurrent_version_days >= 1 && var.artifacts.noncurrent_version_days <= 3650
    error_message = "artifacts.noncurrent_version_days must be between 1 and 3650."
  }
}

variable "aws" {
  description = "Region, the only account this environment may be applied to (provider allowed_account_ids), and S3 path-style addressing (emulators behind a host name)."
  type = object({
    region            = optional(string, "eu-west-1")
    account_id        = optional(string, "")
    s3_use_path_style = optional(bool, false)
  })
  default = {}

  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws.account_id))
    error_message = "aws.account_id must be the 12-digit account of this environment (the account-id guard)."
  }

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws.region))
    error_message = "aws.region must be an AWS region like eu-west-1."
  }
}

variable "ci" {
  description = "GitHub Actions OIDC roles: the one repository (owner/name) allowed to assume them (\"\" = none) and an existing provider to reuse."
  type = object({
    github_repository = optional(string, "")
    oidc_provider_arn = optional(string, "")
  })
  default = {}

  validation {
    condition     = var.ci.github_repository == "" || can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$", var.ci.github_repository))
    error_message = "ci.github_repository must be \"owner/name\" or \"\"."
  }
}

variable "environment" {
  description = "Environment name: the env directory, the stage name and the second segment of every name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.environment))
    error_message = "environment must be a lowercase name like dev, staging or prod."
  }
}

variable "functions" {
  description = "Lambda functions keyed by function key, with s3_bucket/s3_key/s3_object_version from the artifact manifest (\"\" only for the foundation plan)."
  type = map(object({
    handler              = string
    description          = optional(string, "")
    memory_mb            = optional(number)
    timeout_s            = optional(number)
    reserved_concurrency = optional(number, 0)
    tables_read          = optional(list(string), [])
    tables_write         = optional(list(string), [])
    reads_parameters     = optional(bool, false)
    environment          = optional(map(string), {})
    layers               = optional(list(string), [])
    s3_bucket            = optional(string, "")
    s3_key               = optional(string, "")
    s3_object_version    = optional(string, "")
  }))

  validation {
    condition     = alltrue([for name, fn in var.functions : can(regex("^[a-z][a-z0-9-]*$", name)) && can(regex("^[a-z_][a-z0-9_]*(\\.[a-z_][a-z0-9_]*)+$", fn.handler))])
    error_message = "functions: keys are lowercase names and handlers dotted paths like items.create_item.handler."
  }

  validation {
    condition     = alltrue([for fn in values(var.functions) : fn.s3_key == "" || can(regex("^lambda/[a-z0-9-]+/[0-9a-f]{64}\\.zip$", fn.s3_key))])
    error_message = "functions[*].s3_key must be \"\" (no artifact yet) or lambda/<function>/<sha256 hex>.zip from the manifest."
  }

  validation {
    condition     = alltrue([for fn in values(var.functions) : fn.reserved_concurrency >= 0 && (fn.memory_mb == null ? true : fn.memory_mb >= 128 && fn.memory_mb <= 10240) && (fn.timeout_s == null ? true : fn.timeout_s >= 1 && fn.timeout_s <= 900)])
    error_message = "functions: reserved_concurrency >= 0 (0 = unreserved), memory_mb 128-10240, timeout_s 1-900."
  }

  validation {
    condition     = alltrue([for fn in values(var.functions) : alltrue([for t in concat(fn.tables_read, fn.tables_write) : contains(keys(var.tables), t)])])
    error_message = "functions[*].tables_read/tables_write must name tables from var.tables."
  }

  validation {
    condition     = alltrue([for fn in values(var.functions) : length(fn.layers) <= 5 && length(distinct(fn.layers)) == length(fn.layers) && alltrue([for l in fn.layers : contains(keys(var.layers), l)])])
    error_message = "functions[*].layers must name at most 5 distinct layers from var.layers."
  }
}

variable "lambda" {
  description = "Defaults of every function: runtime, architecture, memory, timeout, log level."
  type = object({
    runtime      = optional(string, "python3.12")
    architecture = optional(string, "x86_64")
    memory_mb    = optional(number, 128)
    timeout_s    = optional(number, 10)
    log_level    = optional(string, "INFO")
  })
  default = {}

  validation {
    condition = (
      can(regex("^python3\\.(1[2-9]|[2-9][0-9])$", var.lambda.runtime)) &&
      contains(["x86_64", "arm64"], var.lambda.architecture) &&
      contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.lambda.log_level)
    )
    error_message = "lambda: runtime python3.12 or newer, architecture x86_64 or arm64, log_level DEBUG, INFO, WARNING or ERROR."
  }
}

variable "layers" {
  description = "Lambda layers keyed by layer key, with s3_bucket/s3_key/s3_object_version/source_code_hash from the artifact manifest (\"\" only for the foundation plan: such a layer is not created)."
  type = map(object({
    description       = optional(string, "")
    s3_bucket         = optional(string, "")
    s3_key            = optional(string, "")
    s3_object_version = optional(string, "")
    source_code_hash  = optional(string, "")
  }))
  default = {}

  validation {
    condition     = alltrue([for name, l in var.layers : can(regex("^[a-z][a-z0-9-]{0,30}$", name)) && (l.s3_key == "" || can(regex("^layers/[a-z0-9-]+/[0-9a-f]{64}\\.zip$", l.s3_key)))])
    error_message = "layers: keys are lowercase names; s3_key is \"\" (no artifact yet) or layers/<layer>/<sha256 hex>.zip from the manifest."
  }
}

variable "logs" {
  description = "Retention of every log group (Lambda, API access and execution logs)."
  type = object({
    retention_days = optional(number, 14)
  })
  default = {}

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.logs.retention_days)
    error_message = "logs.retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, ...)."
  }

  validation {
    condition     = var.environment != "prod" || var.logs.retention_days >= 30
    error_message = "logs.retention_days must be at least 30 in prod."
  }
}

variable "parameters" {
  description = "SSM parameters under /<env>/<app>/; secure ones carry no value (deployctl creates them outside Terraform)."
  type = map(object({
    description = optional(string, "")
    value       = optional(string, "")
    secure      = optional(bool, false)
  }))
  default = {}

  validation {
    condition     = alltrue([for p in values(var.parameters) : !(p.secure && p.value != "")])
    error_message = "parameters: a secure parameter's value must never be in tfvars; deployctl secret ensure generates it."
  }
}

variable "protection" {
  description = "Prod-style protections: DynamoDB deletion protection, no force_destroy on buckets; KMS deletion window."
  type = object({
    deletion_protection      = optional(bool, false)
    kms_deletion_window_days = optional(number, 30)
  })
  default = {}

  validation {
    condition     = var.protection.kms_deletion_window_days >= 7 && var.protection.kms_deletion_window_days <= 30
    error_message = "protection.kms_deletion_window_days must be between 7 and 30."
  }

  validation {
    condition     = var.environment != "prod" || (var.protection.deletion_protection && var.protection.kms_deletion_window_days == 30)
    error_message = "prod needs protection.deletion_protection = true and the full 30-day KMS deletion window."
  }
}

variable "state" {
  description = "The env's Terraform state bucket and key (rendered derived by deployctl; the CI roles are granted exactly these)."
  type = object({
    bucket = string
    key    = string
  })
}

variable "tables" {
  description = "DynamoDB tables keyed by table key (physical name <app>-<env>-<key>)."
  type = map(object({
    partition_key      = string
    partition_key_type = optional(string, "S")
    sort_key           = optional(string, "")
    sort_key_type      = optional(string, "S")
    billing_mode       = optional(string, "PAY_PER_REQUEST")
    capacity = optional(object({
      read_min           = optional(number, 5)
      read_max           = optional(number, 1000)
      write_min          = optional(number, 5)
      write_max          = optional(number, 1000)
      target_utilization = optional(number, 70)
    }), {})
    stream        = optional(bool, false)
    ttl_attribute = optional(string, "")
    gsis = optional(map(object({
      partition_key      = string
      partition_key_type = optional(string, "S")
      sort_key           = optional(string, "")
      sort_key_type      = optional(string, "S")
      projection_type    = optional(string, "ALL")
    })), {})
  }))

  validation {
    condition     = alltrue([for name, t in var.tables : can(regex("^[a-z][a-z0-9-]*$", name)) && contains(["PAY_PER_REQUEST", "PROVISIONED"], t.billing_mode)])
    error_message = "tables: keys are lowercase names and billing_mode PAY_PER_REQUEST or PROVISIONED."
  }
}
