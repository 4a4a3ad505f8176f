"""The real sample's label files: what the label, count and demographics checks must find.

Every expectation comes from ``label_oracle``, which reads ``Index.csv`` (csv), the four
label arrays (numpy, ``allow_pickle=False``), the image headers (pydicom) and the release
manifest (csv) without using the package. The tests assert that the tool's findings, stats
and inferred slice order equal the oracle's, so no defect of the real data is written here.
Skipped, with the reason, when the sample is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

import label_oracle as lo
import pytest

from ctmd_validate import CheckStatus, Severity, validate

pytestmark = pytest.mark.real_sample

LEVEL_OF = {name: (v, lvl) for v, files in lo.LABEL_FILES.items() for lvl, name in files.items()}


@pytest.fixture(scope="module")
def oracle(sample_root) -> lo.Oracle:
    return lo.build(sample_root)


@pytest.fixture(scope="module")
def report_json(sample_report) -> dict:
    return sample_report.to_json()


def findings_of(report, check_id: str) -> list:
    return [f for f in report.active if f.check_id == check_id]


def file_name(path: str | None) -> str:
    assert path is not None
    return PurePosixPath(path).name


def case_folder(oracle: lo.Oracle, case_id: str) -> str | None:
    case = oracle.present.get(case_id)
    return None if case is None else case.case_key


# --------------------------------------------------------------------------- the Index


def test_row_mapping_and_index_figures_in_stats(oracle, report_json):
    labels = report_json["stats"]["labels"]
    assert labels["row_mapping"] == oracle.mapping
    assert labels["index_rows"] == len(oracle.rows)
    assert labels["array_rows"] == oracle.n_array_rows
    assert labels["labelled_cases"] == oracle.labelled_counts
    assert labels["directory"] == "."


def test_index_gap_names_missing_values_and_shifted_rows(oracle, sample_report):
    gap = findings_of(sample_report, "labels.index.gap")
    if oracle.exact:  # pragma: no cover - the real Index skips a value
        assert gap == []
        return
    (f,) = gap
    assert f.severity is Severity.ERROR
    assert f.path == lo.INDEX_NAME
    assert f.actual["missing"] == oracle.missing
    assert f.actual["repeated"] == oracle.repeated
    assert f.actual["not_a_number_lines"] == oracle.not_a_number_lines
    assert f.actual["mapped_by"] == oracle.mapping == "position"
    assert f.actual["affected_cases"] == oracle.off_position
    assert f"{len(oracle.off_position)} rows carry a Label Index" in f.message


def test_index_gap_evidence_under_both_readings(oracle, sample_report):
    """Cases with positive labels at or past their slice count (manifest; images if present)."""
    gap = findings_of(sample_report, "labels.index.gap")
    if oracle.exact:  # pragma: no cover
        pytest.skip("Label Index runs 0..n-1: no gap finding to carry evidence")
    (f,) = gap
    assert f.actual["labels_past_last_slice"] == oracle.evidence
    evidence = oracle.evidence
    assert (
        f"{len(evidence['label_index'])} reading Label Index, "
        f"{len(evidence['position'])} reading by position"
    ) in f.message


def test_index_out_of_range_one_finding_per_row(oracle, sample_report):
    found = findings_of(sample_report, "labels.index.out_of_range")
    assert len(found) == len(oracle.out_of_range)
    n = oracle.n_array_rows
    assert {(f.severity, f.case, f.path, f.expected, f.actual) for f in found} == {
        (Severity.ERROR, case, lo.INDEX_NAME, f"< {n}", value)
        for case, _line, value in oracle.out_of_range
    }
    lines = {f.case: f.message for f in found}
    for case, line, _value in oracle.out_of_range:
        assert f"(line {line})" in lines[case]


def test_index_schema_matches_the_csv(oracle, sample_report):
    found = findings_of(sample_report, "labels.index.schema")
    header = [f for f in found if isinstance(f.actual, list)]
    assert bool(header) == (oracle.header != lo.INDEX_COLUMNS)
    ragged = {
        (f.actual["line"], f.actual["fields"])
        for f in found
        if isinstance(f.actual, dict) and "fields" in f.actual
    }
    assert ragged == set(oracle.ragged)
    cells = {
        (f.actual["line"], f.actual["column"])
        for f in found
        if isinstance(f.actual, dict) and "column" in f.actual
    }
    assert cells == oracle.schema_cells


def test_label_files_present_and_readable(oracle, sample_report):
    absent = {n for n in oracle.all_label_files if not (oracle.labels / n).is_file()}
    missing = findings_of(sample_report, "labels.file.missing")
    assert {f.expected for f in missing} == absent
    assert all(f.severity is Severity.INFO for f in missing)  # subset
    unreadable = findings_of(sample_report, "labels.file.unreadable")
    assert {file_name(f.path) for f in unreadable} == set(oracle.load_errors)
    assert sample_report.result("labels.file.unreadable").examined == len(
        oracle.all_label_files
    ) - len(absent)


# --------------------------------------------------------------------------- the arrays


def test_shape_values_and_lobe_slice_agreement(oracle, sample_report):
    shape = findings_of(sample_report, "labels.shape")
    assert {file_name(f.path) for f in shape} == oracle.shape_problems
    values = findings_of(sample_report, "labels.values")
    assert {(file_name(f.path), f.actual["cells"]) for f in values} == set(
        oracle.bad_values.items()
    )
    mismatch = findings_of(sample_report, "labels.lobe_slice.mismatch")
    assert {
        (f.actual["version"], f.case, tuple(f.actual["slices"])) for f in mismatch
    } == oracle.lobe_slice_mismatch


def test_padding_and_capacity(oracle, sample_report):
    padding = findings_of(sample_report, "labels.padding")
    got = {f.case: {k[k.rindex("(") + 1 : -1]: v for k, v in f.actual.items()} for f in padding}
    assert got == oracle.padding
    assert len(padding) == len(oracle.padding)
    for f in padding:
        assert f.path == case_folder(oracle, f.case)
    capacity = findings_of(sample_report, "labels.capacity")
    assert {f.case: f.actual for f in capacity} == oracle.capacity
    assert len(capacity) == len(oracle.capacity)
    # every labelled case with a known slice count was examined
    counted = sum(c in oracle.slice_counts for c in oracle.row_of)
    assert sample_report.result("labels.padding").examined == counted
    assert sample_report.result("labels.capacity").examined == counted


def test_dtype_warnings(oracle, sample_report):
    found = findings_of(sample_report, "labels.dtype")
    assert all(f.severity is Severity.WARNING for f in found)
    not_integer, mixed = oracle.dtype_warnings
    assert {
        (file_name(f.path), f.actual) for f in found if f.expected == "integer or bool"
    } == not_integer
    assert {
        (LEVEL_OF[file_name(f.path)][1], tuple(f.actual.items()))
        for f in found
        if f.expected == "one dtype across versions"
    } == mixed
    assert len(found) == len(not_integer) + len(mixed)


def test_version_diff_exact_cases_slices_and_severity(oracle, sample_report):
    found = findings_of(sample_report, "labels.version_diff")
    got = {}
    for f in found:
        version, level = LEVEL_OF[file_name(f.path)]
        got[(version, level, f.case)] = (f.actual, f.severity)
    want = {}
    for key, entry in oracle.version_diff.items():
        actual = {"slices": entry["slices"]}
        if "lobes" in entry:
            actual["lobes"] = entry["lobes"]
        want[key] = (actual, Severity.INFO if entry["announced"] else Severity.WARNING)
    assert got == want
    assert len(found) == len(want)


def test_totals_against_published(oracle, sample_report, report_json):
    versions = report_json["stats"]["labels"]["versions"]
    counted = {v: e["infected_slices"] for v, e in versions.items()}
    assert {v: n for v, n in counted.items() if n is not None} == oracle.totals
    for version, entry in versions.items():
        published = lo.PUBLISHED_INFECTED.get(version)
        assert entry["published_infected_slices"] == published
        n = oracle.totals.get(version)
        want = None if published is None or n is None else n == published
        assert entry["reproduces_published"] == want, version
    found = findings_of(sample_report, "labels.total")
    assert {(f.expected, f.actual) for f in found} == set(oracle.total_mismatches.values())
    assert len(found) == len(oracle.total_mismatches)
    ni = report_json["stats"]["labels"]["non_infected_slices"]
    assert ni["computed"] == oracle.non_infected
    assert ni["published"] == lo.PUBLISHED_NON_INFECTED


# --------------------------------------------------------------------- the slice order


def test_inferred_slice_order_equals_the_oracle(oracle, report_json):
    inferred = report_json["inferred"]["label_slice_order"]
    want = oracle.slice_order
    assert {k: inferred[k] for k in want} == want
    votes, _without = oracle.votes
    tally = Counter(votes.values())
    assert inferred["votes"] == {
        "index_0_cranial": tally["cranial"],
        "index_0_caudal": tally["caudal"],
    }
    direction = oracle.slice_location_direction
    location = inferred["slice_location"]
    assert location["increases_towards"] == direction["increases_towards"]
    assert (location["cases_head"], location["cases_feet"]) == (
        direction["head"],
        direction["feet"],
    )
    if direction["head"] + direction["feet"]:
        assert location["source"] == "images"


def test_orientation_findings_are_the_disagreeing_cases(oracle, sample_report):
    found = findings_of(sample_report, "labels.orientation")
    order = oracle.slice_order
    assert all(f.severity is Severity.WARNING for f in found)
    if order["value"] == "undetermined":  # pragma: no cover - the real labels agree
        votes, _without = oracle.votes
        assert len(found) == (1 if votes else 0)
        return
    assert sorted(f.case for f in found) == order["cases_disagreeing"]
    for f in found:
        assert f.path == case_folder(oracle, f.case)
        assert f.expected == f"index 0 {order['index_0']}"
    votes, _without = oracle.votes
    assert sample_report.result("labels.orientation").examined == len(votes)


# ----------------------------------------------------------- the Index vs the images


def test_labelled_counts_against_published(oracle, sample_report):
    found = findings_of(sample_report, "counts.labelled")
    want = {
        (lo.PUBLISHED_LABELLED[d], n)
        for d, n in oracle.labelled_counts.items()
        if n != lo.PUBLISHED_LABELLED[d]
    }
    assert {(f.expected, f.actual) for f in found} == want
    assert len(found) == len(want)


def test_case_missing_one_info_per_class(oracle, sample_report):
    found = findings_of(sample_report, "labels.index.case_missing")
    want = {(d, n, here) for d, (n, here) in oracle.labelled_present.items() if here < n}
    got = set()
    for f in found:
        assert f.severity is Severity.INFO  # subset
        (label,) = [d for d in lo.CLASS_SPELLINGS if f" labelled {d} cases " in f.message]
        got.add((label, f.expected, f.actual))
    assert got == want
    assert len(found) == len(want)


def test_diagnosis_mismatch_and_relative_path(oracle, sample_report):
    mismatch = findings_of(sample_report, "labels.index.diagnosis_mismatch")
    got = {(f.case, f.path, f.expected, f.actual) for f in mismatch}
    assert got == oracle.diagnosis_mismatch
    # every labelled case with an image folder here was compared
    examined = sum(c.case_id == r.case_id for r in oracle.rows for c in oracle.cases)
    assert sample_report.result("labels.index.diagnosis_mismatch").examined == examined
    relative = findings_of(sample_report, "labels.index.relative_path")
    assert {(f.case, f.actual) for f in relative} == oracle.relative_path_problems


def test_age_format_from_the_headers(oracle, sample_report):
    found = findings_of(sample_report, "demographics.age_format")
    assert {(f.case, f.files) for f in found} == oracle.age_not_in_years
    assert all(f.severity is Severity.WARNING for f in found)


def test_sex_and_age_are_skipped_without_a_complete_class(oracle, sample_report, report_json):
    if oracle.complete_classes:  # pragma: no cover - the sample has one case per class
        pytest.fail(f"complete classes {oracle.complete_classes}: extend this test")
    for check_id in ("demographics.sex", "demographics.age"):
        result = sample_report.result(check_id)
        assert result.status is CheckStatus.SKIPPED, check_id
        assert result.examined == 0
        assert findings_of(sample_report, check_id) == []
    assert not any(d["complete"] for d in report_json["stats"]["demographics"].values())


# ------------------------------------------------------------ other ways to get there


def label_findings(report) -> list[tuple]:
    return sorted(
        (f.check_id, f.severity.value, f.case, f.path, f.message, repr(f.expected), repr(f.actual))
        for f in report.findings
        if f.check_id.startswith(("labels.", "counts.labelled", "demographics."))
    )


def test_labels_dir_at_the_root_changes_nothing(sample_root, sample_report):
    report = validate(sample_root, "subset", labels_dir=sample_root, jobs=2)
    assert label_findings(report) == label_findings(sample_report)
    assert label_findings(report)  # the comparison is not vacuous
    got, want = report.to_json(), sample_report.to_json()
    assert got["stats"] == want["stats"]
    assert got["inferred"] == want["inferred"]


def test_cli_report_carries_the_inferred_slice_order(oracle, sample_root, sample_report, tmp_path):
    target = tmp_path / "r.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctmd_validate",
            "check",
            str(sample_root),
            "--profile",
            "subset",
            "--report",
            str(target),
            "--quiet",
            "--jobs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == sample_report.exit_code, run.stderr
    data = json.loads(Path(target).read_text(encoding="utf-8"))
    order = data["inferred"]["label_slice_order"]
    assert order["value"] == oracle.slice_order["value"]
    assert order["index_0"] == oracle.slice_order["index_0"]


def test_a_malformed_index_line_keeps_later_cases_on_their_rows(oracle, sample_root, tmp_path):
    """The real label files, one Index line given a stray trailing field (in tmp_path only)."""
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in oracle.all_label_files:
        if (oracle.labels / name).is_file():
            shutil.copyfile(oracle.labels / name, labels / name)
    lines = (labels / lo.INDEX_NAME).read_bytes().splitlines(keepends=True)
    target = oracle.rows[1].line - 1  # the second data line
    body = lines[target].rstrip(b"\r\n")
    lines[target] = body + b"," + lines[target][len(body) :]
    (labels / lo.INDEX_NAME).write_bytes(b"".join(lines))
    damaged = lo.build(sample_root, labels)
    assert damaged.ragged == [(target + 1, len(lo.INDEX_COLUMNS) + 1)]
    report = validate(sample_root, "subset", labels_dir=labels, jobs=2)
    schema = findings_of(report, "labels.index.schema")
    assert [(f.actual["line"], f.actual["fields"]) for f in schema] == damaged.ragged
    (gap,) = findings_of(report, "labels.index.gap")
    assert gap.actual["affected_cases"] == damaged.off_position
    assert {file_name(f.path) for f in findings_of(report, "labels.shape")} == (
        damaged.shape_problems
    )
    padding = {f.case for f in findings_of(report, "labels.padding")}
    assert padding == set(damaged.padding)
