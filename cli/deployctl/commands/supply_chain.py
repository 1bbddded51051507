"""verify, sbom: prove what runs is the recorded commit; show what is inside it."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, ui


@click.command(short_help="Rebuild from the recorded commit and compare with what AWS runs.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@env_option
@common_options
def verify(functions):
    """Rebuild every function and layer from the commit artifacts.json records (a clean git
    export) and compare with the code of the live and staging aliases' versions, $LATEST, the
    attached layer versions and the stored zip, SBOM and provenance objects. Exit 0 only when
    all of it is identical; otherwise exit 1 naming what differs or cannot be verified.
    """
    from deployctl.artifacts import verify as core
    from deployctl.errors import VerifyFailed
    from deployctl.ui import table

    cfg = load_env()
    out = ui()
    out.step(f"verifying env '{cfg.name}': rebuilding from the recorded commit(s)")
    result = core.verify(cfg, functions)

    def human() -> str:
        rows = [[f"{'layer ' if c['kind'] == 'layer' else ''}{c['name']}", c["target"], c["status"],
                 (c["detail"] + (f"; first differing file: {c['first_difference']}" if c["first_difference"] else ""))]
                for c in result["checks"]]
        return table(rows, ["artifact", "what", "status", "detail"])

    if result["identical"]:
        out.result(result, human)
        return
    err = VerifyFailed(
        f"not identical to the rebuild: {', '.join(result['not_identical']) or 'nothing was checked'}",
        where=f"env {cfg.name}",
        hint="see each check's detail; re-publish and deploy from a commit to make AWS run what was reviewed",
    )
    out.failed(result, err.to_dict(), human)
    out.error(err.one_line())
    raise click.exceptions.Exit(err.exit_code)


@click.command(short_help="Print the SBOM of what the live alias runs now.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@env_option
@common_options
def sbom(functions):
    """Follow each function's live alias to its CodeSha256, and that to the CycloneDX SBOM stored
    beside the content-addressed zip (and its layers' SBOMs)."""
    from deployctl.artifacts import verify as core
    from deployctl.ui import table

    cfg = load_env()
    out = ui()
    result = core.deployed_sbom(cfg, functions)

    def human() -> str:
        rows = []
        for name, item in result["functions"].items():
            doc = item.get("sbom")
            if doc is None:
                rows.append([name, f"v{item['version']}", item["sha256"][:16], "-", "-", item.get("reason", "")])
                continue
            comps = doc.get("components", [])
            pkgs = [f"{c['name']}=={c.get('version', '')}" for c in comps if c.get("type") == "library"
                    and c.get("purl")]
            for layer in item.get("layers", []):
                for c in (layer.get("sbom") or {}).get("components", []):
                    if c.get("purl"):
                        pkgs.append(f"{c['name']}=={c.get('version', '')} (layer {layer.get('layer')})")
            files = sum(1 for c in comps if c.get("type") == "file")
            rows.append([name, f"v{item['version']}", item["sha256"][:16], str(files), ", ".join(pkgs) or "-",
                         item["key"]])
        return table(rows, ["function", "live", "sha256", "own files", "packages", "sbom"])

    out.result(result, human)
