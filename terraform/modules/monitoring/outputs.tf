output "alarm_names" {
  description = "Names of every alarm."
  value       = sort(concat([for a in aws_cloudwatch_metric_alarm.this : a.alarm_name], [for a in aws_cloudwatch_metric_alarm.dynamodb_throttles : a.alarm_name]))
}

output "dashboard_name" {
  description = "Name of the dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "dashboard_url" {
  description = "Console URL of the dashboard."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "sns_topic_arn" {
  description = "ARN of the alarm topic."
  value       = aws_sns_topic.this.arn
}
