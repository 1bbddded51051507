variable "alarm_email" {
  description = "Email subscribed to the alarm topic; \"\" for none (the subscription must be confirmed from the inbox)."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an email address or \"\"."
  }
}

variable "api_name" {
  description = "ApiName dimension of the REST API."
  type        = string
}

variable "api_stage" {
  description = "Stage dimension of the REST API."
  type        = string
}

variable "business_metrics" {
  description = "Business metrics the functions emit in Embedded Metric Format: namespace, dimensions (name => value) and metric names; an empty namespace or list = no widget."
  type = object({
    namespace  = optional(string, "")
    dimensions = optional(map(string), {})
    metrics    = optional(list(string), [])
  })
  default = {}

  validation {
    condition = (
      (var.business_metrics.namespace == "" || can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.business_metrics.namespace))) &&
      length(var.business_metrics.dimensions) <= 30 &&
      alltrue([for m in var.business_metrics.metrics : can(regex("^[A-Za-z0-9._-]{1,255}$", m))])
    )
    error_message = "business_metrics: namespace 1-255 of A-Za-z0-9._/#:- (or \"\"), at most 30 dimensions, metric names of A-Za-z0-9._-."
  }
}

variable "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.dashboard_name))
    error_message = "dashboard_name must be 1-255 letters, digits, _ or -."
  }
}

variable "evaluation_periods" {
  description = "Periods an alarm's condition must hold before it fires."
  type        = number
  default     = 1

  validation {
    condition     = var.evaluation_periods >= 1 && var.evaluation_periods <= 100
    error_message = "evaluation_periods must be between 1 and 100."
  }
}

variable "functions" {
  description = "Every function, keyed by function key: its physical name and its DLQ name."
  type = map(object({
    function_name = string
    dlq_name      = string
  }))
}

variable "kms_key_arn" {
  description = "Customer-managed key encrypting the alarm topic."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "name" {
  description = "Prefix of the alarm names and the topic, e.g. <app>-<env>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,200}$", var.name))
    error_message = "name must be letters, digits, _ or -."
  }
}

variable "period_s" {
  description = "Alarm and dashboard period in seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.period_s >= 60 && var.period_s % 60 == 0
    error_message = "period_s must be a multiple of 60, at least 60."
  }
}

variable "region" {
  description = "The region of the alarms (scopes the SNS topic policy to this region's alarms)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region like eu-west-1."
  }
}

variable "tables" {
  description = "Every table, keyed by table key: its physical name and its GSI names."
  type = map(object({
    table_name  = string
    index_names = optional(list(string), [])
  }))
}

variable "tags" {
  description = "Tags for the topic and alarms (provider default_tags are added)."
  type        = map(string)
  default     = {}
}

variable "thresholds" {
  description = "Alarm thresholds: API 5XX count, API p99 latency (ms), Lambda errors and throttles, DLQ depth, DynamoDB throttle events (per period)."
  type = object({
    api_5xx            = optional(number, 5)
    api_p99_latency_ms = optional(number, 2000)
    dlq_depth          = optional(number, 1)
    dynamodb_throttles = optional(number, 1)
    lambda_errors      = optional(number, 1)
    lambda_throttles   = optional(number, 1)
  })
  default = {}

  validation {
    condition     = alltrue([for v in values(var.thresholds) : v >= 0])
    error_message = "thresholds must not be negative."
  }
}
