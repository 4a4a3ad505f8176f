"""Slice-stack geometry: sorting, properties over generated stacks, the real sample."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmd_validate import Report, Run, Severity
from ctmd_validate.checks import REGISTRY, CheckContext, run_checks
from ctmd_validate.scan import ScanResult
from ctmd_validate.views import sort_stack

GEOMETRY = sorted(i for i in REGISTRY if i.startswith("geometry."))


def run_geometry(scan: ScanResult, files: pd.DataFrame) -> list:
    """The geometry checks over ``scan`` with its files table replaced (no file is read)."""
    changed = dataclasses.replace(scan, files=files)
    results = run_checks(CheckContext(changed, changed.profile), GEOMETRY)
    assert [r.check_id for r in results if r.crashed] == []
    return [f for r in results for f in r.findings]


def keys(findings: list) -> list[tuple]:
    return sorted((f.check_id, f.case, f.message, f.files) for f in findings)


@pytest.fixture(scope="module")
def scan(clean_tiny_run: Run) -> ScanResult:
    return clean_tiny_run.scan


@pytest.fixture(scope="module")
def case(scan: ScanResult) -> tuple[str, pd.DataFrame]:
    """The COVID-19 case of the tiny tree and its files."""
    key = next(k for k in scan.cases["case_key"] if k.startswith("COVID-19"))
    return key, scan.files[scan.files["case_key"] == key]


def test_clean_stacks_have_no_geometry_findings(scan: ScanResult) -> None:
    assert run_geometry(scan, scan.files) == []


def test_sort_follows_the_normal_not_names_or_instance_numbers(case) -> None:
    _, files = case
    scrambled = files.assign(
        instance_number=files["instance_number"].sample(frac=1, random_state=1).to_numpy()
    )
    ordered, normal = sort_stack(scrambled.sample(frac=1, random_state=2))
    assert np.allclose(normal, [0, 0, 1])
    assert (np.diff(ordered["proj"].to_numpy()) > 0).all()
    assert list(ordered["ipp_2"]) == sorted(files["ipp_2"])


def test_sort_uses_the_normal_of_an_oblique_stack(case) -> None:
    """Rotate the stack about x: positions move in y and z, the order is still the normal's."""
    _, files = case
    angle = np.deg2rad(30)
    col = np.array([0, np.cos(angle), np.sin(angle)])
    normal = np.cross([1, 0, 0], col)
    pos = files["ipp_2"].to_numpy()[:, None] * normal
    rotated = files.assign(
        iop_3=col[0], iop_4=col[1], iop_5=col[2], ipp_0=pos[:, 0], ipp_1=pos[:, 1], ipp_2=pos[:, 2]
    )
    ordered, found = sort_stack(rotated.sample(frac=1, random_state=3))
    assert np.allclose(found, normal)
    assert list(ordered["path"]) == list(files.sort_values("ipp_2")["path"])


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False), st.booleans())
def test_any_permutation_gives_the_same_order_and_findings(scan, case, rnd, damaged) -> None:
    key, files = case
    table = scan.files.copy()
    if damaged:  # one shifted Slice Location and one duplicated Instance Number
        idx = files.index
        table.loc[idx[5], "slice_location"] += 0.5
        table.loc[idx[9], "instance_number"] = table.loc[idx[10], "instance_number"]
    order = list(range(len(table)))
    rnd.shuffle(order)
    permuted = table.iloc[order]
    assert keys(run_geometry(scan, permuted)) == keys(run_geometry(scan, table))
    a, _ = sort_stack(permuted[permuted["case_key"] == key])
    b, _ = sort_stack(table[table["case_key"] == key])
    assert list(a["path"]) == list(b["path"])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_removed_interior_slice_is_one_missing_slice_in_place(scan, case, data) -> None:
    key, files = case
    ordered, _ = sort_stack(files)
    i = data.draw(st.integers(1, len(ordered) - 2), label="stack index")
    gone = ordered.index[i]
    findings = run_geometry(scan, scan.files.drop(index=gone))
    missing = [f for f in findings if f.check_id == "geometry.spacing.missing_slice"]
    assert len(missing) == 1
    f = missing[0]
    lo, hi = ordered["proj"].iloc[i - 1], ordered["proj"].iloc[i + 1]
    assert f.actual["missing"] == 1
    assert f.actual["between_mm"] == [round(lo, 4), round(hi, 4)]
    assert f.actual["after_slice"] == i
    assert set(f.files) == {ordered["path"].iloc[i - 1], ordered["path"].iloc[i + 1]}
    assert f.case == key.rsplit("/", 1)[-1]
    assert not [f for f in findings if f.check_id == "geometry.spacing.irregular"]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_removed_runs_count_every_missing_slice(scan, case, data) -> None:
    _, files = case
    ordered, _ = sort_stack(files)
    start = data.draw(st.integers(1, len(ordered) - 6), label="start")
    length = data.draw(st.integers(1, 4), label="length")
    findings = run_geometry(scan, scan.files.drop(index=ordered.index[start : start + length]))
    missing = [f for f in findings if f.check_id == "geometry.spacing.missing_slice"]
    assert [f.actual["missing"] for f in missing] == [length]


def test_removing_an_end_slice_leaves_no_gap(scan, case) -> None:
    _, files = case
    ordered, _ = sort_stack(files)
    for end in (ordered.index[0], ordered.index[-1]):
        ids = {f.check_id for f in run_geometry(scan, scan.files.drop(index=end))}
        assert "geometry.spacing.missing_slice" not in ids


def test_reversed_slice_location_is_info_not_error(scan, case) -> None:
    _, files = case
    table = scan.files.copy()
    table.loc[files.index, "slice_location"] = -table.loc[files.index, "slice_location"] + 10
    findings = run_geometry(scan, table)
    pos = [f for f in findings if f.check_id == "geometry.position.mismatch"]
    assert len(pos) == 1 and pos[0].severity is Severity.INFO
    assert pos[0].actual == {"offset_mm": 10.0, "reversed": True}


def test_constant_offset_is_reported_as_info(scan, case) -> None:
    _, files = case
    table = scan.files.copy()
    table.loc[files.index, "slice_location"] += 3.25
    pos = [f for f in run_geometry(scan, table) if f.check_id == "geometry.position.mismatch"]
    assert [(f.severity, f.actual) for f in pos] == [
        (Severity.INFO, {"offset_mm": 3.25, "reversed": False})
    ]


def test_spacing_tolerance_is_both_absolute_and_relative(scan, case) -> None:
    """Within 0.2 mm *and* 1 %: for 2 mm slices a 0.03 mm shift is irregular, 0.01 mm is not."""
    _, files = case
    ordered, _ = sort_stack(files)
    for shift, fires in ((0.01, False), (0.03, True)):
        table = scan.files.copy()
        table.loc[ordered.index[7], "ipp_2"] += shift
        table.loc[ordered.index[7], "slice_location"] += shift
        ids = [f.check_id for f in run_geometry(scan, table)]
        assert ("geometry.spacing.irregular" in ids) is fires, (shift, ids)


def test_tolerances_come_from_the_profile(scan, case) -> None:
    _, files = case
    ordered, _ = sort_stack(files)
    table = scan.files.copy()
    table.loc[ordered.index[7], "slice_location"] += 0.05
    loose = dataclasses.replace(
        scan.profile, geometry=dataclasses.replace(scan.profile.geometry, position_tol_mm=0.1)
    )
    strict_ids = {f.check_id for f in run_geometry(scan, table)}
    changed = dataclasses.replace(scan, files=table, profile=loose)
    loose_ids = {
        f.check_id for r in run_checks(CheckContext(changed, loose), GEOMETRY) for f in r.findings
    }
    assert "geometry.position.mismatch" in strict_ids
    assert "geometry.position.mismatch" not in loose_ids


def test_real_sample_stacks_are_geometrically_clean(sample_report: Report) -> None:
    geometry = [f for f in sample_report.findings if f.check_id.startswith("geometry.")]
    assert geometry == []
    for check_id in GEOMETRY:
        assert sample_report.result(check_id).examined == len(sample_report.facts.cases)
