"""Cold start and bundling: handler modules import only the standard library,
lambda_src's own packages and what the shared layer provides, and boto3 is not
imported until a request needs it."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from conftest import ROOT
from deployctl.config import load_env

LAMBDA = ROOT / "lambda_src"
LOCAL_PACKAGES = {p.name for p in LAMBDA.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
ALLOWED_LAZY = {"boto3", "botocore"}  # provided by the Lambda runtime, imported inside functions
# provided by the shared layer ([layers.shared], lambda_src/layers/shared/requirements.txt)
LAYER_PROVIDED = {"aws_lambda_powertools": "aws-lambda-powertools"}


def test_layer_provided_packages_are_in_the_shared_layer():
    requirements = (LAMBDA / "layers" / "shared" / "requirements.txt").read_text()
    for dist in LAYER_PROVIDED.values():
        assert f"\n{dist}==" in requirements


def imports(tree: ast.AST, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("source", sorted(LAMBDA.rglob("*.py")), ids=lambda p: str(p.relative_to(LAMBDA)))
def test_only_stdlib_and_local_imports(source):
    tree = ast.parse(source.read_text())
    third_party = (imports(tree, False) - set(sys.stdlib_module_names) - LOCAL_PACKAGES - {"__future__"}
                   - set(LAYER_PROVIDED))
    assert third_party <= ALLOWED_LAZY, third_party
    assert not imports(tree, True) & ALLOWED_LAZY, "import boto3 lazily (shared.aws) to keep module import cheap"


def test_importing_handlers_does_not_import_boto3():
    cfg = load_env("dev", ROOT)
    modules = sorted({spec["handler"].rpartition(".")[0] for spec in cfg.functions.values()})
    code = (f"import sys; sys.path.insert(0, {str(LAMBDA)!r})\n"
            + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m == 'boto3' or m.startswith(('boto3.', 'botocore.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # powertools imports the bare `botocore` package (its user-agent hook; ~0.4 ms), never a client or session
    assert out.strip() == "[]"
