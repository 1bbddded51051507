locals {
  api_dimensions = { ApiName = var.api_name, Stage = var.api_stage }

  # Single-metric alarms keyed by a stable name; thresholds come from env config.
  alarms = merge(
    {
      "api-5xx" = {
        description        = "${var.api_name} ${var.api_stage}: 5XX responses"
        namespace          = "AWS/ApiGateway"
        metric             = "5XXError"
        dimensions         = local.api_dimensions
        statistic          = "Sum"
        extended_statistic = null
        threshold          = var.thresholds.api_5xx
      }
      "api-p99-latency" = {
        description        = "${var.api_name} ${var.api_stage}: p99 latency (ms)"
        namespace          = "AWS/ApiGateway"
        metric             = "Latency"
        dimensions         = local.api_dimensions
        statistic          = null
        extended_statistic = "p99"
        threshold          = var.thresholds.api_p99_latency_ms
      }
    },
    {
      for key, fn in var.functions : "lambda-${key}-errors" => {
        description        = "${fn.function_name}: errors"
        namespace          = "AWS/Lambda"
        metric             = "Errors"
        dimensions         = { FunctionName = fn.function_name }
        statistic          = "Sum"
        extended_statistic = null
        threshold          = var.thresholds.lambda_errors
      }
    },
    {
      for key, fn in var.functions : "lambda-${key}-throttles" => {
        description        = "${fn.function_name}: throttles"
        namespace          = "AWS/Lambda"
        metric             = "Throttles"
        dimensions         = { FunctionName = fn.function_name }
        statistic          = "Sum"
        extended_statistic = null
        threshold          = var.thresholds.lambda_throttles
      }
    },
    {
      for key, fn in var.functions : "lambda-${key}-dlq-depth" => {
        description        = "${fn.dlq_name}: failed async events waiting"
        namespace          = "AWS/SQS"
        metric             = "ApproximateNumberOfMessagesVisible"
        dimensions         = { QueueName = fn.dlq_name }
        statistic          = "Maximum"
        extended_statistic = null
        threshold          = var.thresholds.dlq_depth
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended_statistic
  period              = var.period_s
  evaluation_periods  = var.evaluation_periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]
  tags                = var.tags
}

# Read plus write throttle events of a table and all its GSIs.
resource "aws_cloudwatch_metric_alarm" "dynamodb_throttles" {
  for_each = var.tables

  alarm_name          = "${var.name}-dynamodb-${each.key}-throttles"
  alarm_description   = "${each.value.table_name}: read and write throttle events (table and GSIs)"
  evaluation_periods  = var.evaluation_periods
  threshold           = var.thresholds.dynamodb_throttles
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]
  tags                = var.tags

  metric_query {
    id          = "throttles"
    expression  = "SUM(METRICS())"
    label       = "Throttle events"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = {
      for pair in setproduct(concat([""], each.value.index_names), ["ReadThrottleEvents", "WriteThrottleEvents"]) :
      "m${substr(sha1(join("/", pair)), 0, 8)}" => { index = pair[0], metric = pair[1] }
    }

    content {
      id = metric_query.key

      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = metric_query.value.metric
        dimensions  = merge({ TableName = each.value.table_name }, metric_query.value.index == "" ? {} : { GlobalSecondaryIndexName = metric_query.value.index })
        period      = var.period_s
        stat        = "Sum"
      }
    }
  }
}
