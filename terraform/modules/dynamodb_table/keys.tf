# Pure locals (only var.*): the key attributes the table must declare. Tests
# evaluate this file with the real terraform binary.

locals {
  # Every attribute used as a table or index key, declared once with its type.
  # Several keys may share an attribute (two GSIs sorting on the same
  # attribute, a GSI keyed on the table's sort key): group by name (`...`),
  # a plain `{ for }` would fail with "Duplicate object key".
  key_attribute_types = {
    for a in concat(
      [{ name = var.partition_key, type = var.partition_key_type }],
      var.sort_key == "" ? [] : [{ name = var.sort_key, type = var.sort_key_type }],
      flatten([
        for gsi in values(var.global_secondary_indexes) : concat(
          [{ name = gsi.partition_key, type = gsi.partition_key_type }],
          gsi.sort_key == "" ? [] : [{ name = gsi.sort_key, type = gsi.sort_key_type }],
        )
      ]),
    ) : a.name => a.type...
  }
  key_attributes = { for name, types in local.key_attribute_types : name => types[0] }

  # Attributes declared with two different types (checked by the preconditions).
  conflicting_key_attributes = sort([for name, types in local.key_attribute_types : name if length(distinct(types)) > 1])
}
