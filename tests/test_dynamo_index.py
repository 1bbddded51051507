"""deployctl.local.dynamo_index answers GSI queries exactly as moto does, only faster.

Each query runs twice against a real moto server (in this process, over HTTP):
with the fast path and with it turned off (moto's own code); the pages, cursors
and counts must be identical, across directions, limits, ties in the index's
range key, items missing from the index and writes in between.
"""

from __future__ import annotations

import os
import random

import pytest

from deployctl.local import dynamo_index

TABLE = "idx-test"


@pytest.fixture
def ddb(moto_reset, monkeypatch):
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    dynamo_index.install()
    client = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=moto_reset)
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g", "gs")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[{"IndexName": "GSI", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                               {"AttributeName": "gs", "KeyType": "RANGE"}]}],
    )
    return client


def _both(client, **kwargs):
    dynamo_index.enabled = True
    before = dynamo_index.fast_answers
    try:
        fast = client.query(**kwargs)
    finally:
        dynamo_index.enabled = False
    try:
        slow = client.query(**kwargs)
    finally:
        dynamo_index.enabled = True
    used = dynamo_index.fast_answers > before
    assert used == ("gs >" not in kwargs["KeyConditionExpression"])  # the shape decides, nothing else
    for page in (fast, slow):
        page.pop("ResponseMetadata", None)
    return fast, slow


def _walk(client, forward: bool, limit: int, group: str = "A") -> int:
    kwargs = {"TableName": TABLE, "IndexName": "GSI", "KeyConditionExpression": "g = :g",
              "ExpressionAttributeValues": {":g": {"S": group}}, "ScanIndexForward": forward, "Limit": limit}
    pages = 0
    while True:
        fast, slow = _both(client, **kwargs)
        assert fast == slow
        pages += 1
        if "LastEvaluatedKey" not in fast:
            return pages
        kwargs["ExclusiveStartKey"] = fast["LastEvaluatedKey"]


def test_pages_equal_motos_own_answer(ddb):
    rng = random.Random(7)
    for i in range(60):
        item = {"pk": {"S": f"p{rng.randrange(20)}"}, "sk": {"S": f"s{i}"}, "n": {"S": "x" * rng.randrange(5)}}
        if rng.random() < 0.85:  # some items are not in the index at all
            item["g"] = {"S": rng.choice("AAB")}
            if rng.random() < 0.9:
                item["gs"] = {"S": f"t{rng.randrange(15):02d}"}  # ties on the index range key
        ddb.put_item(TableName=TABLE, Item=item)
    for forward in (True, False):
        for limit in (1, 3, 7, 100):
            assert _walk(ddb, forward, limit) >= 1
    assert _walk(ddb, False, 2, group="nobody") == 1


def test_writes_between_queries_are_seen(ddb):
    kwargs = {"TableName": TABLE, "IndexName": "GSI", "KeyConditionExpression": "g = :g",
              "ExpressionAttributeValues": {":g": {"S": "A"}}, "ScanIndexForward": False, "Limit": 5}
    for i in range(12):
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i}"}, "sk": {"S": "m"}, "g": {"S": "A"},
                                            "gs": {"S": f"{i:03d}"}})
        fast, slow = _both(ddb, **kwargs)
        assert fast == slow and fast["Items"][0]["gs"]["S"] == f"{i:03d}"
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": "k0"}, "sk": {"S": "m"}},
                    UpdateExpression="SET gs = :v", ExpressionAttributeValues={":v": {"S": "999"}})
    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "k11"}, "sk": {"S": "m"}})
    fast, slow = _both(ddb, **kwargs)
    assert fast == slow
    assert [i["pk"]["S"] for i in fast["Items"]][:2] == ["k0", "k10"]


def test_other_query_shapes_fall_back_to_moto(ddb):
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "g": {"S": "A"}, "gs": {"S": "5"}})
    kwargs = {"TableName": TABLE, "IndexName": "GSI", "KeyConditionExpression": "g = :g AND gs > :s",
              "ExpressionAttributeValues": {":g": {"S": "A"}, ":s": {"S": "1"}}}
    fast, slow = _both(ddb, **kwargs)
    assert fast == slow and fast["Count"] == 1
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
