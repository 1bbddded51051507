"""The items table's key design (single table, one GSI for newest-first listing).

    pk = ITEM#<id>   sk = METADATA   gsi1pk = ITEM   gsi1sk = <created_at>#<id>
"""

from __future__ import annotations

from typing import Any

TABLE = "items"  # the [tables] key; the physical name comes from TABLE_ITEMS
GSI = "GSI1"
SK = "METADATA"
GSI_PK = "ITEM"
PUBLIC_FIELDS = ("id", "name", "description", "created_at", "updated_at")


def keys(item_id: str, created_at: str) -> dict[str, str]:
    return {"pk": f"ITEM#{item_id}", "sk": SK, "gsi1pk": GSI_PK, "gsi1sk": f"{created_at}#{item_id}"}


def public(item: dict[str, Any]) -> dict[str, Any]:
    """What clients see: the item's fields, never its keys."""
    return {k: item[k] for k in PUBLIC_FIELDS if k in item}
