"""POST /items: create an item (name 1..200 chars, description up to 2,000)."""

from __future__ import annotations

import uuid

from items import model
from shared import aws, dynamo, http, log, metrics
from shared.config import Config
from shared.validation import Text, check_object

FUNCTION = "create-item"
NEW_ITEM = {
    "name": Text(required=True, min_len=1, max_len=200),
    "description": Text(max_len=2000),
}


def create_item(request: http.Request, cfg: Config) -> tuple[int, dict]:
    fields = check_object(request.json_object(), NEW_ITEM)
    item_id = str(uuid.uuid4())
    now = dynamo.timestamp()
    item = {"id": item_id, **fields, "created_at": now, "updated_at": now, **model.keys(item_id, now)}
    aws.client("dynamodb").put_item(
        TableName=cfg.table(model.TABLE),
        Item=dynamo.to_item(item),
        ConditionExpression="attribute_not_exists(pk)",
    )
    log.info("item.created", itemId=item_id)
    metrics.add("ItemsCreated")
    return 201, model.public(item)


ROUTES: http.Routes = {("POST", "/items"): create_item}


def handler(event, context):
    return http.handle(event, context, ROUTES, FUNCTION)
