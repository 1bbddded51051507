"""deployctl drift in the e2e: changes made behind Terraform's back are found, and nothing else.

Called from ``test_deploy_path.py`` right after the plan-after-apply-has-no-changes check, on the
deployed dev stack (real terraform + hashicorp/aws against moto): first a drift check that must
find nothing, then a function's memory and a table's point-in-time recovery are changed with boto3,
and the next drift check must report exactly those two resources, with those attributes, exit 1
and the error kind ``drift``. ``status`` then shows that last drift check. Both changes are undone
with boto3 afterwards, so the rest of the deploy path runs on the stack as Terraform left it.
"""

from __future__ import annotations

from typing import Any

FUNCTION = "health-check"
TABLE = "items"
FUNCTION_ADDRESS = f'module.functions["{FUNCTION}"].aws_lambda_function.this'
TABLE_ADDRESS = f'module.tables["{TABLE}"].aws_dynamodb_table.this[0]'  # on-demand: the non-autoscaled resource


def check_drift_finds_memory_and_pitr_and_nothing_else(deployctl: Any, prefix: str) -> None:
    res = deployctl("drift", "--env", "dev")
    assert res.doc["ok"] and res.result["drift"] is False, res.result.get("resources")

    lam, ddb = deployctl.client("lambda"), deployctl.client("dynamodb")
    function, table = f"{prefix}-{FUNCTION}", f"{prefix}-{TABLE}"
    memory = lam.get_function_configuration(FunctionName=function)["MemorySize"]
    lam.update_function_configuration(FunctionName=function, MemorySize=memory + 128)
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    try:
        res = deployctl("drift", "--env", "dev", expect=1)
        assert res.doc["ok"] is False and res.doc["error"]["error"] == "drift" and res.doc["error"]["exit_code"] == 1
        found = {r["address"]: r for r in res.result["resources"]}
        assert set(found) == {FUNCTION_ADDRESS, TABLE_ADDRESS}, sorted(found)
        fn_changes = {c["path"]: c for c in found[FUNCTION_ADDRESS]["changes"]}
        assert (fn_changes["memory_size"]["before"], fn_changes["memory_size"]["after"]) == (memory, memory + 128)
        pitr = {c["path"]: c for c in found[TABLE_ADDRESS]["changes"]}["point_in_time_recovery[0].enabled"]
        assert (pitr["before"], pitr["after"]) == (True, False)

        status = deployctl("status", "--env", "dev")
        last = status.result["last_drift"]
        assert last["drift"] is True and set(last["addresses"]) == {FUNCTION_ADDRESS, TABLE_ADDRESS}
    finally:
        lam.update_function_configuration(FunctionName=function, MemorySize=memory)
        ddb.update_continuous_backups(TableName=table,
                                      PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
