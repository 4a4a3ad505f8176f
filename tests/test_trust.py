"""Trust (issue 9): never pass an empty dataset, never read outside the root, never crash.

Each test reproduces one way the validator could be wrong about a copy, or hurt it, and
asserts the documented outcome: a finding with its id, a complete schema-valid report and
the documented exit code.
"""


# ruff: noqa: E402

from __future__ import annotations

pytest_plugins = ["pytester"]

import importlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import recorded, run_cli, snapshot
from ctmd_validate import Severity, run_validation, validate
from ctmd_validate.labelfiles import read_npy
from ctmd_validate.paths import sanitize_message
from ctmd_validate.report import Report, validate_report, write_atomic
from ctmd_validate.scan import read_header

PROFILES = ("subset", "release")
scan_module = importlib.import_module("ctmd_validate.scan")  # the package exports scan()


def ids(report: Report, severity: Severity | None = None) -> set[str]:
    return {f.check_id for f in report.active if severity is None or f.severity is severity}


def only(report: Report, check_id: str) -> list:
    return [f for f in report.active if f.check_id == check_id]


# --------------------------------------------------------------------------- no dataset


@pytest.mark.parametrize("profile", PROFILES)
def test_empty_folder_never_passes(tmp_path: Path, profile: str, capsys) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    report = validate(root, profile, jobs=1)
    (f,) = only(report, "structure.no_dataset")
    assert f.severity is Severity.ERROR and not report.valid
    assert "no class folder" in f.message
    validate_report(report.to_json())
    rc, out, _ = run_cli(capsys, "check", root, "--profile", profile, "--quiet")
    assert rc == 1 and "INVALID" in out and "structure.no_dataset" in out


def _tiny_copy(clean_tiny: Path, dest: Path) -> Path:
    shutil.copytree(clean_tiny, dest)
    return dest


@pytest.mark.parametrize("profile", PROFILES)
def test_class_folder_as_root_says_go_up(clean_tiny: Path, profile: str) -> None:
    root = clean_tiny / "COVID-19 subjects"
    report = validate(root, profile, jobs=1)
    (f,) = only(report, "structure.no_dataset")
    assert "is itself the class folder 'COVID-19 subjects'" in f.message
    assert str(clean_tiny) in f.message  # the folder above it
    assert not report.valid


@pytest.mark.parametrize("profile", PROFILES)
def test_case_folder_as_root_says_go_up_twice(clean_tiny: Path, profile: str) -> None:
    case = next(p for p in (clean_tiny / "CAP subjects").iterdir() if p.is_dir())
    report = validate(case, profile, jobs=1)
    (f,) = only(report, "structure.no_dataset")
    assert "single case folder" in f.message and str(clean_tiny) in f.message
    assert not report.valid


def test_renamed_class_folder_holding_cases_is_recognised(clean_tiny, tmp_path) -> None:
    root = tmp_path / "cases"
    shutil.copytree(clean_tiny / "Normal subjects", root)
    (f,) = only(validate(root, "subset", jobs=1), "structure.no_dataset")
    assert "holds case folders (normal" in f.message


def test_dataset_too_deep_names_the_folder(clean_tiny: Path, tmp_path: Path) -> None:
    deep = tmp_path / "downloads" / "a" / "b"
    shutil.copytree(clean_tiny, deep / "COVID-CT-MD")
    report = validate(tmp_path / "downloads", "subset", jobs=1)
    (f,) = only(report, "structure.no_dataset")
    assert "lie deeper than the layout allows" in f.message
    assert "a/b/COVID-CT-MD" in f.message


def test_class_folders_without_cases(tmp_path: Path) -> None:
    root = tmp_path / "COVID-CT-MD"
    for name in ("COVID-19 subjects", "CAP subjects", "Normal subjects"):
        (root / name).mkdir(parents=True)
    report = validate(root, "subset", jobs=1)
    (f,) = only(report, "structure.no_dataset")
    assert "hold no case folder" in f.message and not report.valid


def test_no_dataset_cannot_be_waived_or_relevelled(tmp_path: Path, capsys) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    for text in (
        '[severity]\n"structure.no_dataset" = "info"\n',
        '[[waive]]\nid = "structure.no_dataset"\nreason = "x"\n',
    ):
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        rc, _, err = run_cli(capsys, "check", root, "--profile", "subset", "--config", cfg)
        assert rc == 2 and "cannot be re-levelled or waived" in err
    cfg.write_text('[severity]\n"structure.*" = "ignore"\n"*" = "info"\n')
    rc, out, _ = run_cli(capsys, "check", root, "--profile", "subset", "--config", cfg)
    assert rc == 1 and "structure.no_dataset" in out


def test_plugin_fails_on_an_empty_root(pytester: pytest.Pytester, tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    result = pytester.runpytest_subprocess(
        "-p", "ctmd_validate.pytest_plugin", f"--dataset-root={root}", "--ctmd-profile=subset"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*ctmd::structure.no_dataset*"])


def test_release_profile_on_a_subset_suggests_subset(clean_tiny: Path) -> None:
    report = validate(clean_tiny, "release", jobs=1)
    assert report.hints and "--profile subset" in report.hints[0]
    assert "hint: only 3 of the 305 release cases are here" in report.summary()
    assert report.to_json()["hints"] == report.hints
    assert validate(clean_tiny, "subset", jobs=1).hints == []


# --------------------------------------------------------------------------- links


@pytest.fixture
def linked_tree(clean_tiny: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A tiny tree whose links lead outside it in every way the issue lists."""
    root = _tiny_copy(clean_tiny, tmp_path / "COVID-CT-MD")
    outside = tmp_path / "outside"
    outside.mkdir()
    covid = next(p for p in (root / "COVID-19 subjects").iterdir() if p.is_dir())
    # a slice moved out and linked back
    slice_ = sorted(covid.glob("*.dcm"))[3]
    shutil.move(slice_, outside / slice_.name)
    os.symlink(outside / slice_.name, slice_)
    # a whole case folder that lives outside
    cap = next(p for p in (root / "CAP subjects").iterdir() if p.is_dir())
    shutil.move(cap, outside / cap.name)
    os.symlink(outside / cap.name, cap)
    # Index.csv outside, with a cell that must never be printed
    index = root / "Index.csv"
    text = index.read_text().replace("P001", "SECRET-CELL-7731")
    (outside / "Index.csv").write_text(text)
    index.unlink()
    os.symlink(os.path.relpath(outside / "Index.csv", root), index)
    # the whole file system, at the root and inside a case
    os.symlink("/", root / "everything")
    os.symlink("/", covid / "everything")
    return root, outside


def test_links_out_of_the_root_are_reported_and_never_read(linked_tree) -> None:
    root, outside = linked_tree
    with recorded() as events:
        run = run_validation(root, "subset", jobs=1)
        report = run.report
    touched = [(e, p) for e, p in events if p == str(outside) or p.startswith(f"{outside}/")]
    assert touched == []
    # no folder outside the root was listed ("/" least of all); the import system's own
    # listings of the interpreter's folders (lazy imports) are not the validator's reading
    python = tuple(
        os.path.abspath(p) + os.sep for p in (*sys.path, sys.prefix, sys.base_prefix) if p
    )
    listed = [
        p
        for e, p in events
        if e != "open" and not p.startswith(str(root)) and not (p + os.sep).startswith(python)
    ]
    assert listed == []
    links = sorted(f.path for f in only(report, "structure.symlink_outside"))
    covid = next(p for p in (root / "COVID-19 subjects").iterdir() if p.is_dir())
    cap = next(p for p in (root / "CAP subjects").iterdir())
    slice_link = next(p for p in covid.iterdir() if p.is_symlink() and p.suffix == ".dcm")
    assert links == sorted(
        [
            "Index.csv",
            "everything",
            f"{covid.relative_to(root).as_posix()}/everything",
            slice_link.relative_to(root).as_posix(),
            cap.relative_to(root).as_posix(),
        ]
    )
    assert all(f.severity is Severity.ERROR for f in only(report, "structure.symlink_outside"))
    (index,) = [f for f in only(report, "labels.file.unreadable") if f.path == "Index.csv"]
    assert "outside the dataset root" in index.message
    text = report.dumps() + report.summary()
    assert "SECRET-CELL-7731" not in text
    # the linked case is not a case of this copy; the linked slice is not one of its files
    assert cap.name not in set(run.scan.cases["case_id"])
    assert slice_link.relative_to(root).as_posix() not in set(run.scan.files["path"])


def test_links_inside_the_root_are_followed(clean_tiny: Path, tmp_path: Path) -> None:
    root = _tiny_copy(clean_tiny, tmp_path / "COVID-CT-MD")
    normal = next(p for p in (root / "Normal subjects").iterdir() if p.is_dir())
    stash = root / "stash"
    stash.mkdir()
    shutil.move(normal, stash / normal.name)
    os.symlink(os.path.relpath(stash / normal.name, normal.parent), normal)
    run = run_validation(root, "subset", jobs=1)
    report = run.report
    assert normal.name in set(run.scan.cases["case_id"])
    assert not only(report, "structure.symlink_outside")
    assert {f.path for f in only(report, "structure.stray_file")} == {"stash"}


def test_link_cycles_are_findings(clean_tiny: Path, tmp_path: Path) -> None:
    root = _tiny_copy(clean_tiny, tmp_path / "COVID-CT-MD")
    cap = next(p for p in (root / "CAP subjects").iterdir() if p.is_dir())
    os.symlink("b.dcm", cap / "a.dcm")
    os.symlink("a.dcm", cap / "b.dcm")
    os.symlink("..", cap / "up")
    report = validate(root, "subset", jobs=1)
    loops = sorted(f.path.rsplit("/", 1)[-1] for f in only(report, "structure.symlink_loop"))
    assert loops == ["a.dcm", "b.dcm", "up"]


def test_root_given_through_a_link_is_the_dataset(clean_tiny: Path, tmp_path: Path) -> None:
    link = tmp_path / "via-link"
    os.symlink(clean_tiny, link)
    run = run_validation(link, "subset", jobs=1)
    report = run.report
    assert report.valid and not only(report, "structure.symlink_outside")
    assert len(run.scan.cases) == 3


# --------------------------------------------------------------------------- label arrays


def _npy_with_shape(path: Path, shape_text: str) -> None:
    header = f"{{'descr': '<i8', 'fortran_order': False, 'shape': {shape_text}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())


@pytest.mark.parametrize("shape", ["(0, 10**30)", "(10**30, 0)", "(0, 0, 2**63)", "(3, -1)"])
def test_absurd_npy_dimensions_are_findings(make_tree, shape: str, tmp_path: Path) -> None:
    shape_text = str(eval(shape))  # the literal header text numpy would write
    path = tmp_path / "x.npy"
    _npy_with_shape(path, shape_text)
    array, error = read_npy(path)
    assert array is None and error and ("dimension" in error or "bytes" in error)
    root = make_tree()
    _npy_with_shape(root / "Slice-level-labels.npy", shape_text)
    report = validate(root, "subset", jobs=1)
    (f,) = [f for f in only(report, "labels.file.unreadable") if "Slice-level" in f.path]
    assert f.path == "Slice-level-labels.npy"
    assert [r.check_id for r in report.results if r.crashed] == []
    validate_report(report.to_json())


# --------------------------------------------------------------------------- headers


def _first_slice(root: Path) -> Path:
    case = next(p for p in (root / "CAP subjects").iterdir() if p.is_dir())
    return sorted(case.glob("*.dcm"))[0]


def _guarded(func, seconds: float = 120):
    """Run ``func`` in a thread; a hang (not slowness) fails the test instead of CI."""
    out: dict[str, object] = {}
    worker = threading.Thread(target=lambda: out.update(value=func()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the call hung"
    return out["value"]


def test_two_gigabytes_of_zeros_after_a_real_header(clean_tiny: Path, tmp_path: Path) -> None:
    """A zero-filled download: the parse stops at the first zero tag, whatever the size."""
    data = _first_slice(clean_tiny).read_bytes()
    path = tmp_path / "zeros.dcm"
    path.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")])
    with path.open("r+b") as fh:
        fh.truncate(2 << 30)  # sparse: no disk space used
    row, elements = _guarded(lambda: read_header(str(path)))
    assert row["status"] == "unreadable"
    assert row["error"] == "unexpected element (0000,0000) where Pixel Data should be"
    assert elements == []


def test_fragment_walk_is_capped(clean_tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """Encapsulated Pixel Data: one read per fragment, and no more than the cap."""
    ds = pydicom.dcmread(_first_slice(clean_tiny))
    head = io.BytesIO()
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    ds.save_as(head, enforce_file_format=True)
    fragments = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, 2) + b"\0\0" for _ in range(5000))
    pixel = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
    offset_table = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    path = tmp_path / "many.dcm"
    path.write_bytes(
        head.getvalue() + pixel + offset_table + fragments + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    )
    row, _ = read_header(str(path))
    assert (row["status"], row["pixel_fragments"]) == ("ok", 5000)
    monkeypatch.setattr(scan_module, "MAX_FRAGMENTS", 1000)
    row, _ = read_header(str(path))
    assert row["status"] == "unreadable" and "more than 1000 Pixel Data fragments" in row["error"]


def test_deflate_bomb_is_refused(clean_tiny: Path, tmp_path: Path, monkeypatch) -> None:
    ds = pydicom.dcmread(_first_slice(clean_tiny))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    row, elements = read_header(str(path))
    assert row["status"] == "ok" and row["transfer_syntax"] == "1.2.840.10008.1.2.1.99"
    assert len(elements) > 40
    monkeypatch.setattr(scan_module, "MAX_INFLATED", 1000)
    row, _ = read_header(str(path))
    assert row["status"] == "unreadable" and "inflates to more than 1000 bytes" in row["error"]


@pytest.mark.parametrize("defect", ["big-endian", "deflated"])
def test_valid_transfer_syntaxes_are_read_not_corrupt(make_tree, defect: str) -> None:
    run = run_validation(make_tree([defect]), "subset", jobs=1)
    report = run.report
    assert report.valid  # a warning, never dicom.unreadable or geometry follow-ons
    (f,) = only(report, "dicom.transfer_syntax")
    assert f.severity is Severity.WARNING
    assert ("Big Endian" if defect == "big-endian" else "Deflated") in f.message
    assert not run.scan.files["status"].eq("unreadable").any()


def test_parser_warnings_never_reach_stderr(make_tree, capsys) -> None:
    root = make_tree(["vr-mismatch"])
    rc, out, err = run_cli(capsys, "check", root, "--profile", "subset", "--quiet")
    assert (rc, err) == (0, "")
    assert "dicom.parser_warning" in out
    report = validate(root, "subset", jobs=1)
    (f,) = only(report, "dicom.parser_warning")
    assert f.actual == "Expected explicit VR, but found implicit VR - using implicit VR for reading"


def test_sanitize_message_keeps_no_quoted_value() -> None:
    raw = (
        "The value length (1526) exceeds the maximum length of 64 allowed for VR UI. Invalid "
        "value for VR UI: 'CT_SOM5 SPI\\x08\\x00 99C628-ASAD 20200411"
    )
    text = sanitize_message(raw)
    assert "99C628" not in text and "20200411" not in text and "CT_SOM5" not in text
    assert text.startswith("The value length (1526) exceeds the maximum length of 64")
    assert (
        sanitize_message(
            "End of file in file /data/x/99C628-ASAD_1.dcm", "/data/x/99C628-ASAD_1.dcm"
        )
        == "End of file"
    )
    assert sanitize_message('bad b"\\x01SECRET" here') == "bad <value> here"


def test_real_sample_names_mask_whole_stems(sample_report: Report) -> None:
    """normal001's names hold the Patient ID with the Operators' Name inside it."""
    text = sample_report.dumps() + sample_report.summary()
    for fragment in ("99C628", "98C14734", "98C1066", "ASAD", "ASSH"):
        assert fragment not in text
    (f,) = [
        f
        for f in only(sample_report, "deid.filename")
        if f.case == "normal001" and "Operators" in f.message
    ]
    shown = sample_report.scrub(list(f.files))
    assert len(set(shown)) == len(f.files) == 154
    assert all(p.rsplit("/", 1)[-1].startswith("[redacted#") for p in shown)


def test_real_sample_file_name_order_is_info(sample_report: Report) -> None:
    found = only(sample_report, "structure.file.name_order")
    assert sorted(f.case for f in found) == ["P001", "cap001", "normal001"]
    assert all(f.severity is Severity.INFO for f in found)


# --------------------------------------------------------------------------- paths and output


def _bytes_root(tmp_path: Path, clean_tiny: Path, where: str) -> tuple[bytes, bytes]:
    """A copy of the tiny tree with a non-UTF-8 folder name as root, container or labels."""
    bad = b"caf\xe9-\xff"
    base = os.fsencode(tmp_path)
    if where == "root":
        root = base + b"/" + bad
        shutil.copytree(clean_tiny, os.fsdecode(root))
        return root, b""
    root = base + b"/COVID-CT-MD"
    if where == "container":
        shutil.copytree(clean_tiny, os.fsdecode(root + b"/" + bad))
        return root, b""
    shutil.copytree(clean_tiny, os.fsdecode(root))
    labels = base + b"/" + bad
    os.mkdir(labels)
    for name in os.listdir(root):
        if name.endswith((b".npy", b".csv")):
            os.rename(root + b"/" + name, labels + b"/" + name)
    return root, labels


@pytest.mark.parametrize("where", ["root", "container", "labels"])
def test_non_utf8_paths_give_a_complete_report(tmp_path, clean_tiny, where: str) -> None:
    root, labels = _bytes_root(tmp_path, clean_tiny, where)
    report = tmp_path / "report.json"
    args = [os.fsencode(sys.executable), b"-m", b"ctmd_validate", b"check", root]
    args += [b"--profile", b"subset", b"--jobs", b"1", b"--report", os.fsencode(report)]
    if labels:
        args += [b"--labels", labels]
    proc = subprocess.run(args, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    data = json.loads(report.read_text(encoding="utf-8"))
    validate_report(data)
    assert data["valid"] is True
    assert "\\xff" in json.dumps(data) + proc.stdout.decode("utf-8")


def test_report_write_is_atomic(clean_tiny_report: Report, tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("previous report\n")

    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Report, "dumps", boom)
    with pytest.raises(RuntimeError):
        clean_tiny_report.write(target)
    assert target.read_text() == "previous report\n"
    monkeypatch.undo()
    monkeypatch.setattr("ctmd_validate.report.os.replace", boom)
    with pytest.raises(RuntimeError):
        write_atomic(target, "new")
    assert target.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp left


def test_closed_pipe_is_quiet_and_keeps_the_verdict(make_tree, tmp_path: Path) -> None:
    """``check … | head -1``: the run ends quietly with its own exit code, report written."""
    root = make_tree(["truncated-file"])
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "ctmd_validate", "check", str(root), "--profile", "subset"),
            *("--jobs", "1", "--report", str(report)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 1
    assert b"Broken pipe" not in err and b"Traceback" not in err and err == b""
    validate_report(json.loads(report.read_text()))


def test_report_argument_is_checked_before_scanning(clean_tiny, tmp_path, capsys, monkeypatch):
    def no_scan(*_args, **_kwargs):
        raise AssertionError("scanned before checking --report")

    monkeypatch.setattr("ctmd_validate.engine.scan", no_scan)
    before = snapshot(clean_tiny)
    for target, message in (
        (tmp_path, "is a folder"),
        (clean_tiny / "report.json", "inside the dataset"),
        (tmp_path / "file.txt" / "report.json", "not a folder"),
    ):
        if target.name == "report.json" and target.parent.name == "file.txt":
            target.parent.write_text("a file, not a folder")
        rc, _, err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--report", target)
        assert rc == 2 and message in err and "Errno" not in err, err
    assert snapshot(clean_tiny) == before
