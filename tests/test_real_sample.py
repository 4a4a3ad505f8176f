"""The real public sample (../shared): what the validator must find there.

Every test uses the ``sample_root`` / ``sample_report`` fixtures and is skipped, with the
reason, when the sample is absent. Expectations are computed from the tree itself (os.walk,
os.listdir, the headers as pydicom reads them) and from the release manifest and profile,
not from hard-coded file lists.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path, PurePosixPath

import label_oracle
import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ctmd_validate import Severity, run_validation, validate
from ctmd_validate.report import validate_report

pytestmark = pytest.mark.real_sample

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "schemas" / "release-case-manifest.csv"


def release_manifest() -> dict[str, tuple[str, int]]:
    """case id -> (diagnosis, number of slices), straight from the CSV."""
    with MANIFEST.open(newline="", encoding="utf-8") as fh:
        return {r["case_id"]: (r["diagnosis"], int(r["n_slices"])) for r in csv.DictReader(fh)}


def findings_of(report, check_id: str) -> list:
    return [f for f in report.active if f.check_id == check_id]


# --------------------------------------------------------------------------- the headers

Case = tuple[str, str, list[tuple[str, Dataset]]]  # case id, case folder, (path, header)s


@pytest.fixture(scope="module")
def headers(sample_root, sample_report, sample_run) -> list[Case]:
    """Every case's image files and their headers, as pydicom reads them."""
    out = []
    for row in sample_run.scan.cases.sort_values("case_key").itertuples():
        folder = sample_root / row.case_key
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".dcm"))
        files = [
            (f"{row.case_key}/{n}", pydicom.dcmread(folder / n, stop_before_pixels=True))
            for n in names
        ]
        out.append((row.case_id, row.case_key, files))
    return out


def tag_text(keyword: str) -> str:
    tag = int(tag_for_keyword(keyword))
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def is_empty(elem: DataElement) -> bool:
    return elem.is_empty or (isinstance(elem.value, str) and not elem.value.strip())


def absent_or_empty(files, keyword: str, meta: bool) -> dict[str, tuple[str, ...]]:
    """``{'absent': paths, 'empty': paths}`` of one attribute (file meta or dataset)."""
    out: dict[str, list[str]] = {"absent": [], "empty": []}
    for path, ds in files:
        where = ds.file_meta if meta else ds
        if keyword not in where:
            out["absent"].append(path)
        elif is_empty(where[keyword]):
            out["empty"].append(path)
    return {how: tuple(sorted(paths)) for how, paths in out.items() if paths}


def as_tuples(findings) -> set[tuple]:
    return {
        (f.severity, f.case, f.path, f.message, f.expected, f.actual, f.files) for f in findings
    }


def expected_file_meta(headers: list[Case], keywords) -> set[tuple]:
    """What dicom.file_meta must report: absent or empty meta elements, media UID mismatch."""
    out = set()
    for case_id, case_key, files in headers:
        for keyword in keywords:
            for how, paths in absent_or_empty(files, keyword, meta=True).items():
                out.add(
                    (
                        Severity.ERROR,
                        case_id,
                        case_key,
                        f"{keyword} {tag_text(keyword)} is {how} in {len(paths)} of "
                        f"{len(files)} files",
                        f"{keyword} present and not empty",
                        f"{how} in {len(paths)} files",
                        paths,
                    )
                )
        for media, own in (
            ("MediaStorageSOPClassUID", "SOPClassUID"),
            ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
        ):
            bad = tuple(
                sorted(
                    path
                    for path, ds in files
                    if media in ds.file_meta
                    and own in ds
                    and ds.file_meta[media].value != ds[own].value
                )
            )
            if bad:
                out.add(
                    (
                        Severity.ERROR,
                        case_id,
                        case_key,
                        f"{len(bad)} files' {media} differs from their {own}",
                        f"{media} == {own}",
                        f"different in {len(bad)} files",
                        bad,
                    )
                )
    return out


def expected_required(headers: list[Case], type1, type2) -> set[tuple]:
    """What dicom.required_attribute must report: Type 1 absent or empty, Type 2 absent."""
    out = set()
    for case_id, case_key, files in headers:
        for kind, keywords, severity in (
            ("Type 1", type1, Severity.ERROR),
            ("Type 2", type2, Severity.WARNING),
        ):
            for keyword in keywords:
                for how, paths in absent_or_empty(files, keyword, meta=False).items():
                    if kind == "Type 2" and how == "empty":
                        continue  # Type 2 may be empty
                    out.add(
                        (
                            severity,
                            case_id,
                            case_key,
                            f"{kind} {keyword} {tag_text(keyword)} is {how} in {len(paths)} of "
                            f"{len(files)} files",
                            "present and not empty"
                            if kind == "Type 1"
                            else "present (may be empty)",
                            f"{how} in {len(paths)} files",
                            paths,
                        )
                    )
    return out


def ui_values(ds: Dataset):
    """Every UI value of a file, file meta and sequence items included."""
    for where in (ds.file_meta, ds):
        for elem in where.iterall():
            if elem.VR == "UI" and not elem.is_empty:
                values = elem.value if elem.VM > 1 else [elem.value]
                yield from (str(v) for v in values)


def expected_uid_problems(headers: list[Case], sop_classes) -> dict[str, set]:
    """What the SOP class and UID checks must report, from pydicom's own UID rules."""
    invalid = set()
    foreign = set()
    for case_id, _case_key, files in headers:
        bad = tuple(sorted(p for p, ds in files if any(not UID(v).is_valid for v in ui_values(ds))))
        if bad:
            invalid.add((case_id, bad))
        by_class: dict[str, list[str]] = {}
        for path, ds in files:
            uid = str(ds.get("SOPClassUID", ""))
            if uid and uid not in sop_classes:
                by_class.setdefault(uid, []).append(path)
        foreign |= {(case_id, uid, tuple(sorted(paths))) for uid, paths in by_class.items()}
    owners: dict[str, list[str]] = {}
    for _case_id, _case_key, files in headers:
        for path, ds in files:
            owners.setdefault(str(ds.SOPInstanceUID), []).append(path)
    shared = set()
    for keyword, label in (("StudyInstanceUID", "Study"), ("SeriesInstanceUID", "Series")):
        cases_of: dict[str, set[str]] = {}
        for case_id, _case_key, files in headers:
            for _path, ds in files:
                cases_of.setdefault(str(ds.get(keyword, "")), set()).add(case_id)
        shared |= {
            (label, tuple(sorted(ids))) for uid, ids in cases_of.items() if uid and len(ids) > 1
        }
    return {
        "dicom.uid.invalid": invalid,
        "dicom.sop_class": foreign,
        "sop_duplicates": {tuple(sorted(p)) for p in owners.values() if len(p) > 1},
        "shared_uids": shared,
    }


def stack_irregularities(files: list[tuple[str, Dataset]]) -> list[str]:
    """Why the geometry checks could have anything to say about a case (empty: nothing).

    A textbook stack: one series and frame of reference, one orientation and image shape,
    no gantry tilt, contiguous unique Instance Numbers running along the stack, and every
    slice's Slice Location equal to its position along the slice normal, in equal steps.
    """
    why = []
    for keyword in (
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "ImageOrientationPatient",
        "Rows",
        "Columns",
        "PixelSpacing",
        "SliceThickness",
    ):
        values = {str(ds[keyword].value) if keyword in ds else None for _, ds in files}
        if len(values) != 1 or None in values:
            why.append(f"{keyword}: {len(values)} values")
    if any(float(ds.get("GantryDetectorTilt", 0) or 0) != 0 for _, ds in files):
        why.append("gantry tilt")
    if any(k not in ds for _, ds in files for k in ("InstanceNumber", "SliceLocation")):
        why.append("Instance Number or Slice Location absent")
        return why
    numbers = sorted(int(ds.InstanceNumber) for _, ds in files)
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        why.append("Instance Numbers not contiguous and unique")
    iop = np.array([float(v) for v in files[0][1].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    by_number = sorted(files, key=lambda f: int(f[1].InstanceNumber))
    proj = np.array(
        [np.dot([float(v) for v in ds.ImagePositionPatient], normal) for _, ds in by_number]
    )
    location = np.array([float(ds.SliceLocation) for _, ds in by_number])
    steps = np.diff(proj)
    if steps.size and not (np.all(steps > 0) or np.all(steps < 0)):
        why.append("positions not monotonic along Instance Number")
    if steps.size and np.ptp(np.abs(steps)) > 1e-3:
        why.append(f"uneven steps {sorted(set(np.round(np.abs(steps), 3)))}")
    if np.abs(location - proj).max() > 1e-3:
        why.append("Slice Location differs from the position along the normal")
    return why


_TEXT_VRS = {"PN", "LO", "SH", "CS", "LT", "ST", "UT", "UC", "AE", "DA", "DT"}


def text_of(elem: DataElement) -> str:
    if elem.VM > 1:
        return "\\".join(str(v) for v in elem.value)
    return "" if elem.value is None else str(elem.value)


def expected_deid_errors(headers: list[Case], policy) -> set[str]:
    """Which de-identification error checks must fire, read from the headers with pydicom.

    The policy is the specification (PS3.15 actions, options, dummies); the case id is
    the dataset's pseudonym for Patient ID, so it is never a leak.
    """
    assert not policy.safe_private and not policy.retain_dates  # the default policy
    case_ids = {c.casefold() for c, _k, _f in headers}
    fired = set()
    for case_id, _case_key, files in headers:
        sexes, ages = set(), set()
        for path, ds in files:
            sexes.add(str(ds.get("PatientSex", "")))
            ages.add(str(ds.get("PatientAge", "")))
            for keyword, pattern in policy.kept.items():
                if not pattern.fullmatch(str(ds.get(keyword, "") or "").strip()):
                    fired.add("deid.kept_attribute.missing")
            method = ds.get("DeidentificationMethod") or ds.get(
                "DeidentificationMethodCodeSequence"
            )
            if str(ds.get("PatientIdentityRemoved", "")).strip() != "YES" or not method:
                fired.add("deid.patient_identity_removed")
            names = [n.lower() for n in path.rsplit("/", 2)[-2:]]
            for elem in ds:  # top level: values that must not appear in names
                if (
                    elem.tag.is_private
                    or elem.VR not in _TEXT_VRS
                    or policy.action(int(elem.tag)) is None
                ):
                    continue
                text = text_of(elem).strip()
                if (
                    len(text) >= 4
                    and not policy.is_dummy(text, elem.VR)
                    and text.casefold() not in case_ids
                ) and any(text.lower() in n for n in names):
                    fired.add("deid.filename")
            for elem in ds.iterall():
                if elem.tag.is_private:
                    fired.add("deid.private_tags")
                    continue
                action = policy.action(int(elem.tag))
                if action in (None, "U", "X/Z/U*"):
                    continue
                if action == "X":
                    leak = True
                elif elem.VR == "SQ" or isinstance(elem.value, bytes):
                    leak = len(elem.value) > 0
                else:
                    text = text_of(elem)
                    leak = not policy.is_dummy(text, elem.VR) and (
                        text.strip().casefold() != case_id.casefold()
                    )
                if leak:
                    fired.add("deid.attribute.present")
        if len(sexes) > 1 or len(ages) > 1:
            fired.add("demographics.inconsistent")
    return fired


def test_subset_run_completes_and_report_validates(sample_report):
    data = json.loads(sample_report.dumps())
    validate_report(data)
    assert data["profile"]["name"] == "subset"
    assert not [c for c in data["checks"] if "crashed" in c]
    assert data["summary"]["checks"]["total"] == len(data["checks"])


def test_cases_files_and_class_folders(sample_root, sample_report, sample_run):
    scan = sample_run.scan
    assert len(scan.cases) == 3
    assert len(scan.files) == 470
    # the tool's count agrees with the tree's
    on_disk = sum(
        1
        for _dirpath, _dirs, files in os.walk(sample_root / "Sample data")
        for name in files
        if name.lower().endswith(".dcm")
    )
    assert on_disk == len(scan.files)
    dirs = scan.class_dirs
    assert len(dirs) == 3
    assert set(dirs["class_key"]) == {"covid", "cap", "normal"}
    for path in dirs["path"]:
        assert PurePosixPath(path).parent == PurePosixPath("Sample data"), path
        assert (sample_root / path).is_dir()
    assert set(scan.cases["class_key"]) == {"covid", "cap", "normal"}


def test_every_ds_store_is_a_stray_file(sample_root, sample_report):
    ds_stores = {
        Path(dirpath, name).relative_to(sample_root).as_posix()
        for dirpath, _dirs, files in os.walk(sample_root)
        for name in files
        if name == ".DS_Store"
    }
    assert ds_stores, "the public sample is known to carry .DS_Store files"
    stray = {f.path: f for f in findings_of(sample_report, "structure.stray_file")}
    missing = ds_stores - set(stray)
    assert not missing, f"not reported as stray: {sorted(missing)}"
    for path in ds_stores:
        assert stray[path].severity is Severity.WARNING


def test_cap_folder_spelling_is_an_alias(sample_root, sample_report):
    container = sample_root / "Sample data"
    cap_dirs = [n for n in os.listdir(container) if n.casefold() == "cap subjects"]
    assert len(cap_dirs) == 1
    (name,) = cap_dirs
    assert name == "Cap subjects"  # not the README's 'CAP subjects'
    alias = findings_of(sample_report, "structure.class_dir.alias")
    paths = {f.path for f in alias}
    assert f"Sample data/{name}" in paths
    for f in alias:
        if f.path == f"Sample data/{name}":
            assert f.actual == name
            assert f.expected == "CAP subjects"
            assert f.severity is Severity.WARNING
    # the two other folders follow the README: no alias finding for them
    assert len(alias) == 1


def test_case_slices_fires_iff_count_differs_from_release(sample_root, sample_report, sample_run):
    manifest = release_manifest()
    fired = {f.case: f for f in findings_of(sample_report, "counts.case_slices")}
    cases = sample_run.scan.cases
    assert len(cases) == 3
    for row in cases.itertuples():
        folder = sample_root / row.case_key
        n_dcm = sum(1 for n in os.listdir(folder) if n.lower().endswith(".dcm"))
        assert row.case_id in manifest, row.case_id
        expected = manifest[row.case_id][1]
        if n_dcm != expected:
            assert row.case_id in fired, f"{row.case_id}: {n_dcm} files, release {expected}"
            f = fired[row.case_id]
            assert f.severity is Severity.ERROR
            assert f.path == row.case_key
            assert (f.expected, f.actual) == (expected, n_dcm)
        else:
            assert row.case_id not in fired, row.case_id
    assert set(fired) <= set(cases["case_id"])


def test_file_meta_findings_match_the_files_meta_groups(headers, sample_report):
    conformance = sample_report.facts.profile.conformance
    want = expected_file_meta(headers, conformance.file_meta)
    # the sample's files carry only (0002,0000), (0002,0002) and (0002,0010)
    assert want, "the public sample is known to lack file meta elements"
    assert as_tuples(findings_of(sample_report, "dicom.file_meta")) == want


def test_required_attribute_findings_match_the_headers(headers, sample_report):
    conformance = sample_report.facts.profile.conformance
    want = expected_required(headers, conformance.type1, conformance.type2)
    # the sample's de-identification deleted Type 2 attributes (Patient's Name, Birth Date)
    assert any(w[0] is Severity.WARNING for w in want), "known: Type 2 attributes absent"
    assert as_tuples(findings_of(sample_report, "dicom.required_attribute")) == want


def test_sop_class_and_uid_findings_match_the_headers(headers, sample_report):
    want = expected_uid_problems(headers, sample_report.facts.profile.conformance.sop_classes)
    invalid = findings_of(sample_report, "dicom.uid.invalid")
    got_invalid: dict[str, set[str]] = {}
    for f in invalid:
        got_invalid.setdefault(f.case, set()).update(f.files)
    assert {(c, tuple(sorted(p))) for c, p in got_invalid.items()} == want["dicom.uid.invalid"]
    sop = findings_of(sample_report, "dicom.sop_class")
    assert {(f.case, f.actual, f.files) for f in sop} == want["dicom.sop_class"]
    duplicate = findings_of(sample_report, "dicom.uid.duplicate")
    assert {f.files for f in duplicate if f.files} == want["sop_duplicates"]
    shared = {
        (f.message.split(" share one ")[1].split()[0], tuple(f.actual))
        for f in duplicate
        if not f.files
    }
    assert shared == want["shared_uids"]


def test_geometry_findings_match_the_stacks(headers, sample_report):
    geometry = [f for f in sample_report.findings if f.check_id.startswith("geometry.")]
    for case_id, case_key, files in headers:
        why = stack_irregularities(files)
        if why:  # pragma: no cover - the sample's stacks are regular (read with pydicom)
            pytest.fail(f"{case_key} is not a textbook stack ({why}): extend this test")
        assert [f for f in geometry if f.case == case_id] == [], case_key
    assert geometry == []


def test_no_unreadable_files_and_no_other_errors(headers, sample_root, sample_report):
    assert findings_of(sample_report, "dicom.unreadable") == []
    assert sample_report.result("dicom.unreadable").examined == 470
    conformance = sample_report.facts.profile.conformance
    manifest = release_manifest()
    uids = expected_uid_problems(headers, conformance.sop_classes)
    expected = {
        "counts.case_slices": any(len(files) != manifest[c][1] for c, _k, files in headers),
        "dicom.file_meta": bool(expected_file_meta(headers, conformance.file_meta)),
        "dicom.required_attribute": any(
            w[0] is Severity.ERROR
            for w in expected_required(headers, conformance.type1, conformance.type2)
        ),
        "dicom.uid.invalid": bool(uids["dicom.uid.invalid"]),
        "dicom.sop_class": bool(uids["dicom.sop_class"]),
        "dicom.uid.duplicate": bool(uids["sop_duplicates"] or uids["shared_uids"]),
    }
    # the label, labelled-count and demographics errors, from the raw label files
    labels = label_oracle.build(sample_root).errors(complete=sample_report.facts.profile.complete)
    assert not expected.keys() & labels.keys()
    expected |= labels
    assert not any(stack_irregularities(files) for _c, _k, files in headers)  # no geometry
    deid = expected_deid_errors(headers, sample_report.policy)
    # the sample is known to keep dates, descriptions, private blocks and its hospital ids
    assert deid, "the public sample is known to fail the de-identification audit"
    errors = {f.check_id for f in sample_report.active if f.severity is Severity.ERROR}
    assert errors == {check_id for check_id, fires in expected.items() if fires} | deid


def test_release_profile_reports_absent_cases_as_errors(sample_root):
    run = run_validation(sample_root, "release", jobs=2)
    report = run.report
    data = json.loads(report.dumps())
    validate_report(data)
    assert data["valid"] is False
    assert report.exit_code == 1
    manifest = release_manifest()
    present = set(run.scan.cases["case_id"])
    absent = set(manifest) - present
    assert len(absent) == len(manifest) - 3
    missing = findings_of(report, "structure.case_dir.missing")
    assert {f.case for f in missing} == absent
    assert all(f.severity is Severity.ERROR for f in missing)
    counts = findings_of(report, "counts.class")
    assert len(counts) == 3
    assert all(f.severity is Severity.ERROR for f in counts)


def test_judged_against_its_own_report_the_sample_is_valid(sample_root, sample_report, tmp_path):
    """The consumer's baseline workflow on real data: the release's own defects are known."""
    baseline = tmp_path / "release-report.json"
    baseline.write_text(sample_report.dumps(), encoding="utf-8")
    again = validate(sample_root, "subset", jobs=2, baseline=baseline)
    assert again.valid
    assert len(again.known) == len([f for f in sample_report.findings if f.waived is None])
    assert again.to_json()["summary"]["known"] == len(again.known)


def test_integrity_mode_keeps_only_the_copys_own_findings(sample_root, sample_report):
    """The release's de-identification and conformance findings are not the copy's."""
    report = validate(sample_root, "subset", jobs=2, mode="integrity")
    ran = {r.check_id for r in report.results}
    assert not any(i.startswith(("deid.", "geometry.", "demographics.")) for i in ran)
    assert all(i.startswith("labels.file.") for i in ran if i.startswith("labels."))
    full = {(f.check_id, f.path, f.message) for f in sample_report.active if f.check_id in ran}
    assert {(f.check_id, f.path, f.message) for f in report.active} == full
    assert report.count(Severity.ERROR) < sample_report.count(Severity.ERROR)
