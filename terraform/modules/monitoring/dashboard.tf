# Pure locals (no resources, no data sources): the dashboard body, rendered
# from every function and every table/GSI. Tests evaluate this file with the
# real terraform binary; main.tf creates the dashboard from local.dashboard.

locals {
  function_names = sort([for fn in values(var.functions) : fn.function_name])

  # [TableName, "" | GSI name] for every table and every GSI.
  capacity_targets = flatten([
    for key in sort(keys(var.tables)) : concat(
      [{ table = var.tables[key].table_name, index = "" }],
      [for index in sort(var.tables[key].index_names) : { table = var.tables[key].table_name, index = index }],
    )
  ])

  api_metric = ["AWS/ApiGateway", "ApiName", var.api_name, "Stage", var.api_stage]

  summary_widgets = [
    {
      type   = "metric"
      width  = 24
      height = 4
      properties = {
        title                = "Summary (${var.api_name} ${var.api_stage})"
        view                 = "singleValue"
        region               = local.region
        period               = var.period_s
        setPeriodToTimeRange = true
        metrics = [
          ["AWS/ApiGateway", "Count", "ApiName", var.api_name, "Stage", var.api_stage, { stat = "Sum", label = "Requests" }],
          ["AWS/ApiGateway", "4XXError", "ApiName", var.api_name, "Stage", var.api_stage, { stat = "Sum", label = "4XX" }],
          ["AWS/ApiGateway", "5XXError", "ApiName", var.api_name, "Stage", var.api_stage, { stat = "Sum", label = "5XX" }],
          ["AWS/ApiGateway", "Latency", "ApiName", var.api_name, "Stage", var.api_stage, { stat = "p99", label = "Latency p99 (ms)" }],
          ["AWS/Lambda", "Errors", { stat = "Sum", label = "Lambda errors (all functions)" }],
          ["AWS/Lambda", "Throttles", { stat = "Sum", label = "Lambda throttles (all functions)" }],
        ]
      }
    },
  ]

  api_widgets = [
    for w in [
      { title = "API requests", metrics = [[local.api_metric[0], "Count", local.api_metric[1], var.api_name, "Stage", var.api_stage, { stat = "Sum", label = "Requests" }]] },
      {
        title = "API latency (ms)"
        metrics = [
          for p in ["p50", "p90", "p99"] : [local.api_metric[0], "Latency", local.api_metric[1], var.api_name, "Stage", var.api_stage, { stat = p, label = p }]
        ]
      },
      { title = "API 4XX", metrics = [[local.api_metric[0], "4XXError", local.api_metric[1], var.api_name, "Stage", var.api_stage, { stat = "Sum", label = "4XX" }]] },
      { title = "API 5XX", metrics = [[local.api_metric[0], "5XXError", local.api_metric[1], var.api_name, "Stage", var.api_stage, { stat = "Sum", label = "5XX" }]] },
    ] :
    {
      type       = "metric"
      width      = 6
      height     = 6
      properties = { title = w.title, view = "timeSeries", region = local.region, period = var.period_s, metrics = w.metrics }
    }
  ]

  # One widget per Lambda metric, one line per function (every function).
  # PutDashboard rejects a metric widget whose metrics array is empty, so the
  # Lambda and DynamoDB widgets exist only when there is something to plot.
  lambda_widgets = [
    for m in length(local.function_names) == 0 ? [] : [
      { metric = "Invocations", stat = "Sum" },
      { metric = "Errors", stat = "Sum" },
      { metric = "Duration", stat = "p99" },
      { metric = "Throttles", stat = "Sum" },
      { metric = "ConcurrentExecutions", stat = "Maximum" },
    ] :
    {
      type   = "metric"
      width  = m.metric == "ConcurrentExecutions" ? 24 : 6
      height = 6
      properties = {
        title   = "Lambda ${m.metric} (${m.stat})"
        view    = "timeSeries"
        region  = local.region
        period  = var.period_s
        metrics = [for name in local.function_names : ["AWS/Lambda", m.metric, "FunctionName", name, { stat = m.stat, label = name }]]
      }
    }
  ]

  # Consumed capacity and throttles for every table and every GSI.
  dynamodb_widgets = [
    for m in length(local.capacity_targets) == 0 ? [] : [
      { metric = "ConsumedReadCapacityUnits", title = "DynamoDB consumed RCU" },
      { metric = "ConsumedWriteCapacityUnits", title = "DynamoDB consumed WCU" },
      { metric = "ReadThrottleEvents", title = "DynamoDB read throttles" },
      { metric = "WriteThrottleEvents", title = "DynamoDB write throttles" },
    ] :
    {
      type   = "metric"
      width  = 6
      height = 6
      properties = {
        title  = m.title
        view   = "timeSeries"
        region = local.region
        period = var.period_s
        metrics = [
          for t in local.capacity_targets : concat(
            ["AWS/DynamoDB", m.metric, "TableName", t.table],
            t.index == "" ? [] : ["GlobalSecondaryIndexName", t.index],
            [{ stat = "Sum", label = t.index == "" ? t.table : "${t.table}/${t.index}" }],
          )
        ]
      }
    }
  ]

  # Business metrics the handlers emit (EMF, aws-lambda-powertools Metrics): one
  # line per metric, summed, under exactly the namespace and dimensions they use.
  business_dimensions = flatten([for k in sort(keys(var.business_metrics.dimensions)) : [k, var.business_metrics.dimensions[k]]])
  business_widgets = var.business_metrics.namespace == "" || length(var.business_metrics.metrics) == 0 ? [] : [
    {
      type   = "metric"
      width  = 24
      height = 6
      properties = {
        title   = "Business metrics (${var.business_metrics.namespace})"
        view    = "timeSeries"
        stacked = false
        region  = local.region
        period  = var.period_s
        metrics = [
          for m in var.business_metrics.metrics : concat([var.business_metrics.namespace, m], local.business_dimensions, [{ stat = "Sum", label = m }])
        ]
      }
    },
  ]

  dashboard = {
    widgets = concat(local.summary_widgets, local.business_widgets, local.api_widgets, local.lambda_widgets, local.dynamodb_widgets)
  }
}
