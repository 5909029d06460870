"""The Dagster project as its users meet it: what the UI shows (asset, check and job
descriptions) is Markdown, not reStructuredText (`dg` loading the project:
tests/system/test_dagster_project_layout.py)."""

from __future__ import annotations

import re

RST = re.compile(r"``|:(?:func|class|meth|mod|attr):`")


def test_descriptions_the_ui_renders_hold_no_restructuredtext() -> None:
    from dagster_project.definitions import defs

    described = {f"asset {s.key.to_user_string()}": s.description for s in defs.resolve_all_asset_specs()}
    described |= {
        f"job {j.name}": j.description for j in defs.resolve_all_job_defs() if not j.name.startswith("__")
    }  # Dagster's implicit asset job
    for check in defs.asset_checks or []:
        for spec in check.check_specs:
            described[f"check {spec.name}"] = spec.description
    assert described and all(described.values()), [k for k, v in described.items() if not v]
    assert {k: v for k, v in described.items() if RST.search(v or "")} == {}
