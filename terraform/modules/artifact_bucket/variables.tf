variable "account_id" {
  description = "The AWS account owning both buckets (scopes the log delivery policy)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account id."
  }
}

variable "bucket_name" {
  description = "Name of the artifact bucket (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,49}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-51 lowercase letters, digits, dots or hyphens (the log bucket appends -access-logs)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy the buckets with their objects (dev only; false keeps a non-empty bucket undeletable)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed key for SSE-KMS of the artifact bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "log_bucket_name" {
  description = "Name of the access-log bucket; \"\" = <bucket_name>-access-logs."
  type        = string
  default     = ""

  validation {
    condition     = var.log_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.log_bucket_name))
    error_message = "log_bucket_name must be \"\" or a valid S3 bucket name."
  }
}

variable "log_retention_days" {
  description = "Days server access logs are kept."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 1
    error_message = "log_retention_days must be at least 1."
  }
}

variable "noncurrent_version_days" {
  description = "Days after which noncurrent (superseded) artifact versions expire."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days must be between 1 and 3650."
  }
}

variable "tags" {
  description = "Tags for the buckets (provider default_tags are added)."
  type        = map(string)
  default     = {}
}
