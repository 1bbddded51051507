provider "aws" {
  region = var.aws.region

  # The account-id guard: credentials of any other account fail before any change.
  allowed_account_ids = [var.aws.account_id]

  # Path-style S3 URLs for an emulator reached through a host name (docs/emulators.md);
  # AWS_ENDPOINT_URL points the provider at it, as it does the S3 backend and boto3.
  s3_use_path_style = var.aws.s3_use_path_style

  default_tags {
    tags = {
      Application = var.app.name
      CostCenter  = var.app.cost_center
      Environment = var.environment
      ManagedBy   = "terraform"
      Owner       = var.app.owner
    }
  }
}
