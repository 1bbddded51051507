variable "account_id" {
  description = "The AWS account of the env; every allowed resource is in it."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "kms_key_arn" {
  description = "ARN of the env's customer-managed key: the only key the roles may use."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "name" {
  description = "The env's name prefix (<app>-<env>): the policy is <name>-boundary, and tables, queues and function log groups are <name>-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes (2-41 characters)."
  }
}

variable "parameter_prefix" {
  description = "The env's SSM parameter path prefix, /<env>/<app>/ (leading and trailing slash)."
  type        = string

  validation {
    condition     = can(regex("^/.+/$", var.parameter_prefix))
    error_message = "parameter_prefix must start and end with /."
  }
}

variable "path" {
  description = "IAM path of the env, /<app>/<env>/: the policy's path (and the roles')."
  type        = string

  validation {
    condition     = can(regex("^/[a-z0-9-]+/[a-z0-9-]+/$", var.path))
    error_message = "path must look like /<app>/<env>/."
  }
}

variable "region" {
  description = "The region of the stack; regional resources are scoped to it."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region like eu-west-1."
  }
}

variable "tags" {
  description = "Tags for the policy (provider default_tags are added)."
  type        = map(string)
  default     = {}
}
