variable "account_id" {
  description = "The AWS account the key belongs to; its root administers the key and services are scoped to it."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account id."
  }
}

variable "alias_name" {
  description = "Alias of the key without the alias/ prefix, e.g. <app>-<env>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]{1,200}$", var.alias_name)) && !startswith(var.alias_name, "aws/") && !startswith(var.alias_name, "alias/")
    error_message = "alias_name must be letters, digits, / _ - only, without the alias/ prefix and not under aws/."
  }
}

variable "deletion_window_in_days" {
  description = "Days a scheduled deletion waits (and can be cancelled) before the key is gone."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "description" {
  description = "Description of the key."
  type        = string
  default     = "Customer-managed key for logs, queues, topics, tables and Lambda environment variables"
}

variable "region" {
  description = "The region CloudWatch Logs may use the key in."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region like eu-west-1."
  }
}

variable "rotation_period_in_days" {
  description = "Automatic key rotation period (rotation is always on)."
  type        = number
  default     = 365

  validation {
    condition     = var.rotation_period_in_days >= 90 && var.rotation_period_in_days <= 2560
    error_message = "rotation_period_in_days must be between 90 and 2560."
  }
}

variable "service_principals" {
  description = "AWS service principals (besides CloudWatch Logs) allowed to use the key on behalf of this account."
  type        = list(string)
  default     = ["cloudwatch.amazonaws.com", "dynamodb.amazonaws.com", "sns.amazonaws.com", "sqs.amazonaws.com"]

  validation {
    condition     = alltrue([for p in var.service_principals : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", p))])
    error_message = "service_principals must be AWS service principals like sns.amazonaws.com."
  }
}

variable "tags" {
  description = "Tags for the key (provider default_tags are added)."
  type        = map(string)
  default     = {}
}
