# The one list of what CI may do: docs/real-account.md's deployer permissions are checked
# against these maps by tests/test_ci_identity.py. Keys are statement ids; resources are
# scoped to the env's name prefix (var.name) wherever the service supports resource ARNs,
# roles to the env's IAM path (var.role_path: a name prefix such as app-dev-* would also
# match app-dev-eu-*), and the KMS key to the env's tag (var.key_tag).

locals {
  arn     = "arn:${data.aws_partition.current.partition}"
  account = var.account_id
  region  = var.region

  state_object = "${local.arn}:s3:::${var.state_bucket}/${var.state_key}"
  state_lock   = "${local.state_object}.tflock"

  artifact_buckets = ["${local.arn}:s3:::${var.artifact_bucket_name}", "${local.arn}:s3:::${var.artifact_bucket_name}-access-logs"]
  functions        = "${local.arn}:lambda:${local.region}:${local.account}:function:${var.name}-*"
  log_groups = [
    "${local.arn}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name}-*",
    "${local.arn}:logs:${local.region}:${local.account}:log-group:/aws/apigateway/${var.name}/*",
    # execution logs are named by the REST API's id, known only after creation
    "${local.arn}:logs:${local.region}:${local.account}:log-group:API-Gateway-Execution-Logs_*",
  ]
  parameters   = "${local.arn}:ssm:${local.region}:${local.account}:parameter${trimsuffix(var.parameter_prefix, "/")}/*"
  roles        = "${local.arn}:iam::${local.account}:role${var.role_path}*"
  ci_roles     = ["${local.arn}:iam::${local.account}:role/${var.name}-github-plan", "${local.arn}:iam::${local.account}:role/${var.name}-github-apply"]
  keys         = "${local.arn}:kms:${local.region}:${local.account}:key/*"
  env_key      = { StringEquals = { "aws:ResourceTag/${var.key_tag.key}" = var.key_tag.value } }
  boundary     = var.permissions_boundary_arn
  has_boundary = { StringEquals = { "iam:PermissionsBoundary" = local.boundary } }
  secure_parameters = [
    for name in var.secure_parameter_names : "${local.arn}:ssm:${local.region}:${local.account}:parameter${name}"
  ]
  rest_apis = [
    "${local.arn}:apigateway:${local.region}::/account",
    "${local.arn}:apigateway:${local.region}::/restapis",
    "${local.arn}:apigateway:${local.region}::/restapis/*",
    "${local.arn}:apigateway:${local.region}::/tags/*",
  ]

  # ---- apply: create, update and delete what the modules define -------------------------
  apply_grants = {
    State = {
      actions   = ["s3:GetObject", "s3:PutObject"]
      resources = [local.state_object]
    }
    StateLock = {
      actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
      resources = [local.state_lock]
    }
    StateBucket = {
      actions   = ["s3:ListBucket"]
      resources = ["${local.arn}:s3:::${var.state_bucket}"]
    }
    RolloutRecords = {
      actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
      resources = ["${local.arn}:s3:::${var.state_bucket}/${var.rollout_records_prefix}*"]
    }
    RolloutMetrics = {
      # GetMetricData has no resource-level permissions (the new version's Errors/Invocations)
      actions   = ["cloudwatch:GetMetricData"]
      resources = ["*"]
    }
    ApiGateway = {
      actions   = ["apigateway:DELETE", "apigateway:GET", "apigateway:PATCH", "apigateway:POST", "apigateway:PUT"]
      resources = local.rest_apis
    }
    AutoScaling = {
      actions = [
        "application-autoscaling:DeleteScalingPolicy", "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:ListTagsForResource", "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:RegisterScalableTarget", "application-autoscaling:TagResource",
        "application-autoscaling:UntagResource",
      ]
      resources = ["${local.arn}:application-autoscaling:${local.region}:${local.account}:scalable-target/*"]
    }
    AutoScalingRead = {
      actions = [
        "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
      ]
      resources = ["*"]
    }
    Alarms = {
      actions = [
        "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource",
        "cloudwatch:PutMetricAlarm", "cloudwatch:TagResource", "cloudwatch:UntagResource",
      ]
      resources = ["${local.arn}:cloudwatch:${local.region}:${local.account}:alarm:${var.name}-*"]
    }
    Dashboard = {
      actions   = ["cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard", "cloudwatch:PutDashboard"]
      resources = ["${local.arn}:cloudwatch::${local.account}:dashboard/${var.name}"]
    }
    Tables = {
      actions = [
        "dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:DescribeContinuousBackups",
        "dynamodb:DescribeContributorInsights", "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive",
        "dynamodb:ListTagsOfResource", "dynamodb:TagResource", "dynamodb:UntagResource",
        "dynamodb:UpdateContinuousBackups", "dynamodb:UpdateContributorInsights", "dynamodb:UpdateTable",
        "dynamodb:UpdateTimeToLive",
      ]
      resources = ["${local.arn}:dynamodb:${local.region}:${local.account}:table/${var.name}-*"]
    }
    Roles = {
      actions = [
        "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
        "iam:ListRolePolicies",
      ]
      resources = [local.roles]
    }
    # Creating a role or changing its policies (the actions that carry iam:PermissionsBoundary)
    # only with the env's boundary set: whatever policy it gets, the boundary caps it.
    RolesWithTheBoundary = {
      actions   = ["iam:CreateRole", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"]
      resources = [local.roles]
      condition = local.has_boundary
    }
    # No iam:PermissionsBoundary in their request context: only roles on the env's path,
    # which could only be created with the boundary, and may not lose it (denies below).
    RolesOnThePath = {
      actions   = ["iam:DeleteRole", "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole"]
      resources = [local.roles]
    }
    Boundary = {
      actions   = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyTags", "iam:ListPolicyVersions"]
      resources = [local.boundary]
    }
    # The two CI roles are in the state too (foundation): refresh reads them, nothing more.
    CiRoles = {
      actions   = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"]
      resources = local.ci_roles
    }
    OidcProvider = {
      actions   = ["iam:GetOpenIDConnectProvider"]
      resources = ["${local.arn}:iam::${local.account}:oidc-provider/token.actions.githubusercontent.com"]
    }
    PassRoles = {
      actions   = ["iam:PassRole"]
      resources = [local.roles]
      condition = { StringEquals = { "iam:PassedToService" = ["apigateway.amazonaws.com", "lambda.amazonaws.com"] } }
    }
    AutoScalingServiceRole = {
      actions   = ["iam:CreateServiceLinkedRole"]
      resources = ["${local.arn}:iam::${local.account}:role/aws-service-role/dynamodb.application-autoscaling.amazonaws.com/*"]
      condition = { StringEquals = { "iam:AWSServiceName" = ["dynamodb.application-autoscaling.amazonaws.com"] } }
    }
    # No kms:CreateKey: the key is part of the foundation (a person). Every key action needs the
    # env's tag on the key; tagging needs it already, so no other key can be pulled in.
    KeyList = {
      actions   = ["kms:ListAliases"]
      resources = ["*"]
    }
    Key = {
      actions = [
        "kms:CreateAlias", "kms:Decrypt", "kms:DeleteAlias", "kms:DescribeKey", "kms:EnableKeyRotation",
        "kms:Encrypt", "kms:GenerateDataKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
        "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:TagResource",
        "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
      ]
      resources = [local.keys]
      condition = local.env_key
    }
    KeyAlias = {
      actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
      resources = ["${local.arn}:kms:${local.region}:${local.account}:alias/${var.name}"]
    }
    Functions = {
      actions = [
        "lambda:AddPermission", "lambda:CreateAlias", "lambda:CreateFunction", "lambda:DeleteAlias",
        "lambda:DeleteFunction", "lambda:DeleteFunctionConcurrency", "lambda:GetAlias", "lambda:GetFunction",
        "lambda:GetFunctionCodeSigningConfig", "lambda:GetFunctionConfiguration", "lambda:GetPolicy",
        "lambda:InvokeFunction", "lambda:ListTags", "lambda:ListVersionsByFunction", "lambda:PublishVersion",
        "lambda:PutFunctionConcurrency", "lambda:RemovePermission", "lambda:TagResource",
        "lambda:UntagResource", "lambda:UpdateAlias", "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
      ]
      resources = [local.functions]
    }
    LogGroups = {
      actions = [
        "logs:AssociateKmsKey", "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:DeleteRetentionPolicy",
        "logs:DisassociateKmsKey", "logs:ListTagsForResource", "logs:ListTagsLogGroup", "logs:PutRetentionPolicy",
        "logs:TagLogGroup", "logs:TagResource", "logs:UntagLogGroup", "logs:UntagResource",
      ]
      resources = local.log_groups
    }
    LogGroupsList = {
      actions   = ["logs:DescribeLogGroups"]
      resources = ["${local.arn}:logs:${local.region}:${local.account}:log-group:*"]
    }
    ArtifactBuckets = {
      actions = [
        "s3:CreateBucket", "s3:DeleteBucket", "s3:DeleteBucketPolicy", "s3:GetAccelerateConfiguration",
        "s3:GetBucketAcl", "s3:GetBucketCORS", "s3:GetBucketLogging", "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketOwnershipControls", "s3:GetBucketPolicy", "s3:GetBucketPublicAccessBlock",
        "s3:GetBucketRequestPayment", "s3:GetBucketTagging", "s3:GetBucketVersioning", "s3:GetBucketWebsite",
        "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration",
        "s3:ListBucket", "s3:ListBucketVersions", "s3:PutBucketLogging", "s3:PutBucketOwnershipControls",
        "s3:PutBucketPolicy", "s3:PutBucketPublicAccessBlock", "s3:PutBucketTagging", "s3:PutBucketVersioning",
        "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration",
      ]
      resources = local.artifact_buckets
    }
    ArtifactObjects = {
      # Lambda reads the code object with the caller's rights; force_destroy (non-prod) empties the buckets
      actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion"]
      resources = [for b in local.artifact_buckets : "${b}/*"]
    }
    Topics = {
      actions = [
        "sns:CreateTopic", "sns:DeleteTopic", "sns:GetSubscriptionAttributes", "sns:GetTopicAttributes",
        "sns:ListSubscriptionsByTopic", "sns:ListTagsForResource", "sns:SetSubscriptionAttributes",
        "sns:SetTopicAttributes", "sns:Subscribe", "sns:TagResource", "sns:Unsubscribe", "sns:UntagResource",
      ]
      resources = ["${local.arn}:sns:${local.region}:${local.account}:${var.name}-*"]
    }
    Queues = {
      actions = [
        "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags",
        "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue",
      ]
      resources = ["${local.arn}:sqs:${local.region}:${local.account}:${var.name}-*"]
    }
    Parameters = {
      actions = [
        "ssm:AddTagsToResource", "ssm:DeleteParameter", "ssm:GetParameter", "ssm:GetParameters",
        "ssm:ListTagsForResource", "ssm:PutParameter", "ssm:RemoveTagsFromResource",
      ]
      resources = [local.parameters]
    }
    ParametersList = {
      actions   = ["ssm:DescribeParameters"]
      resources = ["*"]
    }
  }

  # The CI roles and the OIDC provider are changed by a person (the foundation step), never
  # by the apply role itself: otherwise it could widen its own trust or grants.
  apply_denies = {
    NoSelfChange = {
      actions = [
        "iam:AttachRolePolicy", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary",
        "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
      ]
      resources = local.ci_roles
    }
    # Whatever another policy of the role might allow: no role without the env's boundary,
    # no boundary removed, the boundary policy itself never edited.
    NoRoleWithoutTheBoundary = {
      actions = [
        "iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
        "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy",
      ]
      resources = ["*"]
      condition = { StringNotEquals = { "iam:PermissionsBoundary" = local.boundary } }
    }
    NoBoundaryRemoval = {
      actions   = ["iam:DeleteRolePermissionsBoundary"]
      resources = ["*"]
    }
    NoBoundaryChange = {
      actions = [
        "iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion",
        "iam:TagPolicy", "iam:UntagPolicy",
      ]
      resources = [local.boundary]
    }
  }

  # ---- plan: refresh and diff only; the only writes are the state lock file ----------------
  plan_grants = {
    State = {
      actions   = ["s3:GetObject"]
      resources = [local.state_object]
    }
    StateLock = {
      actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
      resources = [local.state_lock]
    }
    StateBucket = {
      actions   = ["s3:ListBucket"]
      resources = ["${local.arn}:s3:::${var.state_bucket}"]
    }
    ApiGateway = {
      actions   = ["apigateway:GET"]
      resources = local.rest_apis
    }
    AutoScaling = {
      actions   = ["application-autoscaling:ListTagsForResource"]
      resources = ["${local.arn}:application-autoscaling:${local.region}:${local.account}:scalable-target/*"]
    }
    AutoScalingRead = {
      actions = [
        "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
      ]
      resources = ["*"]
    }
    Alarms = {
      actions   = ["cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"]
      resources = ["${local.arn}:cloudwatch:${local.region}:${local.account}:alarm:${var.name}-*"]
    }
    Dashboard = {
      actions   = ["cloudwatch:GetDashboard"]
      resources = ["${local.arn}:cloudwatch::${local.account}:dashboard/${var.name}"]
    }
    Tables = {
      actions = [
        "dynamodb:DescribeContinuousBackups", "dynamodb:DescribeContributorInsights", "dynamodb:DescribeTable",
        "dynamodb:DescribeTimeToLive", "dynamodb:ListTagsOfResource",
      ]
      resources = ["${local.arn}:dynamodb:${local.region}:${local.account}:table/${var.name}-*"]
    }
    Roles = {
      actions = [
        "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
        "iam:ListRolePolicies",
      ]
      resources = [local.roles]
    }
    Boundary = {
      actions   = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyTags", "iam:ListPolicyVersions"]
      resources = [local.boundary]
    }
    # The two CI roles are in the state too (foundation): refresh reads them, nothing more.
    CiRoles = {
      actions   = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"]
      resources = local.ci_roles
    }
    OidcProvider = {
      actions   = ["iam:GetOpenIDConnectProvider"]
      resources = ["${local.arn}:iam::${local.account}:oidc-provider/token.actions.githubusercontent.com"]
    }
    KeyList = {
      actions   = ["kms:ListAliases"]
      resources = ["*"]
    }
    Key = {
      actions   = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"]
      resources = [local.keys]
      condition = local.env_key
    }
    # Refresh reads the Lambda environments (plain settings, never secrets) under the CMK, which
    # Lambda decrypts with the caller's rights. Terraform reads no SecureString (app_config knows
    # only their names), so nothing is granted through SSM (and plan_denies forbids it).
    KeyDecryptViaLambda = {
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
      condition = { StringEquals = { "kms:ViaService" = ["lambda.${local.region}.amazonaws.com"] } }
    }
    Functions = {
      actions = [
        "lambda:GetAlias", "lambda:GetFunction", "lambda:GetFunctionCodeSigningConfig",
        "lambda:GetFunctionConfiguration", "lambda:GetPolicy", "lambda:ListTags", "lambda:ListVersionsByFunction",
      ]
      resources = [local.functions]
    }
    LogGroups = {
      actions   = ["logs:ListTagsForResource", "logs:ListTagsLogGroup"]
      resources = local.log_groups
    }
    LogGroupsList = {
      actions   = ["logs:DescribeLogGroups"]
      resources = ["${local.arn}:logs:${local.region}:${local.account}:log-group:*"]
    }
    ArtifactBuckets = {
      actions = [
        "s3:GetAccelerateConfiguration", "s3:GetBucketAcl", "s3:GetBucketCORS", "s3:GetBucketLogging",
        "s3:GetBucketObjectLockConfiguration", "s3:GetBucketOwnershipControls", "s3:GetBucketPolicy",
        "s3:GetBucketPublicAccessBlock", "s3:GetBucketRequestPayment", "s3:GetBucketTagging",
        "s3:GetBucketVersioning", "s3:GetBucketWebsite", "s3:GetEncryptionConfiguration",
        "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration", "s3:ListBucket",
      ]
      resources = local.artifact_buckets
    }
    Topics = {
      actions = [
        "sns:GetSubscriptionAttributes", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic",
        "sns:ListTagsForResource",
      ]
      resources = ["${local.arn}:sns:${local.region}:${local.account}:${var.name}-*"]
    }
    Queues = {
      actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags"]
      resources = ["${local.arn}:sqs:${local.region}:${local.account}:${var.name}-*"]
    }
    # Plain parameters (refresh of app_config); a SecureString read here is ciphertext only.
    Parameters = {
      actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:ListTagsForResource"]
      resources = [local.parameters]
    }
    ParametersList = {
      actions   = ["ssm:DescribeParameters"]
      resources = ["*"]
    }
  }

  # A pull request assumes the plan role (any branch's copy of the workflow): it must never
  # reach a secret. No decrypt except Lambda's (function settings) and S3's (the state object,
  # under the aws/s3 key), whichever key a SecureString uses (aws/ssm included), and no read
  # of the env's declared SecureStrings at all.
  plan_denies = merge(
    {
      NoDecryptButLambdaAndState = {
        actions   = ["kms:Decrypt"]
        resources = ["*"]
        condition = { StringNotEquals = { "kms:ViaService" = ["lambda.${local.region}.amazonaws.com", "s3.${local.region}.amazonaws.com"] } }
      }
    },
    length(local.secure_parameters) == 0 ? {} : {
      NoSecureParameters = {
        actions   = ["ssm:GetParameter", "ssm:GetParameterHistory", "ssm:GetParameters", "ssm:GetParametersByPath"]
        resources = local.secure_parameters
      }
    },
  )

  plan_statements = concat(
    [
      for sid, g in local.plan_grants : merge(
        { Sid = sid, Effect = "Allow", Action = g.actions, Resource = g.resources },
        try({ Condition = g.condition }, {}),
      )
    ],
    [
      for sid, g in local.plan_denies : merge(
        { Sid = sid, Effect = "Deny", Action = g.actions, Resource = g.resources },
        try({ Condition = g.condition }, {}),
      )
    ],
  )
  apply_statements = concat(
    [
      for sid, g in local.apply_grants : merge(
        { Sid = sid, Effect = "Allow", Action = g.actions, Resource = g.resources },
        try({ Condition = g.condition }, {}),
      )
    ],
    [
      for sid, g in local.apply_denies : merge(
        { Sid = sid, Effect = "Deny", Action = g.actions, Resource = g.resources },
        try({ Condition = g.condition }, {}),
      )
    ],
  )
}
