locals {
  # One scalable target per table/GSI and read/write dimension, keyed
  # "table-read", "table-write", "index-<GSI>-read", ...
  scaling_targets = local.autoscaled ? merge(
    {
      for kind in ["read", "write"] : "table-${kind}" => {
        resource_suffix = ""
        dimension       = "dynamodb:table:${title(kind)}CapacityUnits"
        metric          = "DynamoDB${title(kind)}CapacityUtilization"
        min             = kind == "read" ? var.capacity.read_min : var.capacity.write_min
        max             = kind == "read" ? var.capacity.read_max : var.capacity.write_max
      }
    },
    merge([
      for index in keys(var.global_secondary_indexes) : {
        for kind in ["read", "write"] : "index-${index}-${kind}" => {
          resource_suffix = "/index/${index}"
          dimension       = "dynamodb:index:${title(kind)}CapacityUnits"
          metric          = "DynamoDB${title(kind)}CapacityUtilization"
          min             = kind == "read" ? var.capacity.read_min : var.capacity.write_min
          max             = kind == "read" ? var.capacity.read_max : var.capacity.write_max
        }
      }
    ]...),
  ) : {}
}

resource "aws_appautoscaling_target" "this" {
  for_each = local.scaling_targets

  service_namespace  = "dynamodb"
  resource_id        = "table/${aws_dynamodb_table.autoscaled[0].name}${each.value.resource_suffix}"
  scalable_dimension = each.value.dimension
  min_capacity       = each.value.min
  max_capacity       = each.value.max
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "this" {
  for_each = local.scaling_targets

  name               = "${var.name}-${each.key}-target-tracking"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.capacity.target_utilization

    predefined_metric_specification {
      predefined_metric_type = each.value.metric
    }
  }
}
