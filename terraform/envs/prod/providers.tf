provider "aws" {
  region = var.aws.region

  # The account-id guard: credentials of any other account fail before any change.
  allowed_account_ids = [var.aws.account_id]

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
