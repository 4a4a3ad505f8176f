"""The installed package ships its schemas; the README's catalogue matches the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ctmd_validate.catalogue import END, START, catalogue_markdown
from ctmd_validate.checks import REGISTRY
from ctmd_validate.profiles import BUILTIN_PROFILES, load_profile

REPO = Path(__file__).resolve().parent.parent


def test_readme_catalogue_is_generated_from_the_registry() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == catalogue_markdown().strip(), (
        "README check catalogue is stale: run `ctmd-validate catalogue --update README.md`"
    )


def test_every_check_has_a_why_and_a_fix() -> None:
    import ctmd_validate.checks  # noqa: F401

    for check_id, spec in REGISTRY.items():
        assert "Fix" in spec.doc or "fix" in spec.doc, f"{check_id}: docstring says no fix"
        assert len(spec.doc.splitlines()) >= 2, f"{check_id}: docstring says no why"


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert sum(c.expected_cases for c in profile.classes.values()) == 305
    assert len(profile.manifest) == 305
    assert sum(c.n_slices for c in profile.manifest.values()) == 45_471


def test_installed_package_ships_schemas(tmp_path: Path) -> None:
    """Run outside the checkout, so the installed copy (not ../schemas) answers."""
    code = (
        "import json, ctmd_validate.resources as r; d = r.schema_dir();"
        "print(json.dumps([str(d), (d / 'report.schema.json').is_file(),"
        " (d / 'profiles' / 'release.toml').is_file(),"
        " (d / 'release-case-manifest.csv').is_file(),"
        " (d / 'deid' / 'ctmd-default.toml').is_file()]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    if "ModuleNotFoundError" in proc.stderr:
        pytest.skip("ctmd-validate is not installed in this interpreter (run through tox)")
    assert proc.returncode == 0, proc.stderr
    where, *present = json.loads(proc.stdout)
    assert all(present), f"schemas missing from the installed package at {where}"


def test_readme_label_loading_recipe_runs_on_the_real_sample(sample_root: Path) -> None:
    """The README's "how to load labels" code works and lines labels up with the slices."""
    import numpy as np

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Labels: slice order, and how to load them", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    # the public sample keeps its class folders one level down, in "Sample data/"
    code = code.replace('Path("COVID-CT-MD")', f"Path({str(sample_root)!r})")
    code = code.replace('root / "COVID-19 subjects"', 'root / "Sample data" / "COVID-19 subjects"')
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    files = scope["files"]
    labels = scope["labels"]
    infected = scope["infected"]
    assert isinstance(files, list) and isinstance(labels, np.ndarray)
    assert len(labels) == len(files) == 148  # P001's slices; the rest of the row is padding
    assert 0 < len(infected) == int(np.count_nonzero(labels))
    # the labels' row for P001 is Index row 0 under either reading of "Label Index"
    assert scope["row_of"]["P001"] == 0  # type: ignore[index]
