locals {
  autoscaled = var.billing_mode == "PROVISIONED"

  # "table" => "" and "index/<GSI>" => "<GSI>" when contributor insights are on.
  insights_targets = var.contributor_insights ? {
    for index in concat([""], keys(var.global_secondary_indexes)) : (index == "" ? "table" : "index/${index}") => index
  } : {}

  # Exactly one of the two table resources exists; see the note on autoscaled.
  table = one(concat(aws_dynamodb_table.this, aws_dynamodb_table.autoscaled))
}

# On-demand tables. (PROVISIONED tables always autoscale: see "autoscaled"
# below and autoscaling.tf.)
resource "aws_dynamodb_table" "this" {
  count = local.autoscaled ? 0 : 1

  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = var.partition_key
  range_key                   = var.sort_key == "" ? null : var.sort_key
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = var.stream_enabled
  stream_view_type            = var.stream_enabled ? "NEW_AND_OLD_IMAGES" : null
  tags                        = var.tags

  dynamic "attribute" {
    for_each = local.key_attributes

    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = var.global_secondary_indexes

    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.partition_key
      range_key       = global_secondary_index.value.sort_key == "" ? null : global_secondary_index.value.sort_key
      projection_type = global_secondary_index.value.projection_type
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  dynamic "ttl" {
    for_each = var.ttl_attribute == "" ? [] : [var.ttl_attribute]

    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.conflicting_key_attributes) == 0
      error_message = "Key attributes used with different types by the table and its GSIs: ${join(", ", local.conflicting_key_attributes)}."
    }
  }
}

# PROVISIONED tables: Application Auto Scaling owns the table's and every GSI's
# capacity, so Terraform ignores it. Terraform cannot ignore one attribute of a
# GSI set element, so ignore_changes covers global_secondary_index as a whole:
# adding or changing a GSI of an autoscaled table is a deliberate two-step
# change (see the module README). Switching billing_mode moves the table
# between the two resources: use `terraform state mv`, never a replace.
resource "aws_dynamodb_table" "autoscaled" {
  count = local.autoscaled ? 1 : 0

  name                        = var.name
  billing_mode                = "PROVISIONED"
  hash_key                    = var.partition_key
  range_key                   = var.sort_key == "" ? null : var.sort_key
  read_capacity               = var.capacity.read_min
  write_capacity              = var.capacity.write_min
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = var.stream_enabled
  stream_view_type            = var.stream_enabled ? "NEW_AND_OLD_IMAGES" : null
  tags                        = var.tags

  dynamic "attribute" {
    for_each = local.key_attributes

    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = var.global_secondary_indexes

    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.partition_key
      range_key       = global_secondary_index.value.sort_key == "" ? null : global_secondary_index.value.sort_key
      projection_type = global_secondary_index.value.projection_type
      read_capacity   = var.capacity.read_min
      write_capacity  = var.capacity.write_min
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  dynamic "ttl" {
    for_each = var.ttl_attribute == "" ? [] : [var.ttl_attribute]

    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  lifecycle {
    ignore_changes = [read_capacity, write_capacity, global_secondary_index]

    precondition {
      condition     = length(local.conflicting_key_attributes) == 0
      error_message = "Key attributes used with different types by the table and its GSIs: ${join(", ", local.conflicting_key_attributes)}."
    }
  }
}

resource "aws_dynamodb_contributor_insights" "this" {
  for_each = local.insights_targets

  table_name = local.table.name
  index_name = each.value == "" ? null : each.value
}
