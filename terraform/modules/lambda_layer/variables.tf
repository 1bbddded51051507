variable "compatible_architectures" {
  description = "Instruction sets the layer was built for (deployctl builds for [lambda].architecture)."
  type        = list(string)
  default     = ["x86_64"]

  validation {
    condition     = length(var.compatible_architectures) >= 1 && length(var.compatible_architectures) <= 2 && alltrue([for a in var.compatible_architectures : contains(["x86_64", "arm64"], a)])
    error_message = "compatible_architectures must list x86_64 and/or arm64."
  }
}

variable "compatible_runtimes" {
  description = "Runtimes the layer was built for, e.g. [\"python3.12\"] (deployctl builds for [lambda].runtime)."
  type        = list(string)
  default     = ["python3.12"]

  validation {
    condition     = length(var.compatible_runtimes) >= 1 && length(var.compatible_runtimes) <= 15 && alltrue([for r in var.compatible_runtimes : can(regex("^python3\\.(1[2-9]|[2-9][0-9])$", r))])
    error_message = "compatible_runtimes must list 1-15 runtimes, python3.12 or newer."
  }
}

variable "description" {
  description = "Description of the layer version."
  type        = string
  default     = ""

  validation {
    condition     = length(var.description) <= 256
    error_message = "description must be at most 256 characters."
  }
}

variable "layer_name" {
  description = "Layer name, e.g. <app>-<env>-<layer>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.layer_name))
    error_message = "layer_name must be 1-64 letters, digits, _ or -."
  }
}

variable "s3_bucket" {
  description = "Artifact bucket holding the zip (from the artifact manifest)."
  type        = string

  validation {
    condition     = var.s3_bucket != ""
    error_message = "s3_bucket is required: run `deployctl publish-lambda` (a layer without an artifact is not created)."
  }
}

variable "s3_key" {
  description = "Content-addressed key of the zip, layers/<layer>/<sha256>.zip (from the artifact manifest)."
  type        = string

  validation {
    condition     = can(regex("^layers/[a-z0-9-]+/[0-9a-f]{64}\\.zip$", var.s3_key))
    error_message = "s3_key must look like layers/<layer>/<sha256 hex>.zip."
  }
}

variable "s3_object_version" {
  description = "S3 version id of the zip (from the artifact manifest)."
  type        = string

  validation {
    condition     = var.s3_object_version != ""
    error_message = "s3_object_version is required (the artifact bucket is versioned)."
  }
}

variable "skip_destroy" {
  description = "Keep replaced or destroyed layer versions in Lambda (functions already using a deleted version keep running either way)."
  type        = bool
  default     = false
}

variable "source_code_hash" {
  description = "Base64 SHA-256 of the zip (code_sha256 in the artifact manifest): a change publishes a new version."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.source_code_hash))
    error_message = "source_code_hash must be a base64-encoded SHA-256 (44 characters)."
  }
}
