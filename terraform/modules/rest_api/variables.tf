variable "cors_allowed_origins" {
  description = "Origins allowed by CORS preflight (OPTIONS per path); [] disables the preflight methods. Never \"*\" in prod."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_allowed_origins : can(regex("^(\\*|https?://[^\\s/]+(:[0-9]+)?)$", o))])
    error_message = "cors_allowed_origins must be origins like https://app.example.com (scheme, host, optional port)."
  }
}

variable "data_trace_enabled" {
  description = "Log full requests and responses in execution logs (dev only: it can log personal data)."
  type        = bool
  default     = false
}

variable "description" {
  description = "Description of the REST API."
  type        = string
  default     = "Managed by deployctl from api/openapi.json"
}

variable "functions" {
  description = "Functions the operations name in x-deployctl-function, keyed by that name: function_name and the live alias invoke ARN."
  type = map(object({
    function_name = string
    invoke_arn    = string
  }))

  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^arn:aws[a-z-]*:apigateway:.+:lambda:path/.+:live/invocations$", f.invoke_arn))])
    error_message = "functions[*].invoke_arn must be the invoke ARN of a live alias (…:live/invocations)."
  }
}

variable "integration_timeout_ms" {
  description = "Lambda proxy integration timeout in milliseconds."
  type        = number
  default     = 29000

  validation {
    condition     = var.integration_timeout_ms >= 50 && var.integration_timeout_ms <= 29000
    error_message = "integration_timeout_ms must be between 50 and 29000."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed key encrypting the access and execution log groups."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the access and execution log groups."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "logging_level" {
  description = "Execution logging level: OFF, ERROR or INFO."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.logging_level)
    error_message = "logging_level must be OFF, ERROR or INFO."
  }
}

variable "manage_account_settings" {
  description = "Create the account-level (per region) API Gateway CloudWatch role; false if another stack owns it."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the REST API (also its OpenAPI info.title), e.g. <app>-<env>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.name))
    error_message = "name must be 1-100 letters, digits, _ or -."
  }
}

variable "openapi_body" {
  description = "The OpenAPI 3 document (JSON text) with operationId and x-deployctl-function on every operation, no AWS extensions."
  type        = string

  validation {
    condition     = can(jsondecode(var.openapi_body).paths)
    error_message = "openapi_body must be a JSON OpenAPI document with paths."
  }
}

variable "permissions_boundary" {
  description = "ARN of the env's permissions boundary policy (module iam_boundary), set on the API Gateway CloudWatch role."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+", var.permissions_boundary))
    error_message = "permissions_boundary must be an IAM policy ARN: every role of the stack carries the env's boundary."
  }
}

variable "region" {
  description = "The region of the API (scopes the API Gateway CloudWatch role to this region's log groups)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region like eu-west-1."
  }
}

variable "role_path" {
  description = "IAM path of the API Gateway CloudWatch role, /<app>/<env>/: the CI apply role's IAM grants are scoped to it."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9_+=,.@-]+/)*$", var.role_path))
    error_message = "role_path must start and end with / (e.g. /<app>/<env>/)."
  }
}

variable "stage_name" {
  description = "Stage name, one per environment (e.g. dev, staging, prod)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.stage_name))
    error_message = "stage_name must be 1-64 letters, digits, _ or -."
  }
}

variable "tags" {
  description = "Tags for the API, stage, log groups and role (provider default_tags are added)."
  type        = map(string)
  default     = {}
}

variable "throttling_burst_limit" {
  description = "Stage-wide burst limit (requests)."
  type        = number
  default     = 100

  validation {
    condition     = var.throttling_burst_limit >= 1
    error_message = "throttling_burst_limit must be at least 1."
  }
}

variable "throttling_rate_limit" {
  description = "Stage-wide steady-state rate limit (requests per second)."
  type        = number
  default     = 50

  validation {
    condition     = var.throttling_rate_limit > 0
    error_message = "throttling_rate_limit must be positive."
  }
}

variable "xray_tracing_enabled" {
  description = "X-Ray tracing on the stage."
  type        = bool
  default     = true
}
