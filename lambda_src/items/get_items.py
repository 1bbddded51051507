"""GET /items: items newest first through GSI1, ``limit`` 1..100 (default 20), ``nextToken``."""

from __future__ import annotations

import re

from items import model
from shared import aws, dynamo, http, pagination
from shared.config import Config

FUNCTION = "get-items"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_KEY_FIELDS = ("pk", "sk", "gsi1pk", "gsi1sk")
_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PK = re.compile(rf"ITEM#{_ID}")
_GSI1SK = re.compile(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z#{_ID}")


def _plausible(key: dict[str, str]) -> bool:
    """Without a secret the cursor is not signed; it must at least be one of ours.
    A forged but well-formed cursor only moves the start of a public listing."""
    return (bool(_PK.fullmatch(key["pk"])) and key["sk"] == model.SK and key["gsi1pk"] == model.GSI_PK
            and bool(_GSI1SK.fullmatch(key["gsi1sk"])) and key["gsi1sk"].endswith(key["pk"][5:]))


def list_items(request: http.Request, cfg: Config) -> tuple[int, dict]:
    limit = request.query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    token = request.query_str("nextToken", pagination.MAX_TOKEN_LEN)
    kwargs = {
        "TableName": cfg.table(model.TABLE),
        "IndexName": model.GSI,
        "KeyConditionExpression": "gsi1pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": model.GSI_PK}},
        "ScanIndexForward": False,
        "Limit": limit,
        # only what clients see: less to read, send and parse (LastEvaluatedKey still has the keys)
        "ProjectionExpression": ", ".join(f"#f{i}" for i in range(len(model.PUBLIC_FIELDS))),
        "ExpressionAttributeNames": {f"#f{i}": name for i, name in enumerate(model.PUBLIC_FIELDS)},
    }
    if token:
        kwargs["ExclusiveStartKey"] = pagination.decode(token, scope="items", fields=_KEY_FIELDS, check=_plausible)
    page = aws.client("dynamodb").query(**kwargs)
    items = [model.public(dynamo.from_item(i)) for i in page.get("Items", [])]
    body: dict = {"items": items, "count": len(items)}
    last = page.get("LastEvaluatedKey")
    if last:
        body["nextToken"] = pagination.encode(last, scope="items")
    return 200, body


ROUTES: http.Routes = {("GET", "/items"): list_items}


def handler(event, context):
    return http.handle(event, context, ROUTES, FUNCTION)
