variable "app" {
  description = "Application name (second segment of the prefix)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.app))
    error_message = "app must be a lowercase name of 2-21 characters."
  }
}

variable "environment" {
  description = "Environment name (first segment of the prefix)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.environment))
    error_message = "environment must be a lowercase name."
  }
}

variable "parameters" {
  description = "Parameters keyed by name under /<env>/<app>/. secure = true declares a SecureString that deployctl creates and rotates (never Terraform)."
  type = map(object({
    description = optional(string, "")
    value       = optional(string, "")
    secure      = optional(bool, false)
  }))
  default = {}

  validation {
    condition     = alltrue([for name, p in var.parameters : can(regex("^[a-z][a-z0-9_/-]*$", name)) && (p.secure ? p.value == "" : p.value != "")])
    error_message = "parameters: names are lowercase paths; plain parameters need a value, secure ones must not carry one (deployctl secret ensure generates it)."
  }
}

variable "region" {
  description = "The region of the SSM parameters (used in the IAM ARNs this module outputs)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region like eu-west-1."
  }
}

variable "tags" {
  description = "Tags for the parameters (provider default_tags are added)."
  type        = map(string)
  default     = {}
}
