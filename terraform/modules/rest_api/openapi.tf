# Renders the API's OpenAPI document for API Gateway: the source document has
# no AWS-specific blocks; this file injects the Lambda proxy integrations (to
# each function's live alias), request validators and CORS preflight methods.
#
# Type note: a `{ for ... }` expression builds an object, so operations with
# different attributes can sit side by side; conditionals between objects of
# different shapes are avoided (filters with `if` are used instead).

locals {
  openapi = jsondecode(var.openapi_body)

  http_methods = ["delete", "get", "head", "patch", "post", "put"]

  # Every operation as "<METHOD> <path>" => function key, for checks and permissions.
  operations = merge([
    for path, item in local.openapi.paths : {
      for method, op in item : "${upper(method)} ${path}" => try(op["x-deployctl-function"], "")
      if contains(local.http_methods, method)
    }
  ]...)

  missing_functions = sort(distinct([for op, fn in local.operations : "${op} -> ${fn == "" ? "(no x-deployctl-function)" : fn}" if !contains(keys(var.functions), fn)]))

  request_validators = {
    "body-and-params" = { validateRequestBody = true, validateRequestParameters = true }
    "params-only"     = { validateRequestBody = false, validateRequestParameters = true }
  }

  cors_enabled     = length(var.cors_allowed_origins) > 0
  cors_headers     = "Content-Type,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token"
  cors_vtl_origins = jsonencode(var.cors_allowed_origins)

  # Preflight answers from a mock integration: the first allowed origin by
  # default, overridden with the caller's Origin when it is in the allowed list
  # (a header can carry only one origin).
  cors_template = <<-VTL
    #set($origin = $input.params().header.get("Origin"))
    #if("$!origin" == "")#set($origin = $input.params().header.get("origin"))#end
    #set($allowed = ${local.cors_vtl_origins})
    #if($allowed.contains($origin))
    #set($context.responseOverride.header.Access-Control-Allow-Origin = $origin)
    #end
    {}
  VTL

  cors_operations = {
    for path, item in local.openapi.paths : path => {
      summary     = "CORS preflight"
      operationId = "cors${replace(title(replace(path, "/[^A-Za-z0-9]+/", " ")), " ", "")}"
      responses = {
        "200" = {
          description = "CORS preflight"
          headers = {
            for h in ["Access-Control-Allow-Headers", "Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Max-Age", "Vary"] :
            h => { schema = { type = "string" } }
          }
        }
      }
      "x-amazon-apigateway-integration" = {
        type                = "mock"
        passthroughBehavior = "when_no_match"
        requestTemplates    = { "application/json" = "{\"statusCode\": 200}" }
        responses = {
          default = {
            statusCode = "200"
            responseParameters = {
              "method.response.header.Access-Control-Allow-Headers" = "'${local.cors_headers}'"
              "method.response.header.Access-Control-Allow-Methods" = "'${join(",", concat(sort([for m in keys(item) : upper(m) if contains(local.http_methods, m)]), ["OPTIONS"]))}'"
              "method.response.header.Access-Control-Allow-Origin"  = "'${try(var.cors_allowed_origins[0], "")}'"
              "method.response.header.Access-Control-Max-Age"       = "'600'"
              "method.response.header.Vary"                         = "'Origin'"
            }
            responseTemplates = { "application/json" = local.cors_template }
          }
        }
      }
    }
  }

  paths = {
    for path, item in local.openapi.paths : path => merge(
      # path-level keys (parameters, summary, ...) pass through
      { for key, value in item : key => value if !contains(local.http_methods, key) },
      {
        for method, op in item : method => merge(
          { for key, value in op : key => value if key != "x-deployctl-function" },
          {
            "x-amazon-apigateway-request-validator" = contains(keys(op), "requestBody") ? "body-and-params" : "params-only"
            "x-amazon-apigateway-integration" = {
              type                = "aws_proxy"
              httpMethod          = "POST"
              uri                 = try(var.functions[op["x-deployctl-function"]].invoke_arn, "")
              passthroughBehavior = "when_no_match"
              timeoutInMillis     = var.integration_timeout_ms
            }
          },
        ) if contains(local.http_methods, method)
      },
      { for key, value in { options = local.cors_operations[path] } : key => value if local.cors_enabled },
    )
  }

  body = jsonencode(merge(
    local.openapi,
    {
      info                                     = merge(local.openapi.info, { title = var.name })
      paths                                    = local.paths
      "x-amazon-apigateway-request-validators" = local.request_validators
    },
  ))

  body_sha256 = sha256(local.body)
}
