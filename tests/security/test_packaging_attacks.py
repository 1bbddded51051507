"""Issue 15, reproduction 7: packaging follows links out of lambda_src/.

The attacker is a change to the source tree (a pull request, a branch a dev checks out): a symlink
that looks like a module, a symlinked package directory, a layer whose requirements live behind a
link, a requirements line that makes pip read or expand something. Each attack runs against the
real ``deployctl package`` / ``publish-lambda`` on a copy of the demo project in tmp_path; each must
stop with one line naming the link and its target, exit 2, before anything is read into a zip,
a cache entry, an upload or the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from deployctl.cli import cli
from deployctl.config import Settings
from test_layers import add_layer
from test_package import _wheel, make_project
from test_publish import BUCKET, terraform_applied, use_account


@pytest.fixture(autouse=True)
def _no_imds(monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def secret() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


@pytest.fixture
def outside(tmp_path: Path, secret: str) -> Path:
    """Files outside the project: what a link would exfiltrate (a credentials file shaped as a module)."""
    where = tmp_path / "home" / "victim"
    (where / "pkg").mkdir(parents=True)
    (where / "creds.py").write_text(f'TOKEN = "{secret}"\nimport {secret.replace("-", "_")}_marker\n')
    (where / "pkg" / "__init__.py").write_text("")
    (where / "pkg" / "util.py").write_text(f'def shout(s):\n    return "{secret}" + s\n')
    (where / "requirements.txt").write_text("tinydep==1.0\n")
    (where / "secret.txt").write_text(f"{secret}==1.0\n")
    return where


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture
def wheels(tmp_path, monkeypatch) -> Path:
    """A local wheel index holding only tinydep 1.0; pip never reaches the network."""
    where = tmp_path / "wheels"
    _wheel(where)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(where))
    return where


def package(root: Path, *args: str, **env: str):
    env = {"DEPLOYCTL_ROOT": str(root), **env}
    return CliRunner().invoke(cli, ["package", *args], obj=Settings.from_environ(env), env=env, catch_exceptions=False)


def snapshot(*dirs: Path) -> dict[str, bytes]:
    """Every file under ``dirs`` (links not followed), with its bytes."""
    files = {}
    for d in dirs:
        for path in sorted(d.rglob("*")) if d.exists() else []:
            if path.is_file() and not path.is_symlink():
                files[str(path)] = path.read_bytes()
    return files


def assert_nowhere(secret: str, *dirs: Path) -> None:
    """The secret is in no file under ``dirs``, nor inside any zip there."""
    for name, data in snapshot(*dirs).items():
        assert secret.encode() not in data, name
        if name.endswith(".zip"):
            with zipfile.ZipFile(name) as zf:
                for member in zf.namelist():
                    assert secret.encode() not in zf.read(member), f"{name}:{member}"


def one_line_refusal(result, *needles: str) -> str:
    """Exit 2 and one error line (a command's progress steps may come before it) naming ``needles``."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("==> ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- links in the source tree ------------------------------------------------------------------


def test_a_symlinked_module_outside_the_tree_is_refused_and_lands_in_no_zip_and_no_cache(project, outside, secret,
                                                                                         tmp_path):
    """The reproduction: lambda_src/shared/creds.py -> a file outside the project, imported by a handler."""
    dist = tmp_path / "dist"
    assert package(project, "--output-dir", str(dist)).exit_code == 0  # a warm cache, as on a dev machine
    before = snapshot(project / ".deployctl", dist)

    (project / "lambda_src/shared/creds.py").symlink_to(outside / "creds.py")
    alpha = project / "lambda_src/svc/alpha.py"
    alpha.write_text(alpha.read_text().replace("from shared import util", "from shared import creds, util"))

    line = one_line_refusal(package(project, "--output-dir", str(dist)),
                            "lambda_src/shared/creds.py", str(outside / "creds.py"), "outside lambda_src/")
    assert secret not in line
    after = snapshot(project / ".deployctl", dist)
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == set(), f"the refused run wrote {sorted(changed)}"
    assert_nowhere(secret, project / ".deployctl", dist)


def test_a_relative_link_and_a_link_chain_are_refused_by_where_they_resolve(project, outside, secret):
    (project / "lambda_src/shared/hop.py").symlink_to("../../../home/victim/creds.py")  # relative, leaves the tree
    (project / "lambda_src/shared/creds.py").symlink_to("hop.py")  # inside: points at the link above
    assert (project / "lambda_src/shared/creds.py").read_text().startswith("TOKEN")
    alpha = project / "lambda_src/svc/alpha.py"
    alpha.write_text(alpha.read_text().replace("from shared import util", "from shared import creds, util"))
    one_line_refusal(package(project), "lambda_src/shared/creds.py", str(outside / "creds.py"))
    assert_nowhere(secret, project / ".deployctl")


def test_a_symlinked_package_directory_is_refused(project, outside, secret):
    shutil.rmtree(project / "lambda_src/shared")
    (project / "lambda_src/shared").symlink_to(outside / "pkg", target_is_directory=True)
    one_line_refusal(package(project, "--function", "alpha"), "lambda_src/shared ", str(outside / "pkg"))
    assert_nowhere(secret, project / ".deployctl")


def test_a_symlinked_parent_directory_deeper_down_is_refused(project, outside, secret):
    (project / "lambda_src/svc/vendor").symlink_to(outside, target_is_directory=True)
    alpha = project / "lambda_src/svc/alpha.py"
    alpha.write_text(alpha.read_text() + "\nfrom svc.vendor import creds  # noqa\n")
    one_line_refusal(package(project, "--function", "alpha"), "lambda_src/svc/vendor", str(outside))
    assert_nowhere(secret, project / ".deployctl")


def test_the_handler_module_itself_as_a_link_is_refused(project, outside, secret):
    (outside / "handler.py").write_text(f'X = "{secret}"\ndef handler(event, context):\n    return X\n')
    gamma = project / "lambda_src/other/gamma.py"
    gamma.unlink()
    gamma.symlink_to(outside / "handler.py")
    one_line_refusal(package(project, "--function", "gamma"), "lambda_src/other/gamma.py", str(outside / "handler.py"))
    assert_nowhere(secret, project / ".deployctl")


def test_lambda_src_itself_as_a_link_is_refused(project, outside, secret):
    real = project.parent / "elsewhere"
    shutil.move(project / "lambda_src", real)
    (project / "lambda_src").symlink_to(real, target_is_directory=True)
    one_line_refusal(package(project), "lambda_src is a symlink to")


def test_a_hard_link_to_a_file_outside_is_refused(project, outside, secret):
    """A hard link cannot be told from the file it shares an inode with: a second name is refused."""
    os.link(outside / "creds.py", project / "lambda_src/shared/creds.py")
    alpha = project / "lambda_src/svc/alpha.py"
    alpha.write_text(alpha.read_text().replace("from shared import util", "from shared import creds, util"))
    one_line_refusal(package(project), "lambda_src/shared/creds.py", "hard links")
    assert_nowhere(secret, project / ".deployctl")


def test_links_that_stay_inside_lambda_src_keep_working(project):
    """A module shared by symlink inside the tree is packaged (as the file it points to)."""
    (project / "lambda_src/svc/shout.py").symlink_to("../shared/util.py")
    alpha = project / "lambda_src/svc/alpha.py"
    alpha.write_text(alpha.read_text() + "\nfrom svc import shout  # noqa\n")
    result = package(project, "--function", "alpha", "--json")
    assert result.exit_code == 0, result.output
    path = Path(json.loads(result.stdout)["result"]["functions"]["alpha"]["path"])
    with zipfile.ZipFile(path) as zf:
        assert zf.read("svc/shout.py") == (project / "lambda_src/shared/util.py").read_bytes()


# -- requirements: the layer's path, the file, what pip reads -----------------------------------


def test_a_layer_whose_requirements_directory_links_outside_is_refused(project, outside, wheels):
    add_layer(project)
    shutil.rmtree(project / "lambda_src/layers/tiny")
    (project / "lambda_src/layers/tiny").symlink_to(outside, target_is_directory=True)
    line = one_line_refusal(package(project), "layers.tiny.requirements", "lambda_src/layers/tiny ", str(outside))
    assert "defaults.toml" in line
    assert not list((project / ".deployctl").rglob("*.zip"))


def test_a_layer_requirements_file_that_links_outside_is_refused(project, outside, wheels):
    req = add_layer(project)
    req.unlink()
    req.symlink_to(outside / "requirements.txt")
    one_line_refusal(package(project), "layers.tiny.requirements", "lambda_src/layers/tiny/requirements.txt",
                     str(outside / "requirements.txt"))
    assert not list((project / ".deployctl").rglob("*.zip"))


def test_a_function_requirements_file_that_links_outside_is_refused(project, outside, wheels):
    (project / "lambda_src/requirements").mkdir()
    (project / "lambda_src/requirements/gamma.txt").symlink_to(outside / "requirements.txt")
    one_line_refusal(package(project, "--function", "gamma"), "lambda_src/requirements/gamma.txt",
                     str(outside / "requirements.txt"))
    assert not list((project / ".deployctl").rglob("*.zip"))


@pytest.mark.parametrize("line", [
    "-r {outside}/secret.txt",
    "--requirement={outside}/secret.txt",
    "-c {outside}/secret.txt",
    "tinydep==1.0 \\\n    -r {outside}/secret.txt",
    "{outside}/pkg",
    "file://{outside}/secret.txt",
    "tinydep @ file://{outside}/pkg",
    "tinydep==${{DEPLOYCTL_ATTACK_SECRET}}",
    "--find-links {outside}",
    "--index-url http://127.0.0.1:9/simple",
])
def test_a_requirements_line_that_makes_pip_read_or_expand_something_else_is_refused(
        project, outside, secret, wheels, monkeypatch, line):
    """pip would read the file (or expand the variable) and echo its content in its error, which
    deployctl prints: the line is refused before pip runs."""
    monkeypatch.setenv("DEPLOYCTL_ATTACK_SECRET", secret)
    req = add_layer(project)
    req.write_text(line.format(outside=outside) + "\n")
    result = package(project)
    one_line_refusal(result, "layers.tiny.requirements", "only pinned requirements")
    assert secret not in result.output
    assert not list((project / ".deployctl").rglob("*.zip"))


def test_pinned_requirements_with_hashes_markers_and_comments_still_build(project, wheels):
    import hashlib

    digest = hashlib.sha256((wheels / "tinydep-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    add_layer(project, requirement=(
        "# pinned, with its hash\n"
        f"tinydep[extra]==1.0 ; python_version >= \"3.8\" \\\n    --hash=sha256:{digest}  # the only one\n"))
    result = package(project, "--json")
    assert result.exit_code == 0, result.output
    assert "tiny" in json.loads(result.stdout)["result"]["layers"]


# -- publish-lambda: nothing uploaded, the manifest unchanged --------------------------------------


@pytest.mark.slow
def test_publish_lambda_refuses_before_any_upload_or_manifest_write(project, outside, secret, aws_env, monkeypatch):
    use_account(monkeypatch, "111111111111")
    terraform_applied()
    manifest = project / "terraform/envs/dev/artifacts.json"
    before = manifest.read_bytes() if manifest.exists() else None
    (project / "lambda_src/shared/creds.py").symlink_to(outside / "creds.py")
    alpha = project / "lambda_src/svc/alpha.py"
    alpha.write_text(alpha.read_text().replace("from shared import util", "from shared import creds, util"))

    env = {"DEPLOYCTL_ROOT": str(project)}
    result = CliRunner().invoke(cli, ["publish-lambda", "--env", "dev"], obj=Settings.from_environ(env), env=env,
                                catch_exceptions=False)
    one_line_refusal(result, "lambda_src/shared/creds.py", str(outside / "creds.py"))
    assert (manifest.read_bytes() if manifest.exists() else None) == before
    assert boto3.client("s3").list_object_versions(Bucket=BUCKET).get("Versions", []) == []
    assert_nowhere(secret, project / ".deployctl", project / "terraform")


# -- the build cache: a planted link is not followed -------------------------------------------------


def test_a_cache_entry_replaced_by_a_link_is_rebuilt_not_followed(project, outside, secret, tmp_path):
    """A committed (or planted) .deployctl/cache entry that links to a file outside: the zip that
    reaches dist/ (and an upload) is rebuilt from lambda_src, never the linked file."""
    first = package(project, "--function", "gamma", "--json", "--output-dir", str(tmp_path / "d1"))
    art = json.loads(first.stdout)["result"]["functions"]["gamma"]
    cached = project / ".deployctl/cache/package" / f"{art['input_hash']}.zip"
    loot = outside / "loot.bin"
    loot.write_bytes(secret.encode() * 50)
    meta = json.loads(cached.with_suffix(".json").read_text())
    meta["size"] = loot.stat().st_size
    cached.with_suffix(".json").write_text(json.dumps(meta))
    cached.unlink()
    cached.symlink_to(loot)

    again = package(project, "--function", "gamma", "--json", "--output-dir", str(tmp_path / "d2"))
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)["result"]["functions"]["gamma"]
    assert result["sha256"] == art["sha256"] and not result["cached"]
    assert secret.encode() not in Path(result["path"]).read_bytes()


# -- the guard reads what it checked -----------------------------------------------------------------


def test_a_directory_swapped_for_a_link_after_the_check_is_not_followed(project, outside, secret):
    """TOCTOU: the file is opened component by component with O_NOFOLLOW from lambda_src/, so a link
    put in place between the check and the read makes the read fail instead of following it."""
    from deployctl.artifacts.srctree import SourceTree
    from deployctl.errors import ConfigError

    (outside / "util.py").write_text(f'S = "{secret}"\n')
    tree = SourceTree(project / "lambda_src")
    path = project / "lambda_src/shared/util.py"
    real = tree.resolve(path)  # the check passes: a real file inside
    shutil.rmtree(project / "lambda_src/shared")
    (project / "lambda_src/shared").symlink_to(outside, target_is_directory=True)  # the swap
    with pytest.raises(ConfigError, match="changed while it was being read"):
        tree._read(path, real, None)
