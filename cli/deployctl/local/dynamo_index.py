"""A sorted-index fast path for the embedded emulator's DynamoDB ``Query`` on a GSI.

Why: moto answers every Query by sorting *all* items of the table twice with
Python-level ``DynamoType`` comparisons and then walking the matches from the
start, so ``GET /items`` (a GSI query, newest first, ``Limit`` 20) cost ~1.4 s at
10,000 items (0.7 requests/s) although it returns 20 of them. Real DynamoDB
reads the index in key order and stops at ``Limit``; the handler's query shape
is already the right one for it.

What: :func:`install` wraps ``moto.dynamodb.models.table.Table.query``. For the
shape our handlers use -- a GSI with one HASH and one RANGE key, an equality on
the hash key, no key condition on the range key, no legacy ``QueryFilter``, all
key values strings -- it answers from a per-(table, index, hash value) list kept
sorted exactly as moto sorts (GSI range key, then the table's hash and range
keys), starts at ``ExclusiveStartKey`` by binary search and stops at ``Limit``
(or moto's 1 MB page size). The list is rebuilt after any DynamoDB request that
is not a read (a generation counter bumped around every non-read action), so
the answer is moto's own answer; ``tests/test_dynamo_index.py`` checks that
against the unpatched path. Every other query goes to moto unchanged. Such a
page of plain string/number attributes is also written out with ``json.dumps``
rather than moto's generic response serializer (most of the remaining cost).
"""

from __future__ import annotations

import copy
import json
import os
import threading
from bisect import bisect_left, bisect_right
from typing import Any

# DynamoDB actions that never change data: everything else invalidates the index.
READ_ACTIONS = frozenset({
    "GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive",
    "DescribeContinuousBackups", "ListTagsOfResource", "DescribeEndpoints", "DescribeLimits",
    "ListBackups", "DescribeBackup", "ListGlobalTables", "DescribeGlobalTable", "TransactGetItems",
})

_lock = threading.Lock()
_local = threading.local()  # .answered: this thread's current Query took the fast path
_PLAIN = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
_generation = 0
_cache: dict[tuple, tuple[int, list, list]] = {}  # (table id, index, hash value) -> (gen, keys, items)
_installed = False
fast_answers = 0  # queries answered by the fast path (tests check it is really used)
enabled = True  # tests compare the fast path with moto's own answer by turning it off


def generation() -> int:
    return _generation


def _bump() -> None:
    global _generation
    with _lock:
        _generation += 1
        _cache.clear()


def install() -> None:
    """Patch moto (idempotent). Call before the emulator serves requests.
    ``DEPLOYCTL_LOCAL_QUERY_INDEX=0`` leaves moto as it is (to measure the difference)."""
    global _installed
    if _installed or os.environ.get("DEPLOYCTL_LOCAL_QUERY_INDEX") == "0":
        return
    from moto.core.responses import ActionResult
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    original_query = Table.query
    original_call_action = DynamoHandler.call_action
    original_serialized = DynamoHandler.serialized

    def serialized(self, action_result):
        """A fast-path Query's result is already DynamoDB's wire JSON when every attribute is a
        plain string/number/bool/null: dump it at once instead of walking the botocore shape
        model attribute by attribute (moto's serializer was ~80% of such a request)."""
        if not getattr(_local, "answered", False):
            return original_serialized(self, action_result)
        _local.answered = False
        body = action_result.result
        items = body.get("Items") if isinstance(body, dict) else None
        if items is None or not all(_plain(i) for i in items) or not _plain(body.get("LastEvaluatedKey") or {}):
            return original_serialized(self, action_result)
        status, headers, _ = original_serialized(self, ActionResult({k: v for k, v in body.items() if k != "Items"}))
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        return status, headers, json.dumps(body, separators=(",", ":"))

    def call_action(self):  # every DynamoDB request passes here (server and in-process mock)
        _local.answered = False
        write = self._get_action() not in READ_ACTIONS
        if write:
            _bump()
        try:
            return original_call_action(self)
        finally:
            if write:
                _bump()  # a query that ran during the write cannot have cached its result

    def query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
              projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
              hash_key_conditions=None, range_key_conditions=None, **filter_kwargs):
        found = None
        if (enabled and index_name and not range_comparison and not range_key_conditions and not filter_kwargs
                and not consistent_read and hash_key_conditions and len(hash_key_conditions) == 1):
            found = _sorted_entries(self, index_name, hash_key_conditions[0])
        if found is None:
            return original_query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                                  scan_index_forward, projection_expressions, index_name, consistent_read,
                                  filter_expression, hash_key_conditions=hash_key_conditions,
                                  range_key_conditions=range_key_conditions, **filter_kwargs)
        global fast_answers
        fast_answers += 1
        _local.answered = True
        key_attrs, keys, items = found
        return _page(self, index_name, key_attrs, keys, items, limit, exclusive_start_key, scan_index_forward,
                     projection_expressions, filter_expression)

    DynamoHandler.call_action = call_action
    DynamoHandler.serialized = serialized
    Table.query = query
    _installed = True


def _plain(item: dict) -> bool:
    for typed in item.values():
        if not isinstance(typed, dict) or len(typed) != 1:
            return False
        ((kind, value),) = typed.items()
        if kind not in _PLAIN or not isinstance(value, _PLAIN[kind]):
            return False
    return True


def _index_keys(table, index_name: str) -> tuple[str, str] | None:
    index = next((i for i in (table.global_indexes or []) if i.name == index_name), None)
    if index is None:
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(ranges) != 1:
        return None
    return hashes[0], ranges[0]


def _string(value) -> str | None:
    return value.value if value is not None and value.type == "S" else None


def _sorted_entries(table, index_name: str, condition) -> tuple[tuple[str, ...], list, list] | None:
    """(sort attributes, sorted keys, items) for one hash value of a GSI, or None (use moto)."""
    keys_of_index = _index_keys(table, index_name)
    attr, expected = condition
    if keys_of_index is None or attr != keys_of_index[0] or _string(expected) is None:
        return None
    gsi_hash, gsi_range = keys_of_index
    key_attrs = tuple(a for a in (gsi_range, table.hash_key_attr, table.range_key_attr) if a)
    cache_key = (id(table), index_name, expected.value)
    with _lock:
        gen = _generation
        hit = _cache.get(cache_key)
    if hit is not None and hit[0] == gen:
        return key_attrs, hit[1], hit[2]
    rows = []
    for bucket in list(table.items.values()):
        for item in (list(bucket.values()) if table.range_key_attr else [bucket]):
            value = item.attrs.get(gsi_hash)
            if value is None or value.type != "S" or value.value != expected.value:
                continue
            if not item.attrs.get(gsi_range):
                continue  # not in the index (moto's rule: every index range key present)
            key = tuple(_string(item.attrs.get(a)) for a in key_attrs)
            if None in key:
                return None  # a non-string key: moto's own ordering applies
            rows.append((key, item))
    rows.sort(key=lambda r: r[0])
    keys = [r[0] for r in rows]
    items = [r[1] for r in rows]
    with _lock:
        if _generation == gen:
            _cache[cache_key] = (gen, keys, items)
    return key_attrs, keys, items


def _page(table, index_name, key_attrs, keys, items, limit, exclusive_start_key, forward,
          projection_expressions, filter_expression) -> tuple[list, int, dict[str, Any] | None]:
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    if forward:
        start = 0
        if exclusive_start_key:
            start = bisect_right(keys, _start_key(exclusive_start_key, key_attrs))
        positions = range(start, len(items))
    else:
        start = len(items) - 1
        if exclusive_start_key:
            start = bisect_left(keys, _start_key(exclusive_start_key, key_attrs)) - 1
        positions = range(start, -1, -1)
    page: list = []
    size = 0
    last_evaluated_key = None
    for i in positions:
        item = items[i]
        if len(page) == limit or size + item.size() > RESULT_SIZE_LIMIT:
            last_evaluated_key = table._get_last_evaluated_key(page[-1], index_name)
            break
        page.append(item)
        size += item.size()
    scanned = len(page)
    index = table.get_index(index_name)
    results = [index.project(r) for r in copy.deepcopy(page)]
    if filter_expression is not None:
        results = [r for r in results if filter_expression.expr(r)]
    if projection_expressions:
        results = [r.project(projection_expressions) for r in results]
    return results, scanned, last_evaluated_key


def _start_key(exclusive_start_key: dict, key_attrs: tuple[str, ...]) -> tuple:
    out = []
    for attr in key_attrs:
        typed = exclusive_start_key.get(attr) or {}
        out.append(typed.get("S", "") if isinstance(typed, dict) else "")
    return tuple(out)
