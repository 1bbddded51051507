variable "billing_mode" {
  description = "PAY_PER_REQUEST (on demand) or PROVISIONED (always with target-tracking autoscaling from capacity)."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "capacity" {
  description = "Autoscaling bounds and target utilisation (percent) for PROVISIONED tables; applied to the table and every GSI."
  type = object({
    read_min           = optional(number, 5)
    read_max           = optional(number, 1000)
    write_min          = optional(number, 5)
    write_max          = optional(number, 1000)
    target_utilization = optional(number, 70)
  })
  default = {}

  validation {
    condition = (
      var.capacity.read_min >= 1 && var.capacity.read_min <= var.capacity.read_max &&
      var.capacity.write_min >= 1 && var.capacity.write_min <= var.capacity.write_max &&
      var.capacity.target_utilization >= 20 && var.capacity.target_utilization <= 90
    )
    error_message = "capacity needs 1 <= *_min <= *_max and target_utilization between 20 and 90."
  }
}

variable "contributor_insights" {
  description = "Enable CloudWatch Contributor Insights on the table and every GSI."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection: AWS refuses to delete the table while it is on."
  type        = bool
  default     = false
}

variable "global_secondary_indexes" {
  description = "GSIs keyed by index name."
  type = map(object({
    partition_key      = string
    partition_key_type = optional(string, "S")
    sort_key           = optional(string, "")
    sort_key_type      = optional(string, "S")
    projection_type    = optional(string, "ALL")
  }))
  default = {}

  validation {
    condition = alltrue([
      for gsi in values(var.global_secondary_indexes) :
      contains(["S", "N", "B"], gsi.partition_key_type) && contains(["S", "N", "B"], gsi.sort_key_type) && contains(["ALL", "KEYS_ONLY"], gsi.projection_type)
    ])
    error_message = "GSI key types must be S, N or B and projection_type ALL or KEYS_ONLY."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed key encrypting the table."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "name" {
  description = "Physical table name, e.g. <app>-<env>-<table>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name must be 3-255 characters of letters, digits, _ . -."
  }
}

variable "partition_key" {
  description = "Partition (hash) key attribute name."
  type        = string
}

variable "partition_key_type" {
  description = "Partition key type: S, N or B."
  type        = string
  default     = "S"

  validation {
    condition     = contains(["S", "N", "B"], var.partition_key_type)
    error_message = "partition_key_type must be S, N or B."
  }
}

variable "point_in_time_recovery" {
  description = "Continuous backups with point-in-time recovery."
  type        = bool
  default     = true
}

variable "sort_key" {
  description = "Sort (range) key attribute name; \"\" for none."
  type        = string
  default     = ""
}

variable "sort_key_type" {
  description = "Sort key type: S, N or B."
  type        = string
  default     = "S"

  validation {
    condition     = contains(["S", "N", "B"], var.sort_key_type)
    error_message = "sort_key_type must be S, N or B."
  }
}

variable "stream_enabled" {
  description = "Enable a DynamoDB stream (NEW_AND_OLD_IMAGES)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the table and its scaling targets (provider default_tags are added)."
  type        = map(string)
  default     = {}
}

variable "ttl_attribute" {
  description = "Attribute holding the expiry epoch; \"\" disables TTL."
  type        = string
  default     = ""
}
