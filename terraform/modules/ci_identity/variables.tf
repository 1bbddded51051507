variable "account_id" {
  description = "The AWS account the roles live in; every grant is scoped to it."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "apply_subjects" {
  description = "OIDC subject claims (after repo:OWNER/NAME:) that may assume the apply role: environment:ENV, ref:refs/heads/BRANCH or ref:refs/tags/TAG. No wildcards."
  type        = list(string)

  validation {
    condition     = length(var.apply_subjects) > 0 && alltrue([for s in var.apply_subjects : can(regex("^(environment:[A-Za-z0-9._-]+|ref:refs/(heads|tags)/[A-Za-z0-9._/-]+)$", s))])
    error_message = "apply_subjects: one or more of environment:ENV, ref:refs/heads/BRANCH, ref:refs/tags/TAG (no wildcards, no pull_request)."
  }
}

variable "artifact_bucket_name" {
  description = "The env's artifact bucket (its access-log bucket is <name>-access-logs)."
  type        = string
}

variable "key_tag" {
  description = "The tag that marks the env's KMS key (the kms module sets it): every key action of the CI roles needs it on the key (aws:ResourceTag)."
  type = object({
    key   = string
    value = string
  })

  validation {
    condition     = can(regex("^[A-Za-z0-9_.:/=+@-]{1,128}$", var.key_tag.key)) && length(var.key_tag.value) > 0
    error_message = "key_tag needs a tag key (letters, digits, _.:/=+@-) and a non-empty value."
  }
}

variable "kms_key_arn" {
  description = "ARN of the env's customer-managed key (SecureString parameters, Lambda environment, logs, queues, topics, tables)."
  type        = string
}

variable "name" {
  description = "The env's name prefix (<app>-<env>): the roles are <name>-github-plan and <name>-github-apply, and every name-scoped grant is <name>-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes (2-41 characters)."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of an existing token.actions.githubusercontent.com provider to reuse (one per account); \"\" creates it."
  type        = string
  default     = ""

  validation {
    condition     = var.oidc_provider_arn == "" || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be \"\" or arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com."
  }
}

variable "parameter_prefix" {
  description = "The env's SSM parameter path prefix, e.g. /<env>/<app>/ (leading and trailing slash)."
  type        = string

  validation {
    condition     = can(regex("^/.+/$", var.parameter_prefix))
    error_message = "parameter_prefix must start and end with /."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of the env's permissions boundary (module iam_boundary): the apply role may create or change roles only with it set, and may not edit it."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}

variable "plan_subjects" {
  description = "OIDC subject claims (after repo:OWNER/NAME:) that may assume the read-only plan role. No wildcards."
  type        = list(string)
  default     = ["pull_request"]

  validation {
    condition     = length(var.plan_subjects) > 0 && alltrue([for s in var.plan_subjects : can(regex("^(pull_request|environment:[A-Za-z0-9._-]+|ref:refs/(heads|tags)/[A-Za-z0-9._/-]+)$", s))])
    error_message = "plan_subjects: one or more of pull_request, environment:ENV, ref:refs/heads/BRANCH, ref:refs/tags/TAG (no wildcards)."
  }
}

variable "region" {
  description = "The region of the stack; regional grants are scoped to it."
  type        = string
}

variable "repository" {
  description = "The one GitHub repository (owner/name) whose workflows may assume the roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$", var.repository))
    error_message = "repository must look like owner/name (no wildcards)."
  }
}

variable "role_path" {
  description = "IAM path of the env's roles, /<app>/<env>/: the apply role's role grants are scoped to it (the CI roles themselves stay outside it)."
  type        = string

  validation {
    condition     = can(regex("^/[a-z0-9-]+/[a-z0-9-]+/$", var.role_path))
    error_message = "role_path must look like /<app>/<env>/."
  }
}

variable "rollout_records_prefix" {
  description = "Key prefix of the env's rollout records in the state bucket (deployctl/rollouts/<env>/): the apply role may read, write and delete only those (promote --strategy, rollout abort in CI)."
  type        = string

  validation {
    condition     = can(regex("^deployctl/rollouts/[a-z0-9-]+/$", var.rollout_records_prefix))
    error_message = "rollout_records_prefix must look like deployctl/rollouts/<env>/."
  }
}

variable "secure_parameter_names" {
  description = "Full names of the env's SecureString parameters: the plan role is denied reading them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.secure_parameter_names : startswith(n, "/")])
    error_message = "secure_parameter_names must be full parameter names starting with /."
  }
}

variable "state_bucket" {
  description = "The Terraform state bucket."
  type        = string
}

variable "state_key" {
  description = "The env's state object key (the lock file is <key>.tflock: the backend uses use_lockfile)."
  type        = string
}

variable "tags" {
  description = "Tags for the roles and the provider (provider default_tags are added)."
  type        = map(string)
  default     = {}
}
