# Identical in every env root (tests/test_terraform_roots.py enforces it):
# differences between environments come from env config only.
terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }

  # Partial: `deployctl` renders backend.hcl (bucket, key, region,
  # encrypt = true, use_lockfile = true) and passes -backend-config=backend.hcl.
  backend "s3" {}
}
