variable "architecture" {
  description = "Instruction set: x86_64 or arm64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "dead_letter_retention_seconds" {
  description = "How long failed asynchronous events stay in the dead-letter queue."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dead_letter_retention_seconds >= 60 && var.dead_letter_retention_seconds <= 1209600
    error_message = "dead_letter_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "description" {
  description = "Description of the function."
  type        = string
  default     = ""
}

variable "environment_variables" {
  description = "Plain, non-secret environment variables (encrypted at rest with kms_key_arn)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.environment_variables) : can(regex("^[A-Za-z][A-Za-z0-9_]*$", k))])
    error_message = "environment variable names must be letters, digits and underscores, starting with a letter."
  }
}

variable "function_name" {
  description = "Physical function name, e.g. <app>-<env>-<function>; also names its role, log group and DLQ."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,60}$", var.function_name))
    error_message = "function_name must be 1-60 letters, digits, _ or - (the DLQ appends -dlq)."
  }
}

variable "handler" {
  description = "Handler, e.g. items.create_item.handler."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key for environment variables, the log group and the DLQ."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "layers" {
  description = "ARNs of layer versions to attach, e.g. a shared layer (at most 5)."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.layers) <= 5 && alltrue([for l in var.layers : can(regex("^arn:aws[a-z-]*:lambda:.+:layer:.+:[0-9]+$", l))])
    error_message = "layers must be at most 5 layer version ARNs."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "memory_size" {
  description = "Memory in MB."
  type        = number
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240."
  }
}

variable "permissions_boundary" {
  description = "ARN of the env's permissions boundary policy (module iam_boundary), set on the function's role."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+", var.permissions_boundary))
    error_message = "permissions_boundary must be an IAM policy ARN: every role of the stack carries the env's boundary."
  }
}

variable "policy_statements" {
  description = "The function's permissions, keyed by statement id: exact actions on exact resources. No wildcard actions, no \"*\" resource."
  type = map(object({
    actions   = list(string)
    resources = list(string)
  }))
  default = {}

  validation {
    condition = alltrue([
      for sid, s in var.policy_statements :
      can(regex("^[A-Za-z0-9]+$", sid)) && length(s.actions) > 0 && length(s.resources) > 0 &&
      alltrue([for a in s.actions : can(regex("^[a-z0-9-]+:[A-Za-z0-9]+$", a))]) &&
      alltrue([for r in s.resources : r != "*" && startswith(r, "arn:")])
    ])
    error_message = "policy_statements: alphanumeric ids, explicit service:Action names (no *), and ARN resources (never \"*\")."
  }
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency; null = use the unreserved account pool."
  type        = number
  default     = null

  validation {
    condition     = var.reserved_concurrent_executions == null || try(var.reserved_concurrent_executions >= 1, false)
    error_message = "reserved_concurrent_executions must be null or at least 1 (0 would disable the function)."
  }
}

variable "role_path" {
  description = "IAM path of the function's role, /<app>/<env>/: the CI apply role's IAM grants are scoped to it."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9_+=,.@-]+/)*$", var.role_path))
    error_message = "role_path must start and end with / (e.g. /<app>/<env>/)."
  }
}

variable "runtime" {
  description = "Python runtime, python3.12 or newer."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.(1[2-9]|[2-9][0-9])$", var.runtime))
    error_message = "runtime must be python3.12 or newer."
  }
}

variable "s3_bucket" {
  description = "Artifact bucket holding the zip (from the artifact manifest)."
  type        = string
}

variable "s3_key" {
  description = "Content-addressed key of the zip, lambda/<function>/<sha256>.zip (from the artifact manifest)."
  type        = string

  validation {
    condition     = var.s3_key == "" || can(regex("^lambda/[a-z0-9-]+/[0-9a-f]{64}\\.zip$", var.s3_key))
    error_message = "s3_key must look like lambda/<function>/<sha256 hex>.zip."
  }
}

variable "s3_object_version" {
  description = "S3 version id of the zip (from the artifact manifest)."
  type        = string
}

variable "tags" {
  description = "Tags for every resource of the function (provider default_tags are added)."
  type        = map(string)
  default     = {}
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 10

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900."
  }
}
