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

variable "kms_key_arn" {
  description = "Customer-managed key for SecureString parameters."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "parameters" {
  description = "Parameters keyed by name under /<env>/<app>/. secure = true makes a SecureString whose value is set out of band."
  type = map(object({
    description = optional(string, "")
    value       = optional(string, "")
    secure      = optional(bool, false)
  }))
  default = {}

  validation {
    condition     = alltrue([for name, p in var.parameters : can(regex("^[a-z][a-z0-9_/-]*$", name)) && (p.secure ? p.value == "" : p.value != "")])
    error_message = "parameters: names are lowercase paths; plain parameters need a value, secure ones must not carry one (set it out of band)."
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

variable "secure_placeholder" {
  description = "Value SecureString parameters are created with, before the real value is set out of band."
  type        = string
  default     = "set-out-of-band"

  validation {
    # The users API treats a secret shorter than 16 characters as unset (and signs
    # pagination tokens with a per-container random key), so a publicly known
    # placeholder can never become a signing key.
    condition     = length(var.secure_placeholder) > 0 && length(var.secure_placeholder) < 16
    error_message = "secure_placeholder must be 1-15 characters: handlers treat shorter secrets as unset."
  }
}

variable "tags" {
  description = "Tags for the parameters (provider default_tags are added)."
  type        = map(string)
  default     = {}
}
