"""Users CRUD in one function: /users and /users/{userId}.

The list cursor is signed with the ``pagination-key`` SSM parameter (a
SecureString under PARAMETER_PREFIX, read once per cold start), so a client
cannot forge or alter it: a tampered ``nextToken`` is a 400.
"""

from __future__ import annotations

import uuid

from shared import aws, dynamo, http, log, metrics, pagination
from shared.config import Config
from shared.validation import EMAIL, PHONE, Text, check_object, is_uuid

FUNCTION = "users"
TABLE = "users"
KEY = "UserId"
MAX_LIMIT = 100
PAGINATION_KEY_PARAM = "pagination-key"

FIELDS = {
    "name": Text(required=True, min_len=1, max_len=200),
    "email": Text(required=True, max_len=254, pattern=EMAIL, pattern_text="an email address"),
    "phone": Text(max_len=32, pattern=PHONE, pattern_text="a phone number (digits, spaces, + ( ) - .)"),
    "address": Text(max_len=500),
}
UPDATABLE = {name: Text(min_len=rule.min_len, max_len=rule.max_len, pattern=rule.pattern, pattern_text=rule.pattern_text)
             for name, rule in FIELDS.items()}

def _secret(cfg: Config) -> bytes:
    """The cursor-signing key: SSM ``pagination-key`` (a deployed function without it is a 500)."""
    return pagination.signing_key(cfg.param(PAGINATION_KEY_PARAM), parameter=PAGINATION_KEY_PARAM,
                                  required=bool(cfg.parameter_prefix))


def _user_id(request: http.Request) -> str:
    user_id = request.path_params.get("userId", "")
    if not is_uuid(user_id):
        raise http.ApiError(400, "userId must be a UUID")
    return user_id


def _default_limit(cfg: Config) -> int:
    raw = cfg.param("page-size", "20")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT else 20


def list_users(request: http.Request, cfg: Config) -> tuple[int, dict]:
    limit = request.query_int("limit", _default_limit(cfg), 1, MAX_LIMIT)
    token = request.query_str("nextToken", pagination.MAX_TOKEN_LEN)
    scope = f"users|{cfg.environment}"
    kwargs = {"TableName": cfg.table(TABLE), "Limit": limit}
    if token:
        kwargs["ExclusiveStartKey"] = pagination.decode(
            token, scope=scope, fields=(KEY,), secret=_secret(cfg), check=lambda k: is_uuid(k[KEY]))
    page = aws.client("dynamodb").scan(**kwargs)
    users = [dynamo.from_item(i) for i in page.get("Items", [])]
    body: dict = {"users": users, "count": len(users)}
    last = page.get("LastEvaluatedKey")
    if last:
        body["nextToken"] = pagination.encode(last, scope=scope, secret=_secret(cfg))
    return 200, body


def create_user(request: http.Request, cfg: Config) -> tuple[int, dict]:
    fields = check_object(request.json_object(), FIELDS)
    now = dynamo.timestamp()
    user = {KEY: str(uuid.uuid4()), **fields, "created_at": now, "updated_at": now}
    aws.client("dynamodb").put_item(
        TableName=cfg.table(TABLE),
        Item=dynamo.to_item(user),
        ConditionExpression="attribute_not_exists(UserId)",
    )
    log.info("user.created", userId=user[KEY])
    metrics.add("UsersCreated")
    return 201, user


def get_user(request: http.Request, cfg: Config) -> tuple[int, dict]:
    user_id = _user_id(request)
    found = aws.client("dynamodb").get_item(TableName=cfg.table(TABLE), Key={KEY: {"S": user_id}}, ConsistentRead=True)
    if "Item" not in found:
        raise http.ApiError(404, "user not found")
    return 200, dynamo.from_item(found["Item"])


def update_user(request: http.Request, cfg: Config) -> tuple[int, dict]:
    user_id = _user_id(request)
    body = request.json_object()
    if KEY in body:
        raise http.ApiError(400, "validation failed", details=[{"field": KEY, "message": "cannot be changed"}])
    fields = check_object(body, UPDATABLE, require_one=True)
    fields["updated_at"] = dynamo.timestamp()
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": {"S": value} for i, value in enumerate(fields.values())}
    try:
        updated = aws.client("dynamodb").update_item(
            TableName=cfg.table(TABLE),
            Key={KEY: {"S": user_id}},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ConditionExpression="attribute_exists(UserId)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except Exception as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            raise http.ApiError(404, "user not found") from None
        raise
    log.info("user.updated", userId=user_id, fields=sorted(fields))
    return 200, dynamo.from_item(updated["Attributes"])


def delete_user(request: http.Request, cfg: Config) -> tuple[int, None]:
    user_id = _user_id(request)
    try:
        aws.client("dynamodb").delete_item(
            TableName=cfg.table(TABLE),
            Key={KEY: {"S": user_id}},
            ConditionExpression="attribute_exists(UserId)",
        )
    except Exception as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            raise http.ApiError(404, "user not found") from None
        raise
    log.info("user.deleted", userId=user_id)
    metrics.add("UsersDeleted")
    return 204, None


ROUTES: http.Routes = {
    ("GET", "/users"): list_users,
    ("POST", "/users"): create_user,
    ("GET", "/users/{userId}"): get_user,
    ("PUT", "/users/{userId}"): update_user,
    ("DELETE", "/users/{userId}"): delete_user,
}


def handler(event, context):
    return http.handle(event, context, ROUTES, FUNCTION)
