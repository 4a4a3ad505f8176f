"""The synthetic generator: release-exact plans, consistent labels, realistic headers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ctmd_validate import Severity, load_profile, synth, validate
from ctmd_validate.policy import load_policy
from ctmd_validate.synth import labels, tree
from ctmd_validate.synth.headers import SYNTH_PRIVATE_CREATORS


@pytest.fixture(scope="module")
def release():
    return load_profile("release")


def test_release_scale_is_the_release(release) -> None:
    cases = synth.select_cases(release, "release")
    assert len(cases) == 305
    assert sum(c.n_slices for c in cases) == 45_471
    by_class = {k: sum(c.class_key == k for c in cases) for k in ("covid", "cap", "normal")}
    assert by_class == {"covid": 169, "cap": 60, "normal": 76}


@pytest.mark.parametrize(("scale", "per_class"), [("small", 2), ("tiny", 1)])
def test_small_scales_take_the_shortest_cases(release, scale: str, per_class: int) -> None:
    cases = synth.select_cases(release, scale)
    assert len(cases) == 3 * per_class
    for case in cases:
        same_class = [
            c.n_slices for c in release.manifest.values() if c.class_key == case.class_key
        ]
        assert case.n_slices <= sorted(same_class)[per_class - 1]


def test_release_demographics_reproduce_the_published_table(release) -> None:
    published = release.published.demographics
    cases = synth.select_cases(release, "release")
    demo = tree._demographics(cases, seed=0, full=True, published=published)
    assert set(published) == {"covid", "cap", "normal"}
    for key, figures in published.items():
        rows = [demo[c.case_id] for c in release.manifest.values() if c.class_key == key]
        ages = np.array([age for _sex, age in rows])
        assert sum(sex == "M" for sex, _ in rows) == figures.male
        assert sum(sex == "F" for sex, _ in rows) == figures.female
        assert abs(ages.mean() - figures.age_mean) < 0.05
        assert abs(ages.std() - figures.age_sd) < 0.05  # population SD, as published
        assert ages.min() >= 18


def test_release_labels_reproduce_the_published_totals(release, tmp_path: Path) -> None:
    labels.write_labels(tmp_path, release, seed=0)
    slices = np.load(tmp_path / "Slice-level-labels.npy", allow_pickle=False)
    lobes = np.load(tmp_path / "Lobe-level-labels.npy", allow_pickle=False)
    slices_u = np.load(tmp_path / "Slice-level-labels-updated-1.npy", allow_pickle=False)
    lobes_u = np.load(tmp_path / "Lobe-level-labels-updated-1.npy", allow_pickle=False)
    assert slices.shape == (79, 200) and lobes.shape == (79, 200, 5)
    assert int(slices.sum()) == 4957 and int(slices_u.sum()) == 4993
    assert (slices == lobes.any(axis=2)).all() and (slices_u == lobes_u.any(axis=2)).all()
    # clean dtypes (the release's float64 / int32 mix is the defect 'labels-dtype')
    assert {a.dtype for a in (slices, lobes, slices_u, lobes_u)} == {np.dtype(np.int64)}
    # Update 1 revises P001 and P006 (rows 0 and 5) only.
    changed = {int(i) for i in np.flatnonzero((lobes != lobes_u).any(axis=(1, 2)))}
    assert changed <= {0, 5} and changed
    # No positive label past a case's slice count.
    labelled = labels.labelled_cases(release)
    for row, case in enumerate(labelled):
        assert not slices[row, case.n_slices :].any()
    index = (tmp_path / "Index.csv").read_bytes()
    assert index.startswith(b"Label Index,Diagnosis,Relative Path,Folder/ID\r\n")
    assert not index.endswith(b"\n")
    lines = index.decode().split("\r\n")[1:]
    assert lines[0] == "0,COVID-19,./COVID-19/,P001" and lines[-1] == "78,CAP,./CAP/,cap025"


def test_headers_are_realistic_ct(clean_tiny: Path) -> None:
    files = sorted(clean_tiny.rglob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Modality == "CT" and ds.SliceThickness == 2
    assert ds.PatientSex in {"M", "F"} and len(ds.PatientAge) == 4
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.pixel_array.shape == (synth.MATRIX, synth.MATRIX)
    # 2 mm steps along z, Slice Location equal to the z position.
    case = files[0].parent
    z = sorted(
        float(pydicom.dcmread(f, stop_before_pixels=True).SliceLocation) for f in case.glob("*.dcm")
    )
    assert np.allclose(np.diff(z), 2.0)


def test_vendor_headers_are_as_heavy_as_the_real_ones_and_clean(tmp_path: Path) -> None:
    """``vendor=True`` (the benchmarks' replica): the real sample's header shape (about 109
    elements, 17 private in five blocks, 3 sequences, one private and nested), and a clean
    run once the policy vets the synthetic creators; without that, exactly the private
    blocks are findings."""
    root = synth.write_dataset(tmp_path / "v", scale="tiny", jobs=1, vendor=True)
    ds = pydicom.dcmread(sorted(root.rglob("*.dcm"))[0], stop_before_pixels=True)
    elements = list(ds.iterall())
    private = [e for e in elements if e.tag.is_private]
    creators = {str(e.value) for e in private if e.tag.element < 0x100}
    assert 100 <= len(elements) <= 120 and 15 <= len(private) <= 20
    assert creators == set(SYNTH_PRIVATE_CREATORS)
    assert sum(e.VR == "SQ" for e in elements) == 3
    assert any(e.VR == "SQ" and e.tag.is_private for e in elements)

    plain = validate(root, "subset", jobs=1)
    assert {f.check_id for f in plain.active if f.severity is not Severity.INFO} == {
        "deid.private_tags"
    }
    vetted = dataclasses.replace(load_policy(), safe_private=frozenset(SYNTH_PRIVATE_CREATORS))
    report = validate(root, "subset", jobs=1, policy=vetted)
    assert report.valid and {f.severity for f in report.findings} == {Severity.INFO}


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = synth.write_dataset(tmp_path / "a", scale="tiny", jobs=1)
    b = synth.write_dataset(tmp_path / "b", scale="tiny", jobs=1)
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert fa == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in fa[:: max(1, len(fa) // 20)]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_write_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(FileExistsError):
        synth.write_dataset(tmp_path, scale="tiny")


def test_unknown_defect_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        synth.apply_defect(tmp_path, "no-such-defect")
